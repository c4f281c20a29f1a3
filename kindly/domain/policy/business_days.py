"""Deadlines in business days on a policy's calendar: what a complaint's acknowledgement and resolution
are counted in.

A business day is a Monday to Friday that is not a public holiday of the policy's holiday calendar, or a
weekend day the calendar lists as a working day (the mainland's 调休 make-up days). A year the calendar
has no data for counts Mondays to Fridays; a policy without a calendar counts them always. A deadline of
``n`` business days falls at the end of the ``n``-th business day after the day the complaint was
received, in the customer's zone: midnight, local time, as the next day begins.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from kindly.domain.policy.calendars import HolidayCalendar, load_calendar
from kindly.domain.policy.model import ContactPolicy


def is_business_day(day: date, calendar: HolidayCalendar | None) -> bool:
    if calendar is not None and calendar.covers(day):
        if day in calendar.working_days:
            return True
        if calendar.is_holiday(day):
            return False
    return day.weekday() < 5


def business_deadline(policy: ContactPolicy, timezone: str, received_at: datetime, days: int) -> datetime:
    """The end of the ``days``-th business day after ``received_at``'s local day, as a UTC instant."""
    zone = ZoneInfo(timezone)
    calendar = load_calendar(policy.holiday_calendar) if policy.holiday_calendar else None
    day = received_at.astimezone(zone).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_business_day(day, calendar):
            counted += 1
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return end.astimezone(UTC)
