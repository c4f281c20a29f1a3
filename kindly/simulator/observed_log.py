"""The audit log read back for the observed response model: what followed each reminder and each call
task, counted account by account in time order (the rules are ``kindly.simulator.observed``'s)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import groupby

from sqlalchemy import Engine, or_, select

from kindly.analytics import details
from kindly.analytics.outcomes import UNKNOWN_TEMPLATE, AuditEvent, as_utc
from kindly.domain.contract import CallOutcomeKind, TimelineKind
from kindly.domain.messages.content_check import SERVICE_TEMPLATES
from kindly.simulator.responses import CallResult, SmsResponse, dpd_bucket
from kindly.store.audit import AUDIT_TABLE

RESPONSE_WINDOW = timedelta(days=14)
"""How long after an SMS a customer's action still counts as its response."""
STREAM_ROWS = 20_000
"""Audit rows fetched at a time: the log may hold millions, never all in memory."""

_KINDS = tuple(
    str(kind)
    for kind in (
        TimelineKind.STARTED,
        TimelineKind.SMS_SENT,
        TimelineKind.REPLY_RECEIVED,
        TimelineKind.OPTED_OUT,
        TimelineKind.HANDED_TO_PERSON,
        TimelineKind.PROMISE,
        TimelineKind.REPAYMENT_RECEIVED,
        TimelineKind.REPAID,
        TimelineKind.ESCALATED_PHONE,
        TimelineKind.CALL_OUTCOME,
    )
)
_REPLIES = {"opt_out": SmsResponse.STOP, "hardship": SmsResponse.HARDSHIP, "dispute": SmsResponse.DISPUTE}
"""A reply's intent and the response it is; any other intent (``other``, ``help``) is a ``reply``."""
_HANDED = {"hardship": SmsResponse.HARDSHIP, "dispute": SmsResponse.DISPUTE}
_CALL_RESULTS = {
    CallOutcomeKind.REACHED: CallResult.REACHED,
    CallOutcomeKind.CALL_BACK: CallResult.REACHED,
    CallOutcomeKind.NO_ANSWER: CallResult.NO_ANSWER,
    CallOutcomeKind.PROMISE_TO_PAY: CallResult.PROMISE,
    CallOutcomeKind.WRONG_NUMBER: CallResult.WRONG_NUMBER,
    CallOutcomeKind.REFUSED: CallResult.REFUSED,
}
# The wording of kindly.domain.effects._promise and kindly.domain.completions.call_task_created.
_PHONE_PROMISE = "on the phone,"
_REJECTED_TASK = ": rejected"

Cell = tuple[str | None, str | None, str]
"""Segment, days-past-due bucket and template of an SMS (segment and bucket None: no ``started``)."""


def read_log(engine: Engine, since: datetime | None) -> LogCounts:
    """The whole log's counts (``since``: aware; the entries from then on, and every ``started``)."""
    counts = LogCounts()
    for events in _accounts(engine, since):
        reader = _AccountReader(counts)
        for event in events:
            reader.take(event)
        reader.close()
    return counts


def _accounts(engine: Engine, since: datetime | None) -> Iterator[Iterator[AuditEvent]]:
    """Each account's entries of the kinds read, in time order, streamed: one account in memory at once."""
    a = AUDIT_TABLE.c
    query = select(a.account_id, a.id, a.at, a.kind, a.detail, a.template).where(a.kind.in_(_KINDS))
    if since is not None:
        query = query.where(or_(a.at >= since, a.kind == str(TimelineKind.STARTED)))
    query = query.order_by(a.account_id, a.at, a.id)
    with engine.connect() as connection:
        rows = connection.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(query)
        for _, group in groupby(rows, key=lambda row: row[0]):
            yield (AuditEvent(row[1], as_utc(row[2]), row[3], row[4], row[5]) for row in group)


@dataclass(slots=True)
class Mean:
    total: float = 0.0
    count: int = 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def mean(self) -> float | None:
        return None if self.count == 0 else self.total / self.count


@dataclass(slots=True)
class CellCounts:
    """The SMS of a cell (or of several) and their responses."""

    sends: int = 0
    responses: Counter[SmsResponse] = field(default_factory=Counter)

    def add(self, other: CellCounts) -> None:
        self.sends += other.sends
        self.responses.update(other.responses)


@dataclass(slots=True)
class LogCounts:
    """The whole log's counts, filled account by account."""

    cells: dict[Cell, CellCounts] = field(default_factory=dict)
    delay_hours: Mean = field(default_factory=Mean)
    partial_share: Mean = field(default_factory=Mean)
    promise_days: Mean = field(default_factory=Mean)
    promises: Counter[date] = field(default_factory=Counter)
    """Promises by the date promised (kept or not), so that those not yet due can be left out."""
    kept: Counter[date] = field(default_factory=Counter)
    calls: Counter[CallResult | None] = field(default_factory=Counter)
    """Call tasks by their outcome (None: none recorded)."""
    call_hours: Mean = field(default_factory=Mean)
    last_at: datetime | None = None

    def total(self) -> CellCounts:
        total = CellCounts()
        for counts in self.cells.values():
            total.add(counts)
        return total

    def promise_kept(self) -> float | None:
        """The share of judged promises that were kept: those whose date was over when the log ended."""
        if self.last_at is None:
            return None
        judged = [by for by in self.promises if by < self.last_at.date()]
        made = sum(self.promises[by] for by in judged)
        return None if made == 0 else sum(self.kept[by] for by in judged) / made


@dataclass(slots=True)
class _Sms:
    cell: Cell
    at: datetime
    response: SmsResponse | None = None
    responded_at: datetime | None = None
    share: float | None = None
    """What a partial payment paid of what was owed then."""


