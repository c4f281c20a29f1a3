"""What a finished action does to an account: pure functions over ``AccountState``, like the signals' in
``kindly.domain.effects``, whose :class:`~kindly.domain.effects.Effect` they return.

"The activity finished" is one more input to the account's state: a send that went out, one the gateway
refused, one the provider deferred (its frequency limit, a provider alarm), one cancelled while it retried,
a call task or a hand-off made or cancelled. None of them raises, whatever signals came between the
action's start and its end (a property test runs random interleavings of both).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Protocol
from zoneinfo import ZoneInfo

from kindly.domain.contract import Stage, TemplateName, TimelineKind
from kindly.domain.effects import ActionKind, CancelReason, Effect, Entry
from kindly.domain.messages.variants import DEFAULT_VARIANT
from kindly.domain.policy.model import CALL_HISTORY_KEPT
from kindly.domain.policy.schedule import local_date, local_iso
from kindly.domain.state import AccountState

SMS_DAYS_KEPT = 14
"""Local dates of reminders kept in the state: the daily and 7-day caps look no further back."""

FREQUENCY_LIMITED = "frequency_limited"
"""The SMS activity's status when the provider's per-number frequency limit refused the message."""
PROVIDER_BLOCKED = "provider_blocked"
"""The SMS activity's status when the lender's provider account cannot send (an open provider alarm)."""
PROVIDER_DEFERRALS = MappingProxyType(
    {FREQUENCY_LIMITED: "provider_limit", PROVIDER_BLOCKED: "provider_alarm"}
)
"""The SMS outcomes that defer the touch to its next window (nothing went out), and the deferral reason
each counts as (``kindly_deferrals``)."""


@dataclass(frozen=True)
class SmsAction:
    """One SMS touchpoint as the workflow started it."""

    kind: ActionKind
    """``REMINDER`` or ``SERVICE_SMS``."""
    template: TemplateName
    touchpoint: int
    touch_key: str | None = None
    counts_for_escalation: bool = False


@dataclass(frozen=True)
class Handoff:
    """A call task or the specialist hand-off, as the workflow started it."""

    kind: ActionKind
    """``CALL_TASK`` or ``SPECIALIST``."""
    touchpoint: int
    reason: str
    attempt: int = 0

    @property
    def what(self) -> str:
        return (
            f"call task attempt {self.attempt}"
            if self.kind is ActionKind.CALL_TASK
            else "specialist hand-off"
        )


class SmsOutcome(Protocol):
    """What the SMS activity answers (``activities.inputs.SendSmsResult``)."""

    @property
    def status(self) -> str: ...
    @property
    def segments(self) -> int: ...
    @property
    def detail(self) -> str: ...
    @property
    def retry_after_seconds(self) -> int | None: ...


def sms_result(
    state: AccountState,
    action: SmsAction,
    result: SmsOutcome,
    *,
    today: date,
    not_after: datetime | None,
    now: datetime | None = None,
) -> Effect:
    """The SMS activity answered ``result`` at ``now`` for a send planned in a window ending at
    ``not_after``."""
    if result.status == FREQUENCY_LIMITED and result.retry_after_seconds is not None and now is not None:
        retry_at = now + timedelta(seconds=result.retry_after_seconds)
        if not_after is None or retry_at < not_after:
            return sms_refused_by_provider(
                state,
                action,
                result.status,
                result.detail,
                not_after=not_after,
                today=today,
                retry_at=retry_at,
            )
    # Answers recorded before variants existed have none.
    variant = getattr(result, "variant", None)
    return sms_finished(
        state,
        action,
        result.status,
        segments=result.segments,
        detail=result.detail,
        today=today,
        not_after=not_after,
        variant=variant if isinstance(variant, str) else None,
    )


def sms_finished(
    state: AccountState,
    action: SmsAction,
    status: str,
    *,
    segments: int,
    detail: str,
    today: date,
    not_after: datetime | None = None,
    variant: str | None = None,
) -> Effect:
    """The SMS activity ended with ``status`` (``sent``, ``duplicate``, ``rejected``, ``window_closed``,
    ``frequency_limited``, ``provider_blocked``), or a cancelled one found that an attempt's answer was
    lost (``unknown``): the gateway may have taken it, so it counts as sent (caps, cadence, unanswered
    count), and the timeline says "may have". A message made from a template variant other than the
    default says which (``variant``), so that wording can be told apart in the timeline and audit log.

    ``not_after`` is the end of the window the send was planned in: a provider's refusal
    (``PROVIDER_DEFERRALS``) defers the touch past it (``sms_refused_by_provider``).

    A service reply leaves the pending list only if it is still there: a STOP that arrived while it
    was retrying has replaced the list with the confirmation, which must not be lost.
    """
    if status in PROVIDER_DEFERRALS:
        return sms_refused_by_provider(state, action, status, detail, not_after=not_after, today=today)
    state = state.model_copy()
    template = action.template
    if status == "window_closed":
        entry = Entry(TimelineKind.DEFERRED, f"{template}: window closed before sending; moved")
        return Effect(state, (entry,))
    state.touchpoints = max(state.touchpoints, action.touchpoint)
    state.sms_not_before = None
    if action.kind is ActionKind.SERVICE_SMS:
        state.pending_service = [owed for owed in state.pending_service if owed is not template]
    else:
        if (
            action.touch_key
            and action.touch_key != "follow_up"
            and action.touch_key not in state.done_touches
        ):
            state.done_touches = [*state.done_touches, action.touch_key]
        state.last_touch_date = today
    if status == "rejected":
        entry = Entry(TimelineKind.SMS_FAILED, f"{template} touchpoint {action.touchpoint}: {detail}", True)
        return Effect(state, (entry,))
    state.sms_sent += 1
    if action.kind is ActionKind.REMINDER:
        state.sms_days = [*state.sms_days, today][-SMS_DAYS_KEPT:]
        if template is TemplateName.BROKEN_PROMISE:
            state.promise_broken = False
        if template is TemplateName.PLAN_BROKEN:
            state.plan_break_owed = False
        if template is TemplateName.INSTALMENT_OFFER:
            state.instalment_offered = True
        if action.counts_for_escalation:
            state.unanswered_sms += 1
    shown = (
        "may have reached the customer: an attempt's answer was lost before the cancellation"
        if status == "unknown"
        else f"{segments} segment(s)"
    )
    if variant is not None and variant != DEFAULT_VARIANT:
        shown = f"{shown}; variant {variant}"
    entry = Entry(TimelineKind.SMS_SENT, f"{template} touchpoint {action.touchpoint} ({shown})", True)
    return Effect(state, (entry,))


def sms_not_accepted(
    state: AccountState, action: SmsAction, not_after: datetime | None, cause: str
) -> Effect:
    """The gateway did not take the message before its window closed: it waits for the next window
    (the same touchpoint, so the same idempotency key, is planned again)."""
    state = state.model_copy()
    state.sms_not_before = not_after
    entry = Entry(
        TimelineKind.DEFERRED,
        f"{action.template} not accepted before the window closed ({cause}); next window",
    )
    return Effect(state, (entry,))


def sms_refused_by_provider(
    state: AccountState,
    action: SmsAction,
    status: str,
    code: str,
    *,
    not_after: datetime | None,
    today: date,
    retry_at: datetime | None = None,
) -> Effect:
    """The provider took nothing: its per-number frequency limit refused the message
    (``frequency_limited``), or the lender's account with it cannot send and an alarm holds every send
    (``provider_blocked``). ``code`` is the provider's.

    The touch waits for the provider's next allowed moment: ``retry_at`` when the limit it met is a
    minute's or an hour's and that moment is still inside the window (an opt-out confirmation right after
    a reminder goes a minute later, not tomorrow); otherwise the next day's window, as after
    ``sms_not_accepted`` (a day's limit, or an alarm): ``sms_not_before`` becomes the end of the window
    the send was planned in (``not_after``), or the start of the next local day when the send had none.
    Nothing else changes: the touchpoint stays unused, so the same touchpoint (the same idempotency
    key, whose outbox row the activity released) goes next time; a service reply stays pending; no
    cap, cadence or escalation counts it. The timeline entry says why; the audit trail writes it (the
    activity wrote no row of it).
    """
    state = state.model_copy()
    state.sms_not_before = retry_at or (not_after if not_after is not None else _next_local_day(state, today))
    if status == FREQUENCY_LIMITED:
        when = (
            "next window" if retry_at is None else f"again at {local_iso(state.account.timezone, retry_at)}"
        )
        why = f"{action.template} deferred: provider frequency limit ({code}); {when}"
    else:
        why = f"{action.template} held: sending stopped by a provider alarm ({code}); next window"
    return Effect(state, (Entry(TimelineKind.DEFERRED, why),))


def _next_local_day(state: AccountState, today: date) -> datetime:
    """The first instant of the customer's local day after ``today``."""
    zone = ZoneInfo(state.account.timezone)
    return datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)


