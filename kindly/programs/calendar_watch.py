"""The worker's watch on the holiday calendars its policies use: which years are provisional, and when
a calendar's data is about to run out.

The planner only knows the holidays of the years in ``kindly/domain/policy/data/holidays.json``. A
reminder whose day lies past a calendar's last covered year waits instead of going out (the audit log
records it as ``deferred`` with the reason ``no_calendar``), so the data must be extended in time. The
worker says so at start-up and once a day while it runs, from ``WARN_DAYS_BEFORE_END`` days before the
last covered day: warning-level log lines that name the calendar, its last day and what to do. They hold
calendar names, dates and the data file's own notes, never anything about a customer.

``ending_warnings`` and ``provisional_warnings`` are pure functions of the calendars and the date;
``watching_calendars`` runs them, with the clock and the wait injectable so tests need no real time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta

from kindly.domain.policy.calendars import HolidayCalendar, load_calendar
from kindly.domain.policy.model import ContactPolicy

logger = logging.getLogger("kindly.worker")

WARN_DAYS_BEFORE_END = 90
"""How many days before a calendar's last covered day the warning starts."""
CHECK_INTERVAL = timedelta(days=1)
"""How often the running worker repeats the warning."""
DATA_FILE = "kindly/domain/policy/data/holidays.json"

Sleep = Callable[[float], Awaitable[object]]


def calendars_in_use(policies: Mapping[str, ContactPolicy]) -> tuple[HolidayCalendar, ...]:
    """The holiday calendars the policies name (``None``: no calendar), sorted by name."""
    names = sorted({policy.holiday_calendar for policy in policies.values() if policy.holiday_calendar})
    return tuple(load_calendar(name) for name in names)


def provisional_warnings(calendars: Iterable[HolidayCalendar], today: date) -> list[str]:
    """One line per provisional year from ``today``'s year on, with the data file's note."""
    return [
        f"holiday calendar {calendar.name} {year} is provisional: {calendar.provisional_note(year)}"
        for calendar in calendars
        for year in sorted(calendar.provisional_years)
        if year >= today.year
    ]


def ending_warnings(calendars: Iterable[HolidayCalendar], today: date) -> list[str]:
    """One line per calendar whose last covered day is at most ``WARN_DAYS_BEFORE_END`` days after
    ``today`` (or already past): the calendar, its last day and how to extend it."""
    warnings = []
    for calendar in calendars:
        last = calendar.last_day
        days_left = (last - today).days
        if days_left > WARN_DAYS_BEFORE_END:
            continue
        first_missing = last.year + 1
        missing = str(first_missing) if today.year <= first_missing else f"{first_missing} to {today.year}"
        if days_left >= 0:
            when = f"has dates only up to {last.isoformat()} ({days_left} days from today)"
            effect = "reminders due after that day will wait"
        else:
            when = f"ended on {last.isoformat()} ({-days_left} days ago)"
            effect = "reminders due after that day are waiting"
        warnings.append(
            f"holiday calendar {calendar.name} {when}: {effect}, recorded as deferred (no_calendar). "
            f"Add {missing} to {DATA_FILE} and deploy the workers, "
            "then run `kindly bulk-refresh-policy` so that the waiting accounts plan again"
        )
    return warnings


def utc_today() -> date:
    return datetime.now(UTC).date()


def _log(warnings: Iterable[str]) -> None:
    for warning in warnings:
        logger.warning("%s", warning)


async def repeat_ending_warnings(
    calendars: tuple[HolidayCalendar, ...],
    *,
    today: Callable[[], date] = utc_today,
    sleep: Sleep = asyncio.sleep,
    interval: timedelta = CHECK_INTERVAL,
) -> None:
    """Wait ``interval``, log ``ending_warnings`` for that day, and again, until cancelled."""
    while True:
        await sleep(interval.total_seconds())
        _log(ending_warnings(calendars, today()))


@asynccontextmanager
async def watching_calendars(
    calendars: tuple[HolidayCalendar, ...],
    *,
    today: Callable[[], date] | None = None,
    sleep: Sleep = asyncio.sleep,
    interval: timedelta = CHECK_INTERVAL,
) -> AsyncIterator[asyncio.Task[None]]:
    """Log the provisional years and the ending warnings now, then repeat the ending warnings every
    ``interval`` in a task beside the block, cancelled when it ends. ``today`` defaults to the UTC
    date (``utc_today``, looked up at the call)."""
    today = today or utc_today
    now = today()
    _log(provisional_warnings(calendars, now))
    _log(ending_warnings(calendars, now))
    task = asyncio.create_task(
        repeat_ending_warnings(calendars, today=today, sleep=sleep, interval=interval),
        name="kindly holiday calendar watch",
    )
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
