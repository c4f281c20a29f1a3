"""The page's form fields, read before anything is sent: a value too long, not a date or not a number is
refused here, naming its field, and the account never hears of it. Whatever a visitor typed comes back
only through the templates, which escape it.

The limits a date or a plan must keep are the account's (``SelfServiceOffer``): the page checks a plan
against them before it shows the schedule, and the account checks every choice again when it takes it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from starlette.datastructures import FormData

from kindly.domain.plans import PlanOption, SelfServiceOffer

MAX_LENGTH = {"date": 10, "instalments": 2, "confirm": 3}
"""The longest value each field can hold (``2026-05-20``, ``36``, ``yes``): anything longer is refused."""

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_COUNT = re.compile(r"\d{1,2}")


@dataclass
class FormErrors:
    """Per form field (``promise.date``, ``plan.instalments``, ``plan.date``), the catalog key of what is
    wrong, and the values typed, to show again."""

    form: str
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, key: str) -> None:
        self.errors.setdefault(f"{self.form}.{name}", key)

    def __bool__(self) -> bool:
        return bool(self.errors)


def text(form: FormData, name: str, errors: FormErrors) -> str:
    """The field as typed (a file or an over-long value is an error); kept to be shown again, cut to its
    limit so that a page never echoes a megabyte."""
    raw = form.get(name)
    value = raw if isinstance(raw, str) else ""
    if raw is not None and not isinstance(raw, str):
        errors.add(name, "error.format")
    limit = MAX_LENGTH[name]
    errors.values[f"{errors.form}.{name}"] = value[: limit + 20]
    if len(value) > limit:
        errors.add(name, "error.too_long")
        return ""
    return value.strip()


def date_field(form: FormData, name: str, errors: FormErrors) -> dt.date | None:
    value = text(form, name, errors)
    if f"{errors.form}.{name}" in errors.errors:
        return None
    if not value:
        errors.add(name, "error.required")
        return None
    if _DATE.fullmatch(value) is None:
        errors.add(name, "error.date_format")
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        errors.add(name, "error.date_format")
        return None


def count_field(form: FormData, name: str, errors: FormErrors) -> int | None:
    value = text(form, name, errors)
    if f"{errors.form}.{name}" in errors.errors:
        return None
    if _COUNT.fullmatch(value) is None:
        errors.add(name, "error.instalments")
        return None
    return int(value)


@dataclass(frozen=True)
class PlanRequest:
    option: PlanOption
    first: dt.date


def plan_request(form: FormData, offer: SelfServiceOffer, errors: FormErrors) -> PlanRequest | None:
    """The plan asked for, if the account offers it: a count among its options, the first date from
    today to ``plan_first_latest``."""
    count = count_field(form, "instalments", errors)
    first = date_field(form, "date", errors)
    option = next((each for each in offer.plan_options if each.instalments == count), None)
    if count is not None and option is None:
        errors.add("instalments", "error.instalments")
    if first is not None and not offer.today <= first <= offer.plan_first_latest:
        errors.add("date", "error.plan_date")
    if errors or option is None or first is None:
        return None
    return PlanRequest(option=option, first=first)


def refused_field_key(form: str, field_name: str | None) -> tuple[str, str]:
    """The form field and catalog key for a value the account refused (``InvalidActionValueError.field``);
    a field the page does not show is the form's own error."""
    if field_name == "instalments":
        return f"{form}.instalments", "error.instalments"
    if field_name == "date":
        return f"{form}.date", f"error.{form}_date"
    return form, "error.refused"
