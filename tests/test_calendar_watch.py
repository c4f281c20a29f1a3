"""The worker's watch on its holiday calendars (``kindly.programs.calendar_watch``): provisional years at
start-up, and from 90 days before a calendar's data ends a daily warning that says how to extend it."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from kindly.domain.policy import calendars as calendar_data
from kindly.domain.policy.calendars import HolidayCalendar, load_calendar
from kindly.domain.policy.model import ContactPolicy, load_policies
from kindly.programs import calendar_watch
from kindly.programs.calendar_watch import (
    CHECK_INTERVAL,
    calendars_in_use,
    ending_warnings,
    provisional_warnings,
    repeat_ending_warnings,
    watching_calendars,
)
from kindly.programs.worker import build_worker
from kindly.settings import Settings

WATCH_TASK = "kindly holiday calendar watch"
END = date(2027, 12, 31)


def calendar(name: str = "xx", years: frozenset[int] = frozenset({2026, 2027})) -> HolidayCalendar:
    return HolidayCalendar(
        name=name,
        holidays=frozenset(date(year, 1, 1) for year in years),
        working_days=frozenset(),
        years=years,
        provisional_years=frozenset(),
    )


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "kindly.worker" and record.levelno == logging.WARNING
    ]


# --- the calendar's own helpers ------------------------------------------------------------------


def test_last_day_is_the_end_of_the_last_year_without_a_gap() -> None:
    assert load_calendar("cn").last_day == END
    assert load_calendar("us").last_day == END
    assert calendar(years=frozenset({2026})).last_day == date(2026, 12, 31)
    assert calendar(years=frozenset({2026, 2027, 2029})).last_day == END


def test_a_provisional_year_keeps_its_note() -> None:
    cn = load_calendar("cn")
    note = cn.provisional_note(2027)
    assert note is not None and note.startswith("PROVISIONAL")
    assert cn.provisional_note(2026) is None and cn.provisional_note(2030) is None
    parsed = calendar_data._parse_calendars(
        {
            "x": {
                "description": "d",
                "source": "s",
                "years": {"2026": {"status": "provisional", "note": "estimate", "holidays": ["2026-01-01"]}},
            }
        }
    )
    assert parsed["x"].provisional_notes == ((2026, "estimate"),)


# --- the warnings, pure functions of (calendars, today) ------------------------------------------


def test_no_warning_91_days_before_the_end() -> None:
    assert ending_warnings([calendar()], END - timedelta(days=91)) == []


@pytest.mark.parametrize("days_left", [90, 45, 1, 0])
def test_a_warning_from_90_days_before_the_end_to_the_last_day(days_left: int) -> None:
    [warning] = ending_warnings([calendar("cn")], END - timedelta(days=days_left))
    assert f"holiday calendar cn has dates only up to 2027-12-31 ({days_left} days from today)" in warning
    assert "deferred (no_calendar)" in warning
    assert "Add 2028 to kindly/domain/policy/data/holidays.json and deploy the workers" in warning
    assert "`kindly bulk-refresh-policy`" in warning


def test_after_the_end_the_warning_says_since_when_and_which_years_to_add() -> None:
    [warning] = ending_warnings([calendar("cn")], END + timedelta(days=5))
    assert "holiday calendar cn ended on 2027-12-31 (5 days ago)" in warning
    assert "Add 2028 to kindly/domain/policy/data/holidays.json" in warning
    [late] = ending_warnings([calendar("cn")], date(2029, 3, 1))
    assert "Add 2028 to 2029 to kindly/domain/policy/data/holidays.json" in late


def test_each_calendar_is_judged_on_its_own_data() -> None:
    longer = calendar("long", frozenset({2026, 2027, 2028}))
    warnings = ending_warnings([calendar("short"), longer], END - timedelta(days=10))
    assert len(warnings) == 1 and "holiday calendar short " in warnings[0]


def test_provisional_years_are_reported_with_their_note_until_they_are_past() -> None:
    cn, us = load_calendar("cn"), load_calendar("us")
    [line] = provisional_warnings([cn, us], date(2026, 6, 1))
    assert line == f"holiday calendar cn 2027 is provisional: {cn.provisional_note(2027)}"
    assert provisional_warnings([cn, us], date(2027, 12, 31)) == [line]
    assert provisional_warnings([cn, us], date(2028, 1, 1)) == []


def test_the_calendars_in_use_are_those_the_policies_name() -> None:
    assert [c.name for c in calendars_in_use(load_policies(None))] == ["cn", "us"]
    none = {"plain": ContactPolicy(holiday_calendar=None), "us": ContactPolicy(regime="us")}
    assert [c.name for c in calendars_in_use(none)] == ["us"]


# --- the daily repetition, on an injected clock ----------------------------------------------------


class FakeDays:
    """A clock that moves a day at each wait, and stops the loop after ``waits`` waits."""

    class Stop(Exception):
        pass

    def __init__(self, today: date, waits: int) -> None:
        self.today = today
        self.waits_left = waits
        self.waited: list[float] = []

    def now(self) -> date:
        return self.today

    async def sleep(self, seconds: float) -> None:
        self.waited.append(seconds)
        if not self.waits_left:
            raise FakeDays.Stop
        self.waits_left -= 1
        self.today += timedelta(days=1)


async def test_the_warning_repeats_once_a_day(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="kindly.worker")
    days = FakeDays(END - timedelta(days=92), waits=4)
    with pytest.raises(FakeDays.Stop):
        await repeat_ending_warnings((calendar("cn"),), today=days.now, sleep=days.sleep)
    # Checked after each of four days (91, 90, 89 and 88 days left): warned on the last three.
    assert days.waited == [CHECK_INTERVAL.total_seconds()] * 5
    logged = warnings_logged(caplog)
    assert [line.split("(")[1].split(")")[0] for line in logged] == [
        "90 days from today",
        "89 days from today",
        "88 days from today",
    ]


async def test_the_watch_reports_at_once_then_waits_and_is_cancelled_with_its_block(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="kindly.worker")
    waiting = asyncio.Event()
    intervals: list[float] = []

    async def wait_forever(seconds: float) -> None:
        intervals.append(seconds)
        waiting.set()
        await asyncio.Event().wait()

    cn = load_calendar("cn")
    async with watching_calendars(
        (cn,), today=lambda: END - timedelta(days=30), sleep=wait_forever, interval=timedelta(hours=6)
    ) as task:
        logged = warnings_logged(caplog)
        assert logged[0].startswith("holiday calendar cn 2027 is provisional: PROVISIONAL")
        assert "holiday calendar cn has dates only up to 2027-12-31 (30 days from today)" in logged[1]
        assert len(logged) == 2
        await waiting.wait()
        assert intervals == [6 * 3600] and not task.done()
    assert task.cancelled()


async def test_the_worker_runs_the_watch_for_its_policies_calendars(
    env: WorkflowEnvironment,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="kindly.worker")
    monkeypatch.setattr(calendar_watch, "utc_today", lambda: END - timedelta(days=10))
    async with build_worker(env.client, settings):
        assert any(task.get_name() == WATCH_TASK for task in asyncio.all_tasks())
    assert not any(task.get_name() == WATCH_TASK for task in asyncio.all_tasks())
    logged = warnings_logged(caplog)
    assert [line.split(":")[0] for line in logged] == [
        "holiday calendar cn 2027 is provisional",
        "holiday calendar cn has dates only up to 2027-12-31 (10 days from today)",
        "holiday calendar us has dates only up to 2027-12-31 (10 days from today)",
    ]
