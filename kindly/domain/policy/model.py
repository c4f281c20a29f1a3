"""The contact policy as data: cadence, windows, caps and the escalation ladder, per segment.

Operators change behaviour by changing these values (for one segment, in a JSON policy file), never
by editing if-chains. A workflow resolves its segment's policy once, when it starts, and carries it
in its state, so a later edit of the file cannot change decisions already recorded in history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kindly.domain.policy.calendars import load_calendar
from kindly.domain.policy.consequences import Consequences
from kindly.domain.policy.replies import ReplyKeywords
from kindly.errors import ConfigurationError

Regime = Literal["cn", "us"]
"""The legal regime whose contact rules bind a policy."""


CALL_HISTORY_KEPT = 14
"""The workflow keeps this many of the latest ``call_attempt_days`` and ``conversation_days``; a call
cap above it could be misjudged once older entries are dropped."""


@dataclass(frozen=True)
class RegimeRules:
    """What a regime's law fixes: the local hours contact may happen in, its public holidays and
    its limits on phone contact."""

    legal_start: time
    """No contact before this local time."""
    legal_end: time
    """No contact at or after this local time."""
    holiday_calendar: str
    """The default holiday calendar (a name in ``data/holidays.json``) of a policy in this regime."""
    source: str
    # Phone-contact limits per debtor (``None``: the regime sets no such limit). Each call task is
    # one attempt; a call outcome other than ``no_answer`` is a conversation (a connected call).
    max_call_attempts_per_day: int | None = None
    """Call attempts in one local day, the one being planned included."""
    max_conversations_per_day: int | None = None
    """Connected calls in one local day: no further attempt once this many connected that day."""
    max_call_attempts_per_7_days: int | None = None
    """Call attempts in any 7 consecutive local days, the one being planned included."""
    no_call_days_after_conversation: int | None = None
    """No call attempt on the local day of a conversation or the ``n - 1`` days after it."""

    def __post_init__(self) -> None:
        for name in (
            "max_call_attempts_per_day",
            "max_conversations_per_day",
            "max_call_attempts_per_7_days",
        ):
            cap = getattr(self, name)
            if cap is not None and not 1 <= cap <= CALL_HISTORY_KEPT:
                raise ValueError(f"{name} must be between 1 and {CALL_HISTORY_KEPT}")


REGIMES: Mapping[Regime, RegimeRules] = MappingProxyType(
    {
        "cn": RegimeRules(
            legal_start=time(8, 0),
            legal_end=time(22, 0),
            holiday_calendar="cn",
            source=(
                "mainland collection rules: no contact 22:00-08:00 local; statutory holidays; "
                "at most 3 connected calls and 6 call attempts per local day per debtor"
            ),
            max_call_attempts_per_day=6,
            max_conversations_per_day=3,
        ),
        "us": RegimeRules(
            legal_start=time(8, 0),
            legal_end=time(21, 0),
            holiday_calendar="us",
            source=(
                "Regulation F (12 CFR 1006.6(b)(1)(i)): not before 08:00 or after 21:00 local; "
                "(12 CFR 1006.14(b)(2)): at most 7 call attempts in 7 consecutive days, and no call "
                "within 7 days after a telephone conversation (its day being the first of the 7)"
            ),
            max_call_attempts_per_7_days=7,
            no_call_days_after_conversation=7,
        ),
    }
)

TEMPLATE_VARIANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"
"""A variant's name is a folder name and goes into audit details: a plain slug."""

SMS_HISTORY_DAYS_REQUIRED = 14
"""The workflow keeps this many of the latest ``sms_days`` (``SMS_DAYS_KEPT``); a cap above it could
be misjudged once older entries are dropped, so neither SMS cap may exceed it."""

# Fields whose default follows the regime when a policy does not set them.
_REGIME_DEFAULTED = ("holiday_calendar", "service_window_start", "service_window_end")


class ContactPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    regime: Regime = "cn"
    """Whose law applies: fixes the legal window and the default holiday calendar (``REGIMES``)."""

    # Preferred window for reminders, in the customer's own time zone; inside the legal window.
    window_start: time = time(9, 0)
    window_end: time = time(20, 0)
    # The wider window in which replies the customer asked for (HELP, opt-out confirmation) may go:
    # never outside the regime's legal window, which is also its default.
    service_window_start: time = time(8, 0)
    service_window_end: time = time(22, 0)

    # Reminders this many days before the due date (0 = on the due day).
    pre_due_days: list[int] = Field(default_factory=lambda: [7, 0])
    first_overdue_day: int = Field(default=1, ge=1)
    follow_up_interval_days: int = Field(default=7, ge=1)
    max_sms_per_day: int = Field(default=1, ge=1, le=SMS_HISTORY_DAYS_REQUIRED)
    max_sms_per_7_days: int = Field(default=3, ge=1, le=SMS_HISTORY_DAYS_REQUIRED)
    """Reminders in any 7 consecutive local days, the one being planned included."""

    holiday_calendar: str | None = "cn"
    """Defaults to the regime's calendar; ``None`` means no holiday calendar."""
    blocked_dates: list[date] = Field(default_factory=list)
    avoid_birthday: bool = True

    # Escalation ladder.
    unanswered_to_escalate: int = Field(default=3, ge=1)
    phone_attempts: int = Field(default=2, ge=1)
    call_outcome_wait_hours: int = Field(default=48, ge=1)
    promise_grace_days: int = Field(default=1, ge=0)
    max_promise_days: int = Field(default=366, ge=0, le=366)
    """How far ahead a promise to pay may be dated: a later date is refused, naming the limit."""
    route_straight_to_specialist: bool = False
    # What replies mean: opt-out, help, hardship and dispute phrases, per segment.
    reply_keywords: ReplyKeywords = Field(default_factory=ReplyKeywords)
    # Wording: "gentle" for good-history segments; an instalment-plan offer once this many days
    # overdue (None: never).
    tone: Literal["gentle", "standard"] = "standard"
    instalment_offer_after_days: int | None = Field(default=21, ge=1)
    # A named set of template variants (``<locale>/variants/<name>/``) tried before the region's and
    # the segment's wording: set per segment, or by an experiment's arm to try other words.
    template_variant: str | None = Field(default=None, pattern=TEMPLATE_VARIANT_PATTERN)
    # What being overdue costs the customer, when true: stated after the due date in approved words.
    consequences: Consequences = Field(default_factory=Consequences)
    # Instalment plans the customer may choose on the self-service page (kindly.domain.plans): the counts
    # offered, the smallest instalment, the interval between instalments, how soon the first must fall,
    # and the days an instalment may be late before the plan is broken.
    plan_instalment_counts: list[Annotated[int, Field(ge=2, le=36)]] = Field(
        default_factory=lambda: [3, 6], min_length=1
    )
    plan_min_instalment: Decimal = Field(default=Decimal("100"), gt=0)
    plan_interval_days: int = Field(default=30, ge=7, le=31)
    plan_first_within_days: int = Field(default=14, ge=0, le=60)
    plan_grace_days: int = Field(default=3, ge=0, le=14)
    # The window-open herd: reminders start at a per-account moment within the first this many
    # minutes of the window (at most half of it), the same for an account every day, so that 09:00
    # does not bring every due account's SMS at once. 0 sends at the window's opening.
    send_spread_minutes: int = Field(default=180, ge=0, le=24 * 60)
    # Set by the worker from ``COLLECTIONS_CONTINUE_AS_NEW_AFTER_EVENTS``, not by policy files:
    # recorded with the policy so that the threshold a run started with holds on replay.
    continue_as_new_after_events: int | None = Field(default=None, ge=100)
    # Set by the worker from the holiday data it ships, not by policy files: the years the holiday
    # calendar had data for when the policy was resolved, recorded with it so that a year added
    # later reaches a run only through a policy refresh, and replay plans as the run did. A day in
    # another year is deferred (``no_calendar``); None (runs recorded before) checks nothing.
    holiday_calendar_years: tuple[int, ...] | None = None
    # Set by the worker from ``COLLECTIONS_COMPLAINT_ACKNOWLEDGE_BUSINESS_DAYS`` and
    # ``..._RESOLVE_BUSINESS_DAYS``: a complaint's deadlines in business days on the policy's calendar
    # (``kindly.domain.policy.business_days``), recorded with the policy so that a run keeps the rule
    # it started with.
    complaint_acknowledge_business_days: int = Field(default=1, ge=1, le=60)
    complaint_resolve_business_days: int = Field(default=15, ge=1, le=120)

    @model_validator(mode="before")
    @classmethod
    def _regime_defaults(cls, data: Any) -> Any:
        """Fill the regime-dependent fields a policy leaves out from its regime's defaults."""
        if isinstance(data, dict):
            regime = data.get("regime", "cn")
            by_name = cast(Mapping[str, RegimeRules], REGIMES)
            rules = by_name.get(regime) if isinstance(regime, str) else None
            if rules is not None:
                defaults = {
                    "holiday_calendar": rules.holiday_calendar,
                    "service_window_start": rules.legal_start,
                    "service_window_end": rules.legal_end,
                }
                data = {**defaults, **data}
        return data

    @property
    def rules(self) -> RegimeRules:
        return REGIMES[self.regime]

    @model_validator(mode="after")
    def _windows(self) -> ContactPolicy:
        if not self.window_start < self.window_end:
            raise ValueError("window_start must be before window_end")
        legal = self.rules
        legal_text = f"{legal.legal_start:%H:%M}-{legal.legal_end:%H:%M}"
        for name, start, end in (
            ("preferred window", self.window_start, self.window_end),
            ("service window", self.service_window_start, self.service_window_end),
        ):
            if not (legal.legal_start <= start < end <= legal.legal_end):
                raise ValueError(
                    f"the {name} {start:%H:%M}-{end:%H:%M} must lie inside the legal window "
                    f"{legal_text} of regime {self.regime!r}"
                )
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
    "gentle": ContactPolicy(tone="gentle", follow_up_interval_days=10, unanswered_to_escalate=4),
    # Accounts the lender wants in front of a person at once.
    "high_risk": ContactPolicy(route_straight_to_specialist=True),
    # United States customers: Regulation F hours (08:00-21:00 local) and federal holidays.
    "us_standard": ContactPolicy(regime="us", holiday_calendar="us"),
}


