"""When and how to contact an account next: a pure function of (policy, state, now).

No I/O, no clock, no randomness: the workflow calls ``plan_next`` with ``workflow.now()`` and unit
tests call it with any instant. All time-zone arithmetic lives here, outside the workflow sandbox
(whose restricted ``zoneinfo`` cannot do it), and uses the pinned ``tzdata``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from kindly.domain.contract import Stage, TemplateName
from kindly.domain.policy.limits import (
    blocked_reason,
    call_limit_reason,
    contact_window,
    sms_cap_reason,
    spread_offset,
)
from kindly.domain.state import AccountState

SEARCH_HORIZON_DAYS = 400
"""How far ahead an allowed day is searched for before the policy is declared unusable."""


class StepKind(StrEnum):
    IDLE = "idle"
    """Nothing is scheduled: wait for a signal (paused without end, specialist stage, ended)."""
    SMS = "sms"
    SERVICE_SMS = "service_sms"
    CALL = "call"
    SPECIALIST = "specialist"
    RESUME = "resume"


DEFERRAL_REASONS = frozenset(
    {
        "quiet_hours",
        "holiday",
        "birthday",
        "blocked_date",
        "daily_cap",
        "weekly_cap",
        "call_cap",
        "after_conversation",
        "no_calendar",
    }
)


@dataclass(frozen=True)
class Deferral:
    """A local day passed over when looking for the first allowed moment, and why."""

    reason: str
    """One of ``DEFERRAL_REASONS``:

    - ``quiet_hours``: the day's window (legal, preferred and the customer's own, intersected) had
      already closed;
    - ``holiday``: a public holiday of the policy's holiday calendar;
    - ``birthday``: the customer's birthday (when the policy avoids it);
    - ``blocked_date``: one of the policy's ``blocked_dates``;
    - ``daily_cap``: ``max_sms_per_day`` reminders already went that local day;
    - ``weekly_cap``: one more reminder would put more than ``max_sms_per_7_days`` in some 7
      consecutive local days;
    - ``call_cap``: one more call attempt on that local day would break a phone limit of the
      policy's regime (attempts per day or per 7 consecutive days, connected calls per day);
    - ``after_conversation``: too soon after a telephone conversation with the customer for the
      regime (Regulation F: not on its day or the 6 days after);
    - ``no_calendar``: the policy's holiday calendar has no data for the day's year. The step then
      has no moment (``at`` is None) and waits until a policy refresh brings the year.
    """
    day: date


@dataclass(frozen=True)
class Step:
    kind: StepKind
    at: datetime | None = None
    template: TemplateName | None = None
    touch_key: str | None = None
    counts_for_escalation: bool = False
    nominal_day: date | None = None
    not_after: datetime | None = None
    attempt: int = 0
    deferrals: tuple[Deferral, ...] = ()
    """The days passed over before ``at``; when ``at`` is None, the last one says what it waits for."""
    superseded: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def waiting_for(self) -> str | None:
        """Why a step that is due has no moment yet (``no_calendar``), else None."""
        if self.at is None and self.kind is not StepKind.IDLE and self.deferrals:
            return self.deferrals[-1].reason
        return None

    @property
    def plan_key(self) -> str:
        return f"{self.kind}:{self.touch_key}:{self.at.isoformat() if self.at else '-'}"


def zone_date(timezone: str, instant: datetime) -> date:
    """The calendar date of ``instant`` in an IANA time zone."""
    return instant.astimezone(ZoneInfo(timezone)).date()


def local_date(state: AccountState, instant: datetime) -> date:
    """The customer's local calendar date at ``instant``."""
    return zone_date(state.account.timezone, instant)


def local_iso(timezone: str, instant: datetime) -> str:
    """ISO-8601 in the customer's zone, with offset: how timelines show instants."""
    return instant.astimezone(ZoneInfo(timezone)).isoformat(timespec="seconds")


def _at(day: date, clock: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def first_allowed_moment(
    state: AccountState,
    day: date,
    earliest: datetime,
    *,
    service: bool = False,
    capped: bool = True,
    call: bool = False,
    spread: bool = False,
    same_day: bool = True,
    requested: bool = False,
) -> tuple[datetime | None, datetime | None, tuple[Deferral, ...]]:
    """The first instant on or after ``day`` (local) and ``earliest`` when contact is allowed.

    ``capped`` applies the SMS caps; ``call`` the regime's phone limits (for a call task);
    ``spread`` starts the window at the account's ``spread_offset`` instead of its opening.
    Returns the instant, the end of its window (a send must not start after it) and every day that
    was passed over with its reason. ``same_day`` also records ``earliest``'s own day as a
    ``quiet_hours`` deferral when its window is not open at ``earliest`` (a night-time start waits for
    the morning); runs recorded before that rule pass False. A day without holiday data ends the
    search: the instant and its window end are None, and the last deferral says ``no_calendar``.
    ``requested``: a call the customer asked for (``call_limit_reason``).
    """
    policy = state.policy
    zone = ZoneInfo(state.account.timezone)
    start_clock, end_clock = contact_window(state, service=service)
    today = earliest.astimezone(zone).date()
    deferrals: list[Deferral] = []
    for offset in range(SEARCH_HORIZON_DAYS):
        candidate_day = day + timedelta(days=offset)
        window_end = _at(candidate_day, end_clock, zone)
        if window_end <= earliest:
            if same_day and candidate_day == today:
                deferrals.append(Deferral("quiet_hours", candidate_day))
            continue  # a day already gone is not a deferral
        # Replies the customer asked for (HELP, opt-out confirmation) are not reminders: only the
        # legal hours bound them, not holidays or birthdays.
        reason = None if service else blocked_reason(policy, state.account.birthday, candidate_day)
        if reason == "no_calendar":
            return None, None, (*deferrals, Deferral(reason, candidate_day))
        if reason is None and capped:
            reason = sms_cap_reason(policy, state.sms_days, candidate_day)
        if reason is None and call:
            reason = call_limit_reason(state, candidate_day, requested=requested)
        if reason is not None:
            deferrals.append(Deferral(reason, candidate_day))
            continue
        window_opens = _at(candidate_day, start_clock, zone)
        window_start = window_opens
        if spread:
            window_start += spread_offset(
                state.account.account_id, window_end - window_start, policy.send_spread_minutes
            )
        moment = max(window_start, earliest)
        if moment >= window_end:
            deferrals.append(Deferral("quiet_hours", candidate_day))
            continue
        if same_day and candidate_day == today and earliest < window_opens:
            deferrals.append(Deferral("quiet_hours", candidate_day))
        return moment, window_end, tuple(deferrals)
    raise ValueError(f"no allowed contact day within {SEARCH_HORIZON_DAYS} days")


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
    (``first_allowed_moment``); runs recorded before that rule pass False.
    """
    if state.outcome is not None:
        return Step(StepKind.IDLE)
    if state.specialist_reason is not None:
        # A hand-off to people is not contact with the customer: it goes at once, paused or not.
        return Step(StepKind.SPECIALIST, at=now, touch_key="specialist")
    # An opt-out is confirmed even during a pause: the customer asked for it.
    confirm_opt_out = TemplateName.OPT_OUT_CONFIRMATION in state.pending_service
    if state.paused and not confirm_opt_out:
        if state.paused_until is None:
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
        if state.promise_date is not None and candidate.overdue:
            # A broken promise is followed up the day after its grace, not at the next cadence slot.
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