@dataclass(slots=True)
class _Promise:
    by: date
    kept: bool = False


class _AccountReader:
    """One account's entries, taken in time order, into the tally; ``close`` after the last."""

    def __init__(self, tally: LogCounts) -> None:
        self._tally = tally
        self._segment: str | None = None
        self._due: date | None = None
        self._sms: _Sms | None = None
        """The last reminder, waiting for its response until the next one."""
        self._promise: _Promise | None = None
        self._task: datetime | None = None
        """When the open call task was made, waiting for its outcome until the next task."""

    def take(self, event: AuditEvent) -> None:
        tally = self._tally
        tally.last_at = event.at if tally.last_at is None else max(tally.last_at, event.at)
        kind = event.kind
        if kind == TimelineKind.STARTED:
            self._on_started(event)
        elif kind == TimelineKind.SMS_SENT:
            self._on_sms(event)
        elif kind == TimelineKind.REPLY_RECEIVED:
            intent = details.reply_intent(event.detail) or ""
            self._respond(_REPLIES.get(intent, SmsResponse.REPLY), event.at)
        elif kind == TimelineKind.OPTED_OUT:
            self._respond(SmsResponse.STOP, event.at)
        elif kind == TimelineKind.HANDED_TO_PERSON:
            handed = _HANDED.get(details.handed_intent(event.detail) or "")
            if handed is not None:
                self._respond(handed, event.at)
        elif kind == TimelineKind.PROMISE:
            self._on_promise(event)
        elif kind == TimelineKind.REPAYMENT_RECEIVED:
            self._on_repayment(event)
        elif kind == TimelineKind.REPAID:
            self._on_repaid(event)
        elif kind == TimelineKind.ESCALATED_PHONE:
            self._close_task()
            if not event.detail.endswith(_REJECTED_TASK):
                self._task = event.at
        elif kind == TimelineKind.CALL_OUTCOME:
            self._on_call_outcome(event)

    def close(self) -> None:
        self._close_sms()
        self._close_promise()
        self._close_task()

    def _on_started(self, event: AuditEvent) -> None:
        start = details.started(event.detail)
        if start is not None:
            self._segment, self._due = start.segment, start.due_date

    def _on_sms(self, event: AuditEvent) -> None:
        template = event.template or details.sms_template(event.detail) or UNKNOWN_TEMPLATE
        if template in SERVICE_TEMPLATES:
            return
        self._close_sms()
        bucket = None if self._due is None else dpd_bucket((event.at.date() - self._due).days)
        self._sms = _Sms((self._segment, bucket, template), event.at)

    def _on_promise(self, event: AuditEvent) -> None:
        self._close_promise()
        promised = details.promised_date(event.detail)
        if promised is not None:
            self._tally.promise_days.add((promised - event.at.date()).days)
            self._promise = _Promise(promised)
        if not event.detail.startswith(_PHONE_PROMISE):
            self._respond(SmsResponse.PROMISE, event.at)

    def _on_repayment(self, event: AuditEvent) -> None:
        promise = self._promise
        if promise is not None and event.at.date() <= promise.by:
            promise.kept = True
        paid = _repayment(event.detail)
        if paid is not None and paid[1] == 0:
            self._respond(SmsResponse.FULL_PAYMENT, event.at)
        else:
            share = None if paid is None else _share(*paid)
            self._respond(SmsResponse.PARTIAL_PAYMENT, event.at, share)

    def _on_repaid(self, event: AuditEvent) -> None:
        """A payment whose text did not say it paid everything did, if the account was repaid with it."""
        sms = self._sms
        if sms is not None and sms.response is SmsResponse.PARTIAL_PAYMENT and sms.responded_at == event.at:
            sms.response, sms.share = SmsResponse.FULL_PAYMENT, None

    def _on_call_outcome(self, event: AuditEvent) -> None:
        outcome = _call_outcome(details.call_outcome(event.detail) or "")
        if self._task is None or outcome is None:
            return
        self._tally.calls[_CALL_RESULTS[outcome]] += 1
        self._tally.call_hours.add(_hours(event.at - self._task))
        self._task = None

    def _respond(self, response: SmsResponse, at: datetime, share: float | None = None) -> None:
        sms = self._sms
        if sms is None or sms.response is not None or at - sms.at > RESPONSE_WINDOW:
            return
        sms.response, sms.responded_at, sms.share = response, at, share

    def _close_sms(self) -> None:
        sms, self._sms = self._sms, None
        if sms is None:
            return
        tally = self._tally
        counts = tally.cells.get(sms.cell)
        if counts is None:
            counts = tally.cells[sms.cell] = CellCounts()
        counts.sends += 1
        if sms.response is None or sms.responded_at is None:
            return
        counts.responses[sms.response] += 1
        tally.delay_hours.add(_hours(sms.responded_at - sms.at))
        if sms.share is not None:
            tally.partial_share.add(sms.share)

    def _close_promise(self) -> None:
        promise, self._promise = self._promise, None
        if promise is not None:
            self._tally.promises[promise.by] += 1
            self._tally.kept[promise.by] += int(promise.kept)

    def _close_task(self) -> None:
        if self._task is not None:
            self._tally.calls[None] += 1
            self._task = None


def _repayment(detail: str) -> tuple[Decimal, Decimal] | None:
    """The amount of a repayment and what was left owing after it."""
    amount, left = details.repayment_amount(detail), details.repayment_left(detail)
    return None if amount is None or left is None else (amount, left)


def _share(amount: Decimal, left: Decimal) -> float | None:
    owed = amount + left
    return None if owed <= 0 else float(amount / owed)


def _call_outcome(text: str) -> CallOutcomeKind | None:
    try:
        return CallOutcomeKind(text)
    except ValueError:
        return None


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600
