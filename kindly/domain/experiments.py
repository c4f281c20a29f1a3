"""Champion/challenger experiments as data: a definition, the policy overlays of its arms, and which arm an
account gets.

An arm is an overlay on the segment's policy (tone, cadence, the send window's offset, the instalment
offer's day, the escalation threshold, the template variant). The overlaid policy goes through
``ContactPolicy``'s own validation, so an arm can never break a regime's rule: a definition whose
overlay would is refused, naming the arm, the segment and the rule. The assignment is a pure function
of the experiment's name and the account id (a hash), so it is the same wherever and whenever it is
computed; the workflow takes it once, when it starts, and carries it across continue-as-new.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kindly.domain.policy.model import TEMPLATE_VARIANT_PATTERN, ContactPolicy
from kindly.domain.validation import describe_validation_error

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")


def _slug(value: str) -> str:
    """Names go into audit details and the ``ExperimentArm`` attribute: a plain slug, no spaces."""
    if not _NAME.fullmatch(value):
        raise ValueError(
            "must be 1-48 lowercase letters, digits, '_' or '-', starting with a letter or digit"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyOverlay(_Strict):
    """What an arm changes in the segment's policy; every field left out keeps the segment's value."""

    tone: Literal["gentle", "standard"] | None = None
    pre_due_days: list[int] | None = None
    first_overdue_day: int | None = Field(default=None, ge=1)
    follow_up_interval_days: int | None = Field(default=None, ge=1)
    window_offset_minutes: int | None = Field(default=None, ge=-720, le=720)
    """Moves the preferred window (start and end) by this many minutes: it must stay inside the legal
    and service windows."""
    instalment_offer_after_days: int | None = Field(default=None, ge=1)
    unanswered_to_escalate: int | None = Field(default=None, ge=1)
    template_variant: str | None = Field(default=None, pattern=TEMPLATE_VARIANT_PATTERN)
    """The template variant (``<locale>/variants/<name>/``) the arm's messages take first: other words
    for the same cadence."""

    def applied_to(self, policy: ContactPolicy) -> ContactPolicy:
        """``policy`` with this overlay, validated as any policy is (raises ``ValidationError``)."""
        changes: dict[str, Any] = self.model_dump(exclude_none=True, exclude={"window_offset_minutes"})
        if self.window_offset_minutes:
            shift = timedelta(minutes=self.window_offset_minutes)
            changes["window_start"] = _shifted(policy.window_start, shift)
            changes["window_end"] = _shifted(policy.window_end, shift)
        return ContactPolicy.model_validate({**policy.model_dump(), **changes})


def _shifted(clock: time, shift: timedelta) -> time:
    minutes = clock.hour * 60 + clock.minute + shift // timedelta(minutes=1)
    if not 0 <= minutes < 24 * 60:
        raise ValueError(f"the window moved by {shift} leaves the day")
    return time(minutes // 60, minutes % 60)


class Arm(_Strict):
    name: str
    weight: float = Field(gt=0)
    """Relative share of new accounts; weights need not sum to 1."""
    overlay: PolicyOverlay = Field(default_factory=PolicyOverlay)
    shadow: bool = False
    """Sends nothing of its own: its accounts get the champion's policy, and the workflow records what
    this arm's policy would have done."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _slug(value)


class Guardrails(_Strict):
    """Ceilings per 1,000 SMS: an arm above one stops getting new accounts."""

    opt_out_per_1000_sms: float | None = Field(default=None, gt=0)
    dispute_per_1000_sms: float | None = Field(default=None, gt=0)
    complaint_per_1000_sms: float | None = Field(default=None, gt=0)
    """Complaints opened about how the lender collects, of the arm's accounts."""


class PrimaryMetric(_Strict):
    kind: Literal["cure_rate"] = "cure_rate"
    within_days: int = Field(default=30, ge=1, le=365)
    """An account counts as cured when paid in full within this many days of its due date."""


