"""What a day allows an account: whether it is blocked (holiday, blocked date, birthday), the contact
window in the customer's local time, the SMS caps, the regime's phone limits, and the account's place in
the window-open herd. Pure functions of the policy, the state and a local date; the planner
(``kindly.domain.policy.schedule``) searches days with them."""

from __future__ import annotations

import hashlib
from datetime import date, time, timedelta

from kindly.domain.policy.calendars import load_calendar
from kindly.domain.policy.model import ContactPolicy, RegimeRules
from kindly.domain.state import AccountState


def blocked_reason(policy: ContactPolicy, birthday: date | None, day: date) -> str | None:
    """Why no message may go on this local day, or None when it may. A day of a year the holiday
    calendar has no data for is not taken for a working day: it waits (``no_calendar``)."""
    years = policy.holiday_calendar_years
    if policy.holiday_calendar and years is not None and day.year not in years:
        return "no_calendar"
    if policy.holiday_calendar and load_calendar(policy.holiday_calendar).is_holiday(day):
        return "holiday"
    if day in policy.blocked_dates:
        return "blocked_date"
    if (
        policy.avoid_birthday
        and birthday is not None
        and (birthday.month, birthday.day) == (day.month, day.day)
    ):
        return "birthday"
    return None


def contact_window(state: AccountState, *, service: bool = False) -> tuple[time, time]:
    """The local clock window contact may happen in for this account.

    Service replies get the policy's service window; everything else the preferred window narrowed
    by the customer's stated window (``contact_after``/``contact_before``). A stated window that
    does not overlap the preferred one is ignored. Either is bounded by the regime's legal window.
    """
    policy = state.policy
    legal = policy.rules
    if service:
        start, end = policy.service_window_start, policy.service_window_end
    else:
        start, end = policy.window_start, policy.window_end
        narrowed_start = max(start, state.contact_after or start)
        narrowed_end = min(end, state.contact_before or end)
        if narrowed_start < narrowed_end:
            start, end = narrowed_start, narrowed_end
    # The policy validator already keeps both windows inside the legal one; this is belt and braces.
    return max(start, legal.legal_start), min(end, legal.legal_end)


def sms_cap_reason(policy: ContactPolicy, sms_days: list[date], day: date) -> str | None:
    """Why one more reminder on this local day would break a cap, or None when it would not."""
    if sms_days.count(day) >= policy.max_sms_per_day:
        return "daily_cap"
    # Every 7-day window that holds ``day`` must stay within the cap, the new reminder included.
    near = [sent for sent in sms_days if abs((sent - day).days) < 7]
    for first in (day - timedelta(days=back) for back in range(7)):
        last = first + timedelta(days=6)
        if sum(first <= sent <= last for sent in near) >= policy.max_sms_per_7_days:
            return "weekly_cap"
    return None


def call_limit_reason(state: AccountState, day: date, *, requested: bool = False) -> str | None:
    """Why one more call attempt on this local day would break a phone limit of the policy's
    regime (``REGIMES``), or None when it would not. A call the customer ``requested`` (a call-back
    at their time) is not held back by the quiet period after a conversation: they asked for it."""
    return regime_call_limit_reason(
        state.policy.rules, state.call_attempt_days, state.conversation_days, day, requested=requested
    )


def regime_call_limit_reason(
    rules: RegimeRules, attempts: list[date], conversations: list[date], day: date, *, requested: bool = False
) -> str | None:
    """``call_limit_reason`` on the local dates of past attempts and conversations: the workflow asks
    it of its state, the console of the calls its agents recorded."""
    if (
        not requested
        and rules.no_call_days_after_conversation is not None
        and any(0 <= (day - talked).days < rules.no_call_days_after_conversation for talked in conversations)
    ):
        return "after_conversation"
    if rules.max_conversations_per_day is not None and (
        conversations.count(day) >= rules.max_conversations_per_day
    ):
        return "call_cap"
    if rules.max_call_attempts_per_day is not None and (
        attempts.count(day) >= rules.max_call_attempts_per_day
    ):
        return "call_cap"
    if rules.max_call_attempts_per_7_days is not None:
        # Every 7-day window that holds ``day`` must stay within the cap, this attempt included.
        near = [tried for tried in attempts if abs((tried - day).days) < 7]
        for first in (day - timedelta(days=back) for back in range(7)):
            last = first + timedelta(days=6)
            if sum(first <= tried <= last for tried in near) >= rules.max_call_attempts_per_7_days:
                return "call_cap"
    return None


def spread_offset(account_id: str, window: timedelta, spread_minutes: int) -> timedelta:
    """This account's place in the window-open herd: a stable offset in
    ``[0, min(spread_minutes, window / 2))``, the same on every day and every worker (a hash of the
    account id, never ``hash()``, which changes between processes)."""
    spread = min(timedelta(minutes=spread_minutes), window / 2)
    seconds = int(spread.total_seconds())
    if seconds <= 0:
        return timedelta(0)
    digest = hashlib.sha256(account_id.encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % seconds)
