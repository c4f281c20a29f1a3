"""The contact policy as data: cadence, windows, caps and the escalation ladder, per segment.

Operators change behaviour by changing these values (for one segment, in a JSON policy file), never
by editing if-chains. A workflow resolves its segment's policy once, when it starts, and carries it
in its state, so a later edit of the file cannot change decisions already recorded in history.
"""

from __future__ import annotations

import json
from datetime import date, time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kindly.errors import ConfigurationError


class ContactPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Preferred window for reminders, in the customer's own time zone.
    window_start: time = time(9, 0)
    window_end: time = time(20, 0)
    # The wider window in which replies the customer asked for (HELP, opt-out confirmation) may go:
    # never outside the legal quiet hours (22:00-08:00).
    service_window_start: time = time(8, 0)
    service_window_end: time = time(22, 0)

    # Reminders this many days before the due date (0 = on the due day).
    pre_due_days: list[int] = Field(default_factory=lambda: [7, 0])
    first_overdue_day: int = Field(default=1, ge=1)
    follow_up_interval_days: int = Field(default=7, ge=1)
    max_sms_per_day: int = Field(default=1, ge=1)

    holiday_calendar: str | None = "cn"
    blocked_dates: list[date] = Field(default_factory=list)
    avoid_birthday: bool = True

    # Escalation ladder.
    unanswered_to_escalate: int = Field(default=3, ge=1)
    phone_attempts: int = Field(default=2, ge=1)
    call_outcome_wait_hours: int = Field(default=48, ge=1)
    promise_grace_days: int = Field(default=1, ge=0)
    route_straight_to_specialist: bool = False

    @model_validator(mode="after")
    def _windows(self) -> ContactPolicy:
        if not self.window_start < self.window_end:
            raise ValueError("window_start must be before window_end")
        if not (
            self.service_window_start <= self.window_start and self.window_end <= self.service_window_end
        ):
            raise ValueError("the preferred window must lie inside the service window")
        if any(days < 0 for days in self.pre_due_days):
            raise ValueError("pre_due_days must be zero or positive")
        return self


DEFAULT_SEGMENT = "standard"

BUILT_IN_POLICIES: dict[str, ContactPolicy] = {
    DEFAULT_SEGMENT: ContactPolicy(),
    # Customers with a good history: fewer follow-ups, a later first phone call.
    "gentle": ContactPolicy(follow_up_interval_days=10, unanswered_to_escalate=4),
    # Accounts the lender wants in front of a person at once.
    "high_risk": ContactPolicy(route_straight_to_specialist=True),
}


def load_policies(path: Path | None) -> dict[str, ContactPolicy]:
    """Built-in segment policies, overridden and extended by an operator's JSON file.

    The file maps segment names to partial policies, each applied on top of the built-in policy of
    that segment (or of ``standard`` for a new segment): ``{"vip": {"follow_up_interval_days": 14}}``.
    """
    policies = dict(BUILT_IN_POLICIES)
    if path is None:
        return policies
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigurationError(f"policy file {path}: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigurationError(f"policy file {path}: expected an object of segments")
    for segment, overrides in raw.items():
        base = policies.get(segment, BUILT_IN_POLICIES[DEFAULT_SEGMENT])
        if not isinstance(overrides, dict):
            raise ConfigurationError(f"policy file {path}: segment {segment!r} must be an object")
        try:
            policies[segment] = ContactPolicy.model_validate({**base.model_dump(), **overrides})
        except ValidationError as err:
            raise ConfigurationError(f"policy file {path}: segment {segment!r}: {err}") from err
    return policies


def policy_for(segment: str, policies: dict[str, ContactPolicy]) -> ContactPolicy:
    """The segment's policy; an unknown segment gets the standard one."""
    return policies.get(segment, policies[DEFAULT_SEGMENT])