def sms_cancelled(state: AccountState, action: SmsAction, reason: CancelReason) -> Effect:
    """The SMS was cancelled before the gateway took it. Its touchpoint number is used up (a message
    planned again gets a new idempotency key and the current wording), and nothing else counts it:
    not the caps, not the unanswered reminders, not the cadence, which plans the touch again."""
    state = state.model_copy()
    state.touchpoints = max(state.touchpoints, action.touchpoint)
    entry = Entry(
        TimelineKind.REMINDER_CANCELLED,
        f"reminder cancelled ({reason}): {action.template} touchpoint {action.touchpoint}",
    )
    return Effect(state, (entry,))


def call_task_created(
    state: AccountState,
    *,
    attempt: int,
    touchpoint: int,
    reason: str,
    status: str,
    detail: str,
    now: datetime,
) -> Effect:
    """The phone team has (or has refused) the call task."""
    state = state.model_copy()
    state.touchpoints = max(state.touchpoints, touchpoint)
    state.escalation = Stage.PHONE
    state.phone_attempt = attempt
    state.phone_requested_at = now
    state.call_back_at = None
    state.call_attempt_days = [*state.call_attempt_days, local_date(state, now)][-CALL_HISTORY_KEPT:]
    if status == "rejected":
        state.specialist_reason = f"phone team rejected the call task: {detail}"
    entry = Entry(TimelineKind.ESCALATED_PHONE, f"call task attempt {attempt} ({reason}): {status}", True)
    return Effect(state, (entry,))