def load_policies(
    path: Path | None,
    *,
    continue_as_new_after_events: int | None = None,
    complaint_business_days: tuple[int, int] | None = None,
) -> dict[str, ContactPolicy]:
    """Built-in segment policies, overridden and extended by an operator's JSON file.

    The file maps segment names to partial policies, each applied on top of the built-in policy of
    that segment (or of ``standard`` for a new segment): ``{"vip": {"follow_up_interval_days": 14}}``.
    Its ``"*"`` entry (``LENDER_WIDE``) applies to every segment first.
    ``continue_as_new_after_events`` and ``complaint_business_days`` (acknowledge, resolve: worker
    settings) and the holiday calendar's years of data (``holiday_calendar_years``) are stamped on every
    policy.
    """
    policies = _load_policy_file(path)
    stamp: dict[str, Any] = {}
    if continue_as_new_after_events is not None:
        stamp["continue_as_new_after_events"] = continue_as_new_after_events
    if complaint_business_days is not None:
        acknowledge, resolve = complaint_business_days
        stamp["complaint_acknowledge_business_days"] = acknowledge
        stamp["complaint_resolve_business_days"] = resolve
    return {
        segment: policy.model_copy(update={**stamp, "holiday_calendar_years": calendar_years(policy)})
        for segment, policy in policies.items()
    }


def calendar_years(policy: ContactPolicy) -> tuple[int, ...] | None:
    """The years the policy's holiday calendar has data for in this worker (None without calendar)."""
    if policy.holiday_calendar is None:
        return None
    return tuple(sorted(load_calendar(policy.holiday_calendar).years))


_SET_BY_WORKER = (
    "continue_as_new_after_events",
    "holiday_calendar_years",
    "complaint_acknowledge_business_days",
    "complaint_resolve_business_days",
)


LENDER_WIDE = "*"
"""The policy file's key for the whole lender: its overrides apply to every segment, built-in and the
file's, before the segment's own (a contract term such as penalty interest is usually lender-wide)."""


def _load_policy_file(path: Path | None) -> dict[str, ContactPolicy]:
    policies = dict(BUILT_IN_POLICIES)
    if path is None:
        return policies
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigurationError(f"policy file {path}: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigurationError(f"policy file {path}: expected an object of segments")
    lender_wide = _overrides(path, LENDER_WIDE, raw.get(LENDER_WIDE, {}))
    bases = {
        segment: _overridden(path, f"{LENDER_WIDE!r} applied to segment {segment!r}", policy, lender_wide)
        for segment, policy in BUILT_IN_POLICIES.items()
    }
    policies = dict(bases)
    for segment, overrides in raw.items():
        if segment == LENDER_WIDE:
            continue
        base = bases.get(segment, bases[DEFAULT_SEGMENT])
        policies[segment] = _overridden(
            path, f"segment {segment!r}", base, _overrides(path, segment, overrides)
        )
    return policies


def _overrides(path: Path, segment: str, overrides: Any) -> dict[str, Any]:
    """One entry of the file, refused when it is not an object or sets what the worker stamps."""
    if not isinstance(overrides, dict):
        raise ConfigurationError(f"policy file {path}: segment {segment!r} must be an object")
    stamped = [name for name in _SET_BY_WORKER if name in overrides]
    if stamped:
        raise ConfigurationError(
            f"policy file {path}: segment {segment!r}: {', '.join(stamped)} is set by the worker"
        )
    return overrides


def _overridden(path: Path, where: str, base: ContactPolicy, overrides: dict[str, Any]) -> ContactPolicy:
    """``base`` with ``overrides`` on top, validated as any policy; each field replaces the base's whole
    value. A segment moved to another regime takes that regime's defaults, not the base's."""
    if not overrides:
        return base
    inherited = base.model_dump()
    if overrides.get("regime", base.regime) != base.regime:
        for name in _REGIME_DEFAULTED:
            inherited.pop(name)
    try:
        return ContactPolicy.model_validate({**inherited, **overrides})
    except ValidationError as err:
        raise ConfigurationError(f"policy file {path}: {where}: {err}") from err


def policy_for(segment: str, policies: dict[str, ContactPolicy]) -> ContactPolicy:
    """The segment's policy; an unknown segment gets the standard one."""
    return policies.get(segment, policies[DEFAULT_SEGMENT])
