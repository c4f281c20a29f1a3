"""A response model measured from what customers actually did: the audit log, read back.

``kindly simulate --responses observed`` calls ``observed_response_model``, which reads the application
database's audit log account by account, in time order, and counts what followed each reminder. The
rules, for the analyst who wants to know where a figure comes from:

**Which SMS count.** Each ``sms_sent`` entry of a reminder is one SMS of its template (the entry's
template column, else the template its text names). The service replies a customer asked for (``help``,
``opt_out_confirmation``) are not counted: the simulator never asks what follows them. An SMS takes its
segment and due date from the account's ``started`` entry (the latest one before it: a new run of the
account may bring a new due date); its days past due are the UTC date of the send minus the due date,
bucketed as the outcome reports bucket them (``current`` up to the due date, then ``1-30``, ``31-60``,
``61-90``, ``90+``). An account without a ``started`` entry counts only in its template's figures.

**What a response is.** The first of these to follow an SMS, before the account's next reminder and
within 14 days:

* a reply (``reply_received``) that is not a STOP, hardship or a dispute (``other``, ``help``): ``reply``;
* a STOP, by reply or on the self-service page (``opted_out``): ``stop``;
* hardship or a dispute, by reply or on the self-service page (``handed_to_person``): ``hardship``,
  ``dispute``;
* a promise to pay made by the customer (by SMS or on the self-service page; a promise made on the phone
  answers a call, not the SMS): ``promise``;
* a payment (``repayment_received``): ``full_payment`` when it paid the account off (``0.00 left``, or the
  ``repaid`` entry at the same instant), otherwise ``partial_payment``.

One SMS has at most one response, the first: the model's responses exclude each other, so a reply
followed by a payment counts as a reply. An SMS with none of these after it is silence.

**From counts to probabilities.** A probability is the SMS with that response divided by all SMS, in a
cell of segment, days-past-due bucket and template. A cell with at least ``min_sends`` SMS (30) gets its
own rule. For the thinner cells the model also has coarser rules: one per segment and template, and one
per template, each made when it has ``min_sends`` SMS of its own (all its cells together). The simulator
takes the most specific rule that matches, so a thin cell falls back to its segment and template, then
to its template, then to the default: the whole log's rates. Probabilities are rounded to 4 decimals and
never add up to more than 1.

**Timing and money.** ``response_after_hours``: the mean hours from an SMS to its response.
``partial_share``: the mean share of what was owed that a partial payment response paid, amount /
(amount + what was left). ``promise_days``: the mean days from a promise to the date promised, over every
promise, the phone's too (the simulator uses one figure for both). ``promise_kept``: the share of
promises followed, before the account's next promise, by a payment on or before the promised date, as
the outcome reports count "kept" (a part payment keeps it too); a promise whose date is not over when the
log ends cannot be judged yet and is left out.

**Phone.** Each call task the phone team took (``escalated_phone``, unless ``rejected``) is answered by the
first ``call_outcome`` after it, before the account's next task: ``reached`` (``call_back`` too: the
customer was reached and asked for another time), ``no_answer``, ``promise_to_pay`` (``promise``),
``wrong_number`` or ``refused``; a task without one is the rest. ``recorded_after_hours`` is the mean
hours from a task to its outcome. With fewer than ``min_sends`` tasks the built-in phone figures stay.

**Too little data.** With fewer than ``min_sends`` SMS in the log (or since ``since``) the figures would
be noise, and ``SimulationInputError`` says how many there are. A figure with nothing to measure it (no
partial payment, no promise, ...) keeps the model's default. ``since`` reads only the entries from that
instant on, except the ``started`` entries, read whatever their age, so that an account that started
before ``since`` still has its segment and due date.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from kindly.analytics.outcomes import as_utc
from kindly.analytics.reports import BUCKETS
from kindly.domain.contract import TemplateName
from kindly.domain.messages.content_check import SERVICE_TEMPLATES
from kindly.errors import SimulationInputError
from kindly.simulator.observed_log import Cell, CellCounts, LogCounts, read_log
from kindly.simulator.responses import (
    CallOdds,
    CallResult,
    ResponseModel,
    SmsResponse,
    TouchOdds,
    TouchRule,
)

MIN_SENDS = 30
"""The fewest SMS (call tasks) a rule (the phone figures) is measured from; fewer is noise."""
DECIMALS = 4
SHORTEST_HOURS = 0.01
"""The model's delays must be positive: a mean of responses recorded at the SMS's instant is this."""
_TEMPLATES = frozenset(TemplateName) - SERVICE_TEMPLATES


def observed_response_model(
    engine: Engine, *, since: datetime | None = None, min_sends: int = MIN_SENDS
) -> ResponseModel:
    """The response model the audit log shows (see the module's rules); ``since`` (naive: UTC) limits it
    to the entries from then on. ``SimulationInputError`` when fewer than ``min_sends`` SMS were sent."""
    if min_sends < 1:
        raise SimulationInputError("observed responses: min_sends must be at least 1")
    since = None if since is None else as_utc(since)
    tally = read_log(engine, since)
    sends = tally.total().sends
    if sends < min_sends:
        window = "" if since is None else f" since {_shown(since)}"
        raise SimulationInputError(
            f"observed responses: the audit log has {sends} SMS{window}; at least {min_sends} are needed"
        )
    return _model(tally, min_sends)


def _shown(instant: datetime) -> str:
    at_midnight = instant.time() == datetime.min.time()
    return instant.date().isoformat() if at_midnight else instant.isoformat(timespec="minutes")


def _model(tally: LogCounts, min_sends: int) -> ResponseModel:
    figures: dict[str, Any] = {
        "default": TouchOdds(**_odds(tally.total())),
        "rules": _rules(tally.cells, min_sends),
        "calls": _calls(tally, min_sends),
        **_timing(tally),
    }
    return ResponseModel(**figures)


def _rules(cells: dict[Cell, CellCounts], min_sends: int) -> list[TouchRule]:
    """A rule for every cell, segment and template, and template with ``min_sends`` SMS; the simulator's
    most-specific-first matching then makes a thin cell fall back to the coarser rules."""
    levels: dict[Cell, CellCounts] = {}
    for (segment, dpd, template), counts in cells.items():
        if template not in _TEMPLATES:
            continue  # a template this version does not know: only the default counts it
        keys: list[Cell] = [(None, None, template)]
        if segment is not None:
            keys.append((segment, None, template))
            if dpd is not None:
                keys.append((segment, dpd, template))
        for key in keys:
            level = levels.get(key)
            if level is None:
                level = levels[key] = CellCounts()
            level.add(counts)
    return [
        TouchRule(segment=segment, dpd=dpd, template=TemplateName(template), **_odds(counts))
        for (segment, dpd, template), counts in sorted(levels.items(), key=lambda item: _order(item[0]))
        if counts.sends >= min_sends
    ]


def _order(cell: Cell) -> tuple[str, str, int]:
    segment, dpd, template = cell
    return template, segment or "", -1 if dpd is None else BUCKETS.index(dpd)


def _calls(tally: LogCounts, min_sends: int) -> CallOdds:
    tasks = sum(tally.calls.values())
    if tasks < min_sends:
        return CallOdds()
    odds = _rounded({result.value: tally.calls[result] for result in CallResult}, tasks)
    hours = tally.call_hours.mean()
    if hours is None:
        return CallOdds(**odds)
    return CallOdds(**odds, recorded_after_hours=_clamp(round(hours, 2), SHORTEST_HOURS, 24 * 7))


def _timing(tally: LogCounts) -> dict[str, Any]:
    """The figures the log measures; those it cannot (no partial payment, ...) keep the model's default."""
    figures: dict[str, Any] = {}
    delay = tally.delay_hours.mean()
    if delay is not None:
        figures["response_after_hours"] = _clamp(round(delay, 2), SHORTEST_HOURS, 24 * 14)
    share = tally.partial_share.mean()
    if share is not None:
        smallest = 10**-DECIMALS
        figures["partial_share"] = _clamp(round(share, DECIMALS), smallest, 1 - smallest)
    days = tally.promise_days.mean()
    if days is not None:
        figures["promise_days"] = int(_clamp(round(days), 1, 60))
    kept = tally.promise_kept()
    if kept is not None:
        figures["promise_kept"] = round(kept, DECIMALS)
    return figures


def _odds(counts: CellCounts) -> dict[str, float]:
    return _rounded({response.value: counts.responses[response] for response in SmsResponse}, counts.sends)


def _rounded(counts: dict[str, int], total: int) -> dict[str, float]:
    """Each count's share of ``total`` to 4 decimals; rounding never takes their sum over 1 (the largest
    gives back the excess)."""
    values = {name: round(count / total, DECIMALS) for name, count in counts.items()}
    step = 10**-DECIMALS
    while sum(values.values()) > 1 + 1e-12:
        largest = max(values, key=values.__getitem__)
        values[largest] = round(values[largest] - step, DECIMALS)
    return values


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)
