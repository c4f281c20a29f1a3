"""When contact may happen: the steps the planner returns, the deferrals they record, the customer's local
dates, and the first allowed moment on or after a day (windows, blocked days, caps, phone limits, the
herd's spread). Pure; ``kindly.domain.policy.schedule`` and ``plan_steps`` plan with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from kindly.domain.contract import TemplateName
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
    PLAN_BROKEN = "plan_broken"
    """An instalment is still unpaid after its grace: the plan ends (no contact by itself)."""
    COMPLAINT_DEADLINE = "complaint_deadline"
    """An open complaint's deadline (to acknowledge or to resolve it): unmet, it is escalated."""


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
        "provider_limit",
        "provider_alarm",
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

    Two more are a send's outcome, never the planner's (``kindly.domain.completions.PROVIDER_DEFERRALS``,
    counted by the workflow's metrics): ``provider_limit``, the provider's per-number frequency limit
    refused the message, and ``provider_alarm``, a provider alarm holds every send. Either defers the
    touch to the next day's window.
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
