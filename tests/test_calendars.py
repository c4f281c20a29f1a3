"""Holiday calendars: spot checks against the published arrangements and data sanity."""

from __future__ import annotations

import builtins
import json
from datetime import date, datetime
from importlib import resources
from typing import Any

import pytest

from kindly.domain.policy import calendars
from kindly.domain.policy.calendars import HolidayCalendar, available_calendars, load_calendar
from kindly.errors import ConfigurationError

REQUIRED_YEARS = {2026, 2027}


def _raw_data() -> dict[str, Any]:
    text = resources.files("kindly.domain.policy").joinpath("data/holidays.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


# --- spot checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 1, 1),
        date(2026, 2, 15),
        date(2026, 2, 17),
        date(2026, 2, 23),
        date(2026, 4, 6),
        date(2026, 5, 5),
        date(2026, 6, 19),
        date(2026, 9, 25),
        date(2026, 10, 1),
        date(2026, 10, 7),
    ],
)
def test_cn_2026_holidays(day: date) -> None:
    assert load_calendar("cn").is_holiday(day)


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 1, 4),
        date(2026, 2, 14),
        date(2026, 2, 28),
        date(2026, 5, 9),
        date(2026, 9, 20),
        date(2026, 10, 10),
    ],
)
def test_cn_2026_adjusted_working_days(day: date) -> None:
    cn = load_calendar("cn")
    assert day in cn.working_days
    assert not cn.is_holiday(day)


@pytest.mark.parametrize(
    "day", [date(2026, 11, 23), date(2026, 2, 24), date(2026, 10, 8), date(2026, 12, 25)]
)
def test_cn_ordinary_days_are_not_holidays(day: date) -> None:
    assert not load_calendar("cn").is_holiday(day)


def test_cn_2026_official_2027_provisional() -> None:
    cn = load_calendar("cn")
    assert 2026 not in cn.provisional_years
    assert cn.years >= cn.provisional_years
    # The 2027 lunar-calendar festival days are holidays whatever the final arrangement.
    for day in (date(2027, 2, 6), date(2027, 4, 5), date(2027, 6, 9), date(2027, 9, 15)):
        assert cn.is_holiday(day)


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 7, 3),  # Independence Day (Saturday) observed
        date(2026, 11, 26),  # Thanksgiving
        date(2026, 1, 19),  # Martin Luther King Jr. Day
        date(2026, 12, 25),
        date(2027, 6, 18),  # Juneteenth (Saturday) observed
        date(2027, 7, 5),  # Independence Day (Sunday) observed
        date(2027, 12, 24),  # Christmas (Saturday) observed
        date(2027, 12, 31),  # New Year's Day 2028 (Saturday) observed
    ],
)
def test_us_holidays(day: date) -> None:
    assert load_calendar("us").is_holiday(day)


def test_us_not_holidays() -> None:
    us = load_calendar("us")
    assert not us.is_holiday(date(2026, 7, 4))  # the Saturday itself; observed on Friday
    assert not us.is_holiday(date(2026, 10, 1))
    assert us.working_days == frozenset()
    assert us.provisional_years == frozenset()


def test_is_holiday_rejects_datetime() -> None:
    with pytest.raises(TypeError):
        load_calendar("cn").is_holiday(datetime(2026, 10, 1, 9, 0))


def test_covers() -> None:
    cn = load_calendar("cn")
    assert cn.covers(date(2026, 6, 1))
    assert not cn.covers(date(2030, 6, 1))


# --- API ---------------------------------------------------------------------------------------


def test_available_calendars() -> None:
    assert available_calendars() == ("cn", "us")


def test_unknown_calendar_names_it_and_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_calendar("xx")
    message = str(caught.value)
    assert "'xx'" in message
    assert "cn" in message
    assert "us" in message


def test_load_calendar_does_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("file I/O after import")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(resources, "files", refuse)
    assert load_calendar("cn") is load_calendar("cn")
    assert available_calendars()


def test_calendar_is_immutable() -> None:
    cn = load_calendar("cn")
    with pytest.raises(AttributeError):
        cn.name = "other"  # type: ignore[misc]
    assert isinstance(cn.holidays, frozenset)


# --- data sanity, every calendar --------------------------------------------------------------


@pytest.mark.parametrize("name", available_calendars())
def test_raw_data_sorted_unique_in_year(name: str) -> None:
    years = _raw_data()[name]["years"]
    for key, entry in years.items():
        year = int(key)
        assert entry["status"] in {"official", "provisional"}
        if entry["status"] == "provisional":
            assert entry["note"].strip()
        for field in ("holidays", "working_days"):
            values: list[str] = entry.get(field, [])
            assert values == sorted(values), (name, key, field)
            assert len(values) == len(set(values)), (name, key, field)
            assert all(date.fromisoformat(v).year == year for v in values), (name, key, field)
        assert entry["holidays"], (name, key)


@pytest.mark.parametrize("name", available_calendars())
def test_calendar_sanity(name: str) -> None:
    calendar = load_calendar(name)
    assert calendar.name == name
    assert calendar.years >= REQUIRED_YEARS
    assert calendar.holidays.isdisjoint(calendar.working_days)
    assert all(day.year in calendar.years for day in calendar.holidays | calendar.working_days)
    # Adjusted working days are by definition weekend days.
    assert all(day.weekday() >= 5 for day in calendar.working_days)
    for year in calendar.years:
        assert any(day.year == year for day in calendar.holidays)


# --- malformed data is refused ----------------------------------------------------------------


def _calendar(**year: object) -> dict[str, object]:
    entry: dict[str, object] = {"status": "official", "holidays": ["2026-01-01"]}
    entry.update(year)
    return {"x": {"description": "d", "source": "s", "years": {"2026": entry}}}


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({}, "non-empty"),
        ([], "non-empty"),
        ({"x": {"description": "d", "source": "s", "years": {}}}, "years"),
        ({"x": {"source": "s", "years": {"2026": {}}}}, "description"),
        ({"x": {"description": "d", "source": "s", "years": {}, "extra": 1}}, "unknown"),
        (_calendar(holidays=["2026-01-02", "2026-01-01"]), "out of order"),
        (_calendar(holidays=["2026-01-01", "2026-01-01"]), "out of order"),
        (_calendar(holidays=["2027-01-01"]), "not in 2026"),
        (_calendar(holidays=["2026-02-30"]), "not a valid date"),
        (_calendar(holidays=["2026-1-1"]), "not a YYYY-MM-DD"),
        (_calendar(holidays="2026-01-01"), "must be a list"),
        (_calendar(working_days=["2026-01-01"]), "both holiday and working day"),
        (_calendar(status="maybe"), "status"),
        (_calendar(status="provisional"), "note"),
        (_calendar(holiday=["2026-01-01"]), "unknown"),
        ({"x": {"description": "d", "source": "s", "years": {"26": {}}}}, "four-digit"),
    ],
)
def test_malformed_data_is_refused(raw: object, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        calendars._parse_calendars(raw)


def test_well_formed_minimal_data_parses() -> None:
    parsed = calendars._parse_calendars(_calendar(working_days=["2026-01-03"]))
    assert parsed["x"] == HolidayCalendar(
        name="x",
        holidays=frozenset({date(2026, 1, 1)}),
        working_days=frozenset({date(2026, 1, 3)}),
        years=frozenset({2026}),
        provisional_years=frozenset(),
    )
