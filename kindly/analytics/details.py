"""Reading the audit log's ``detail`` texts: the one place that knows their wording.

The workflow writes each detail from the domain (``kindly.domain.state.start_entries``,
``kindly.domain.effects``, ``kindly.domain.actions``); ``tests/test_outcome_details.py`` checks these
parsers against the domain's own functions, so a change of wording fails there rather than skewing a
report. Every parser answers None for a text it does not recognise: one odd row never stops a report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

_AMOUNT = r"-?\d+(?:\.\d+)?"
_DATE = r"\d{4}-\d{2}-\d{2}"
_STARTED = re.compile(
    rf"^segment (?P<segment>.+), (?P<amount>{_AMOUNT}) (?P<currency>[A-Z]{{3}}) due (?P<due>{_DATE})$"
)
_EXPERIMENT = re.compile(r"^experiment (?P<name>\S+) arm (?P<arm>\S+)(?: \(.*\))?$")
_REPLY = re.compile(r"^reply \((?P<intent>[a-z_]+), \d+ chars\)$")
_HANDED = re.compile(r"^(?P<intent>[a-z_]+) reported; ")
_REPAYMENT = re.compile(rf"^(?P<amount>{_AMOUNT}) received \(.*\); (?P<left>{_AMOUNT}) left$")
_SETTLED = re.compile(rf"^settled for (?P<amount>{_AMOUNT}) \(.*\)$")
_PROMISE = re.compile(rf"promised to pay by (?P<date>{_DATE}); contact held$")
_SMS = re.compile(r"^(?P<template>[a-z_]+) touchpoint \d+")
_CALL_OUTCOME = re.compile(r"^(?P<outcome>[a-z_]+) \(attempt \d+\)$")
_COMPLAINT = re.compile(r"^complaint (?P<number>\d+) ")


@dataclass(frozen=True)
class Started:
    """An account's ``started`` entry: ``segment <segment>, <amount> <CURRENCY> due <YYYY-MM-DD>``."""

    segment: str
    amount_due: Decimal
    currency: str
    due_date: date


def started(detail: str) -> Started | None:
    match = _STARTED.match(detail)
    if match is None:
        return None
    amount, due = _decimal(match["amount"]), _date(match["due"])
    if amount is None or due is None:
        return None
    return Started(segment=match["segment"], amount_due=amount, currency=match["currency"], due_date=due)


def experiment_arm(detail: str) -> tuple[str, str] | None:
    """``experiment <name> arm <arm>`` (a shadow arm adds `` (shadow: ...)``): the experiment and arm."""
    match = _EXPERIMENT.match(detail)
    return None if match is None else (match["name"], match["arm"])


def reply_intent(detail: str) -> str | None:
    """``reply (<intent>, N chars)``: opt_out, help, hardship, dispute or other."""
    match = _REPLY.match(detail)
    return None if match is None else match["intent"]


def handed_intent(detail: str) -> str | None:
    """``<intent> reported; automated contact stops`` (a ``handed_to_person`` entry): hardship or dispute."""
    match = _HANDED.match(detail)
    return None if match is None else match["intent"]


def repayment_amount(detail: str) -> Decimal | None:
    """``<amount> received (<reference>); <left> left``: the amount received."""
    match = _REPAYMENT.match(detail)
    return None if match is None else _decimal(match["amount"])


def repayment_left(detail: str) -> Decimal | None:
    """``<amount> received (<reference>); <left> left``: what was left owing after it."""
    match = _REPAYMENT.match(detail)
    return None if match is None else _decimal(match["left"])


def call_outcome(detail: str) -> str | None:
    """``<outcome> (attempt <n>)`` (a ``call_outcome`` entry): the outcome the phone team recorded."""
    match = _CALL_OUTCOME.match(detail)
    return None if match is None else match["outcome"]


def settlement_amount(detail: str) -> Decimal | None:
    """``settled for <amount> (<reference>)``: the amount agreed."""
    match = _SETTLED.match(detail)
    return None if match is None else _decimal(match["amount"])


def promised_date(detail: str) -> date | None:
    """``<who> promised to pay by <YYYY-MM-DD>; contact held``: the promised date."""
    match = _PROMISE.search(detail)
    return None if match is None else _date(match["date"])


def sms_template(detail: str) -> str | None:
    """``<template> touchpoint <n> (...)``: the template of an ``sms_sent`` entry whose column is empty."""
    match = _SMS.match(detail)
    return None if match is None else match["template"]


def complaint_number(detail: str) -> int | None:
    """``complaint <n> opened (...)``, ``complaint <n> not acknowledged by its deadline ...`` and the
    other complaint entries: the complaint's number on the account."""
    match = _COMPLAINT.match(detail)
    return None if match is None else int(match["number"])


def _decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the patterns only let numbers through
        return None


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