def specialist_handed_off(state: AccountState, *, touchpoint: int, reason: str, status: str) -> Effect:
    state = state.model_copy()
    state.touchpoints = max(state.touchpoints, touchpoint)
    state.escalation = Stage.SPECIALIST
    state.specialist_reason = None
    return Effect(state, (Entry(TimelineKind.ESCALATED_SPECIALIST, f"{reason}: {status}", True),))


def handoff_cancelled(state: AccountState, *, what: str, touchpoint: int, reason: CancelReason) -> Effect:
    """A call task or specialist hand-off cancelled before the other side confirmed it: the account
    no longer needs it. Its touchpoint number is used up; the stage stays as the signal left it."""
    state = state.model_copy()
    state.touchpoints = max(state.touchpoints, touchpoint)
    entry = Entry(TimelineKind.HANDOFF_CANCELLED, f"{what} cancelled ({reason}): touchpoint {touchpoint}")
    return Effect(state, (entry,))


def handed_off(state: AccountState, handoff: Handoff, status: str, detail: str, now: datetime) -> Effect:
    """The phone team or the specialists answered the hand-off (accepted, logged or rejected)."""
    if handoff.kind is ActionKind.CALL_TASK:
        return call_task_created(
            state,
            attempt=handoff.attempt,
            touchpoint=handoff.touchpoint,
            reason=handoff.reason,
            status=status,
            detail=detail,
            now=now,
        )
    return specialist_handed_off(state, touchpoint=handoff.touchpoint, reason=handoff.reason, status=status)