class ExperimentDefinition(_Strict):
    """One experiment, as its JSON or YAML file gives it."""

    name: str
    segments: list[str] = Field(min_length=1)
    arms: list[Arm] = Field(min_length=2)
    champion: str
    """The arm the others are compared with: usually the unchanged policy (an empty overlay)."""
    primary_metric: PrimaryMetric = Field(default_factory=PrimaryMetric)
    guardrails: Guardrails = Field(default_factory=Guardrails)
    start: datetime | None = None
    stop: datetime | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _slug(value)

    @field_validator("start", "stop")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a UTC offset, e.g. 2026-12-01T00:00:00+08:00")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentDefinition:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError("arms: names must be unique")
        if self.champion not in names:
            raise ValueError(f"champion: {self.champion!r} is not one of the arms {names}")
        if self.arm(self.champion).shadow:
            raise ValueError("champion: the champion cannot be a shadow arm")
        if self.start and self.stop and self.stop <= self.start:
            raise ValueError("stop: must be after start")
        return self

    def arm(self, name: str) -> Arm:
        return next(arm for arm in self.arms if arm.name == name)

    def running_at(self, now: datetime) -> bool:
        return (self.start is None or self.start <= now) and (self.stop is None or now < self.stop)


class DefinitionError(ValueError):
    """A definition that cannot run: the message names the field."""


def checked_definition(raw: Any, policies: Mapping[str, ContactPolicy]) -> ExperimentDefinition:
    """The definition, validated, with each arm's overlay checked against each eligible segment's policy
    (``policies``: the workers' resolved policies). Raises ``DefinitionError`` naming the field."""
    try:
        definition = ExperimentDefinition.model_validate(raw)
    except ValidationError as err:
        # The checks across fields name their field in their own message.
        raise DefinitionError(describe_validation_error(err).removeprefix("payload: ")) from None
    for index, segment in enumerate(definition.segments):
        if segment not in policies:
            known = ", ".join(sorted(policies))
            raise DefinitionError(f"segments.{index}: unknown segment {segment!r}; known: {known}")
    for index, arm in enumerate(definition.arms):
        for segment in definition.segments:
            try:
                arm.overlay.applied_to(policies[segment])
            except (ValidationError, ValueError) as err:
                if isinstance(err, ValidationError):
                    why = describe_validation_error(err).removeprefix("payload: ")
                else:
                    why = str(err)
                raise DefinitionError(f"arms.{index}.overlay: in segment {segment!r}: {why}") from None
    return definition


class Assignment(_Strict):
    """The arm an account got, recorded in its state (and, through it, in history)."""

    experiment: str
    arm: str
    shadow: bool = False
    shadow_overlay: PolicyOverlay | None = None
    """For a shadow arm: the overlay the workflow plans with on the side, sending nothing of it."""

    @property
    def label(self) -> str:
        """``ExperimentArm``'s value: ``<experiment>:<arm>``."""
        return f"{self.experiment}:{self.arm}"


def bucket(experiment: str, account_id: str) -> float:
    """The account's place in [0, 1) for this experiment: a hash, the same on every machine."""
    digest = hashlib.sha256(f"{experiment}\x00{account_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(
    definition: ExperimentDefinition, account_id: str, *, closed_arms: Iterable[str] = ()
) -> Assignment | None:
    """The arm of ``account_id``, by its bucket over the open arms' weights; None when every arm is
    closed. Arms closed by a guardrail get no new accounts; the others share their weight."""
    closed = set(closed_arms)
    open_arms = [arm for arm in definition.arms if arm.name not in closed]
    if not open_arms:
        return None
    total = sum(arm.weight for arm in open_arms)
    point = bucket(definition.name, account_id) * total
    chosen = open_arms[-1]
    for arm in open_arms:
        if point < arm.weight:
            chosen = arm
            break
        point -= arm.weight
    return Assignment(
        experiment=definition.name,
        arm=chosen.name,
        shadow=chosen.shadow,
        shadow_overlay=chosen.overlay if chosen.shadow else None,
    )


def policy_for_arm(
    definition: ExperimentDefinition, assignment: Assignment, policy: ContactPolicy
) -> ContactPolicy:
    """The policy the account acts on: the arm's overlay on its segment's policy; a shadow arm acts on
    the champion's."""
    arm = definition.champion if assignment.shadow else assignment.arm
    return definition.arm(arm).overlay.applied_to(policy)
