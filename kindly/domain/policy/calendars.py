"""Public-holiday calendars, read from ``data/holidays.json`` once, at import.

This module is passed through into the Temporal workflow sandbox, so everything that touches the
file system happens here at import time: ``load_calendar`` and ``available_calendars`` only look
into an in-memory mapping and never do I/O. A missing or malformed data file raises
``ConfigurationError`` at import, so a bad deployment stops before anything is sent.

Data file layout::

    {"<name>": {"description": str,
                "source": str,
                "years": {"<YYYY>": {"status": "official" | "provisional",
                                     "source": str,  # optional
                                     "note": str,  # optional, required if provisional
                                     "holidays": ["YYYY-MM-DD", ...],
                                     "working_days": ["YYYY-MM-DD", ...]}}}}  # optional

``holidays`` are days off (including weekend days folded into a break); ``working_days`` are
weekend days declared working days (China's 调休上班). Both lists are strictly increasing, hold only
dates of their own year and never share a date.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from types import MappingProxyType

from kindly.errors import ConfigurationError

_DATA_PACKAGE = "kindly.domain.policy"
_DATA_FILE = "data/holidays.json"
_STATUSES = frozenset({"official", "provisional"})
_CALENDAR_KEYS = frozenset({"description", "source", "years"})
_YEAR_KEYS = frozenset({"status", "source", "note", "holidays", "working_days"})


@dataclass(frozen=True)
class HolidayCalendar:
    """The public holidays of one jurisdiction for the years in ``years``."""

    name: str
    holidays: frozenset[date]
    working_days: frozenset[date]
    years: frozenset[int]
    provisional_years: frozenset[int]
    """Years whose dates are an estimate awaiting the official arrangement."""
    provisional_notes: tuple[tuple[int, str], ...] = ()
    """``(year, note)`` for each provisional year, by year: why it is provisional and what replaces it."""

    def is_holiday(self, day: date) -> bool:
        """Whether ``day`` (a local calendar date) is a public holiday.

        Days in years outside ``years`` are not known to the calendar and answer ``False``; use
        ``covers`` to tell the two apart.
        """
        if isinstance(day, datetime):
            raise TypeError("is_holiday takes a local date, not a datetime")
        return day in self.holidays

    def covers(self, day: date) -> bool:
        """Whether the calendar holds data for the year of ``day``."""
        return day.year in self.years

    @property
    def last_day(self) -> date:
        """The last date the calendar covers without a gap: 31 December of the last year of the run of
        consecutive years that starts with its first year (a later year after a missing one does not
        count, since the days of the missing year are not known)."""
        year = min(self.years)
        while year + 1 in self.years:
            year += 1
        return date(year, 12, 31)

    def provisional_note(self, year: int) -> str | None:
        """The note of a provisional ``year``; ``None`` for an official or unknown year."""
        return next((note for noted, note in self.provisional_notes if noted == year), None)


def _fail(where: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"{_DATA_FILE}: {where}: {problem}")


def _text(raw: Mapping[str, object], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"{key!r} must be a non-empty string")
    return value


def _dates(raw: object, year: int, where: str) -> list[date]:
    if not isinstance(raw, list):
        raise _fail(where, "must be a list of YYYY-MM-DD strings")
    days: list[date] = []
    for index, item in enumerate(raw):
        if not isinstance(item, str) or len(item) != 10:
            raise _fail(f"{where}[{index}]", f"{item!r} is not a YYYY-MM-DD string")
        try:
            day = date.fromisoformat(item)
        except ValueError:
            raise _fail(f"{where}[{index}]", f"{item!r} is not a valid date") from None
        if day.year != year:
            raise _fail(f"{where}[{index}]", f"{item} is not in {year}")
        if days and day <= days[-1]:
            raise _fail(f"{where}[{index}]", f"{item} is out of order or repeated")
        days.append(day)
    return days


def _parse_calendar(name: str, raw: object) -> HolidayCalendar:
    if not isinstance(raw, dict):
        raise _fail(name, "must be an object")
    unknown = set(raw) - _CALENDAR_KEYS
    if unknown:
        raise _fail(name, f"unknown keys {sorted(unknown)}")
    _text(raw, "description", name)
    _text(raw, "source", name)
    years_raw = raw.get("years")
    if not isinstance(years_raw, dict) or not years_raw:
        raise _fail(name, "'years' must be a non-empty object")

    holidays: set[date] = set()
    working_days: set[date] = set()
    years: set[int] = set()
    provisional: dict[int, str] = {}
    for key, entry in years_raw.items():
        where = f"{name}/{key}"
        if not (isinstance(key, str) and len(key) == 4 and key.isascii() and key.isdigit()):
            raise _fail(where, "year keys must be four-digit strings")
        year = int(key)
        if not isinstance(entry, dict):
            raise _fail(where, "must be an object")
        unknown = set(entry) - _YEAR_KEYS
        if unknown:
            raise _fail(where, f"unknown keys {sorted(unknown)}")
        status = entry.get("status")
        if status not in _STATUSES:
            raise _fail(where, f"'status' must be one of {sorted(_STATUSES)}, not {status!r}")
        for optional in ("source", "note"):
            if optional in entry:
                _text(entry, optional, where)
        if status == "provisional":
            provisional[year] = _text(entry, "note", where)
        if "holidays" not in entry:
            raise _fail(where, "'holidays' is missing")
        year_holidays = _dates(entry["holidays"], year, f"{where}/holidays")
        year_working = _dates(entry.get("working_days", []), year, f"{where}/working_days")
        clash = set(year_holidays) & set(year_working)
        if clash:
            both = ", ".join(sorted(d.isoformat() for d in clash))
            raise _fail(where, f"dates both holiday and working day: {both}")
        holidays.update(year_holidays)
        working_days.update(year_working)
        years.add(year)

    return HolidayCalendar(
        name=name,
        holidays=frozenset(holidays),
        working_days=frozenset(working_days),
        years=frozenset(years),
        provisional_years=frozenset(provisional),
        provisional_notes=tuple(sorted(provisional.items())),
    )


def _parse_calendars(raw: object) -> dict[str, HolidayCalendar]:
    """Validate the decoded data file and build every calendar in it."""
    if not isinstance(raw, dict) or not raw:
        raise _fail("top level", "must be a non-empty object of calendars")
    return {str(name): _parse_calendar(str(name), entry) for name, entry in raw.items()}


def _load_all() -> Mapping[str, HolidayCalendar]:
    try:
        text = resources.files(_DATA_PACKAGE).joinpath(_DATA_FILE).read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError) as exc:
        raise ConfigurationError(f"cannot read {_DATA_FILE}: {exc}") from exc
    try:
        raw: object = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{_DATA_FILE} is not valid JSON: {exc}") from exc
    return MappingProxyType(_parse_calendars(raw))


_CALENDARS: Mapping[str, HolidayCalendar] = _load_all()


def available_calendars() -> tuple[str, ...]:
    """Names of every known calendar, sorted."""
    return tuple(sorted(_CALENDARS))


def load_calendar(name: str) -> HolidayCalendar:
    """The calendar called ``name``; no I/O, safe to call from workflow code."""
    try:
        return _CALENDARS[name]
    except KeyError:
        known = ", ".join(available_calendars())
        raise ConfigurationError(f"unknown holiday calendar {name!r}; available: {known}") from None
