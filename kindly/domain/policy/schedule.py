"""When and how to contact an account next: a pure function of (policy, state, now).

No I/O, no clock, no randomness: the workflow calls ``plan_next`` with ``workflow.now()`` and unit
tests call it with any instant. All time-zone arithmetic lives here, outside the workflow sandbox
(whose restricted ``zoneinfo`` cannot do it), and uses the pinned ``tzdata``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from kindly.domain.contract import Stage, TemplateName
from kindly.domain.policy.moments import DEFERRAL_REASONS as DEFERRAL_REASONS
from kindly.domain.policy.moments import SEARCH_HORIZON_DAYS as SEARCH_HORIZON_DAYS
from kindly.domain.policy.moments import Deferral as Deferral
from kindly.domain.policy.moments import Step as Step
from kindly.domain.policy.moments import StepKind as StepKind
from kindly.domain.policy.moments import first_allowed_moment as first_allowed_moment
from kindly.domain.policy.moments import local_date as local_date
from kindly.domain.policy.moments import local_iso as local_iso
from kindly.domain.policy.moments import zone_date as zone_date
from kindly.domain.policy.plan_steps import next_plan_step
from kindly.domain.state import AccountState


@dataclass(frozen=True)
class _Candidate:
    key: str
    day: date
    last_valid: date | None
    template: TemplateName
    overdue: bool


def _cadence_candidates(state: AccountState, floor: date) -> Iterator[_Candidate]:
    """The cadence's next touches in order; the first still valid wins."""
    policy = state.policy
    due = state.account.due_date
    done = set(state.done_touches)
    for days_before in sorted(set(policy.pre_due_days), reverse=True):
        key = f"D-{days_before}"
        nominal = due - timedelta(days=days_before)
        if key in done or nominal < state.started_on:
            continue
        yield _Candidate(
            key,
            max(nominal, floor),
            due - timedelta(days=1) if days_before else due,
            TemplateName.PRE_DUE if days_before else TemplateName.DUE_TODAY,
            overdue=False,
        )
    first_overdue = f"D+{policy.first_overdue_day}"
    if first_overdue not in done:
        nominal = due + timedelta(days=policy.first_overdue_day)
        yield _Candidate(first_overdue, max(nominal, floor), None, TemplateName.FIRST_OVERDUE, True)
        return
    anchor = state.last_touch_date or floor
    nominal = anchor + timedelta(days=policy.follow_up_interval_days)
    yield _Candidate("follow_up", max(nominal, floor), None, TemplateName.FOLLOW_UP, True)


def plan_next(state: AccountState, now: datetime, *, spread: bool = False, same_day: bool = True) -> Step:
    """The next thing to do for this account and when: the whole contact policy in one call.

    ``spread`` places reminders at the account's moment of the window (``spread_offset``) rather
    than its opening. ``same_day`` records a wait for today's window as a deferral
    (``first_allowed_moment``); runs recorded before that rule pass False. An open complaint's
    deadline comes first when it is sooner than the next contact.
    """
    step = _plan_contact(state, now, spread=spread, same_day=same_day)
    if state.outcome is not None:
        return step
    deadline = next(
        (found for complaint in state.complaints if (found := complaint.next_deadline()) is not None), None
    )
    if deadline is None or (step.at is not None and step.at < deadline[0]):
        return step
    at, which = deadline
    return Step(StepKind.COMPLAINT_DEADLINE, at=max(at, now), touch_key=f"complaint-{which}")


def _plan_contact(state: AccountState, now: datetime, *, spread: bool, same_day: bool) -> Step:
    if state.outcome is not None:
        return Step(StepKind.IDLE)
    if state.specialist_reason is not None:
        # A hand-off to people is not contact with the customer: it goes at once, paused or not.
        return Step(StepKind.SPECIALIST, at=now, touch_key="specialist")
    # An opt-out is confirmed even during a pause: the customer asked for it.
    confirm_opt_out = TemplateName.OPT_OUT_CONFIRMATION in state.pending_service
    # A complaint holds contact as a pause does, beyond the pause's end: until an operator resumes.
    if (state.paused or state.complaint_hold) and not confirm_opt_out:
        if not state.paused or state.paused_until is None:
            return Step(StepKind.IDLE)
        return Step(StepKind.RESUME, at=max(state.paused_until, now), touch_key="resume")
    # After a window that closed on a failing gateway, SMS wait for the next window (a wait its own
    # timeline entry already explains: no deferral of the same day is added for it).
    sms_earliest = max(now, state.sms_not_before or now)
    same_day = same_day and sms_earliest == now
    if state.pending_service:
        template = TemplateName.OPT_OUT_CONFIRMATION if confirm_opt_out else state.pending_service[0]
        return _service_step(state, template, sms_earliest, same_day=same_day)
    if state.escalation == Stage.SPECIALIST:
        return Step(StepKind.IDLE)
    plan_step = next_plan_step(state, sms_earliest, spread=spread, same_day=same_day)
    if plan_step is not None:
        return plan_step
    if state.escalation == Stage.PHONE:
        return _next_phone_step(state, now, same_day=same_day)
    earliest_day = local_date(state, sms_earliest)
    return _next_cadence_step(state, sms_earliest, earliest_day, spread=spread, same_day=same_day)


def owed_confirmation(state: AccountState, now: datetime, *, same_day: bool = True) -> Step | None:
    """The opt-out confirmation an ended account still owes (it was repaid, settled or closed while the
    confirmation waited for its window or retried): the customer asked to stop and is told so, once.
    None when nothing is owed, or the number cannot receive SMS."""
    if TemplateName.OPT_OUT_CONFIRMATION not in state.pending_service or state.sms_undeliverable:
        return None
    earliest = max(now, state.sms_not_before or now)
    return _service_step(state, TemplateName.OPT_OUT_CONFIRMATION, earliest, same_day=same_day)


def _service_step(state: AccountState, template: TemplateName, earliest: datetime, *, same_day: bool) -> Step:
    """A reply the customer asked for, at the first moment of the service window from ``earliest``."""
    at, end, deferrals = first_allowed_moment(
        state, local_date(state, earliest), earliest, service=True, capped=False, same_day=same_day
    )
    return Step(
        StepKind.SERVICE_SMS,
        at=at,
        template=template,
        touch_key=f"service:{template}",
        not_after=end,
        deferrals=deferrals,
    )


def _next_phone_step(state: AccountState, now: datetime, *, same_day: bool) -> Step:
    policy = state.policy
    earliest = now
    call_back = state.call_back_at is not None
    if state.call_back_at is not None:
        # The customer's own time: a call beyond the attempts the policy allows, since they asked.
        earliest = max(now, state.call_back_at)
    elif state.phone_requested_at is not None:
        earliest = max(now, state.phone_requested_at + timedelta(hours=policy.call_outcome_wait_hours))
    if state.phone_attempt >= policy.phone_attempts and not call_back:
        return Step(StepKind.SPECIALIST, at=earliest, touch_key="specialist")
    at, end, deferrals = first_allowed_moment(
        state,
        local_date(state, earliest),
        earliest,
        capped=False,
        call=True,
        same_day=same_day,
        requested=call_back,
    )
    return Step(
        StepKind.CALL,
        at=at,
        touch_key=f"call-{state.phone_attempt + 1}",
        attempt=state.phone_attempt + 1,
        not_after=end,
        deferrals=deferrals,
    )


def _next_cadence_step(
    state: AccountState, now: datetime, today: date, *, spread: bool, same_day: bool
) -> Step:
    policy = state.policy
    floor = today
    if state.promise_date is not None:
        floor = max(floor, state.promise_date + timedelta(days=policy.promise_grace_days))
    superseded: list[tuple[str, str]] = []
    for candidate in _cadence_candidates(state, floor):
        if (state.promise_date is not None or state.plan_break_owed) and candidate.overdue:
            # A broken promise is followed up the day after its grace, and a broken plan at once, not
            # at the next cadence slot.
            candidate = replace(candidate, day=floor)
        if candidate.last_valid is not None and candidate.day > candidate.last_valid:
            superseded.append((candidate.key, "window for this reminder has passed"))
            continue
        no_sms = state.opted_out or state.sms_undeliverable
        if no_sms and not candidate.overdue:
            why = "customer opted out of SMS" if state.opted_out else "number cannot receive SMS"
            superseded.append((candidate.key, why))
            continue
        escalate = candidate.overdue and (no_sms or state.unanswered_sms >= policy.unanswered_to_escalate)
        call = escalate and not policy.route_straight_to_specialist
        at, end, deferrals = first_allowed_moment(
            state,
            candidate.day,
            now,
            capped=not escalate,
            call=call,
            spread=spread and not escalate,
            same_day=same_day,
        )
        last_valid = candidate.last_valid
        if at is not None and last_valid is not None and local_date(state, at) > last_valid:
            # The last valid day was either blocked (its deferral says why) or its window had
            # already closed when planning, which leaves no deferral behind.
            last_day = [d.reason for d in deferrals if d.day == last_valid]
            why = last_day[-1] if last_day else "quiet_hours"
            superseded.append((candidate.key, f"deferred past its last day ({why})"))
            continue
        if escalate:
            kind = StepKind.SPECIALIST if policy.route_straight_to_specialist else StepKind.CALL
            return Step(
                kind,
                at=at,
                touch_key="specialist" if kind is StepKind.SPECIALIST else "call-1",
                attempt=1,
                nominal_day=candidate.day,
                not_after=end,
                deferrals=deferrals,
                superseded=tuple(superseded),
            )
        template = candidate.template
        if candidate.overdue and (state.promise_date is not None or state.promise_broken):
            template = TemplateName.BROKEN_PROMISE
        if candidate.overdue and state.plan_break_owed:
            template = TemplateName.PLAN_BROKEN
        return Step(
            StepKind.SMS,
            at=at,
            template=template,
            touch_key=candidate.key,
            counts_for_escalation=candidate.overdue,
            nominal_day=candidate.day,
            not_after=end,
            deferrals=deferrals,
            superseded=tuple(superseded),
        )
    raise AssertionError("the cadence always ends in an overdue candidate")  # pragma: no cover
