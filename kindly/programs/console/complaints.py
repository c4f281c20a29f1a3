"""Complaints on the console: the specialist team's list of open complaints by deadline (on
``/console/cases``), the account page's complaints, the dashboard's counts, and a case note that records
a complaint.

A complaint about how the lender collects is its own case with two deadlines, to acknowledge it and to
resolve it (``kindly.domain.complaints``). What people need to see is which deadline comes next and
which have passed, so every complaint is shown with the state of each deadline: met, met late, still
due, overdue (passed, and the account has not escalated it yet) or escalated (the account found it
unmet at its deadline). The list reads the store the worker keeps from the accounts
(``kindly.store.complaints``); an account's own page reads its status, which is the account's word.

The list names an account by its masked reference, as the case list does; its link leads to the
account's page, where the complaint is acknowledged and resolved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request
from pydantic import ValidationError
from sqlalchemy import Engine

from kindly.domain.complaints import (
    NOTE_MAX,
    Complaint,
    ComplaintChannel,
    ComplaintOutcome,
    OpenComplaint,
)
from kindly.programs.console.i18n import Translate
from kindly.store.complaints import MAX_PAGE, ComplaintStore, ComplaintView

PAGE_SIZE = 20
"""Open complaints a page of the list shows, above the cases (which come 50 to a page)."""
OVERDUE_SCAN = MAX_PAGE
"""The dashboard counts overdue complaints among this many open ones, the next deadline first (one
page of the store: the overdue ones come before all others)."""

MET, LATE, DUE, OVERDUE, ESCALATED = "met", "late", "due", "overdue", "escalated"
DEADLINE_STATES: tuple[str, ...] = (MET, LATE, DUE, OVERDUE, ESCALATED)
PASSED = frozenset({OVERDUE, ESCALATED})
"""The deadline states that mark a complaint overdue on the list and the dashboard."""
OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"


@dataclass(frozen=True)
class ComplaintWords:
    """A complaint's values in the user's words (written out, so the catalogs' test finds every key)."""

    channel: dict[str, str]
    outcome: dict[str, str]
    deadline: dict[str, str]
    state: dict[str, str]


def complaint_words(t: Translate) -> ComplaintWords:
    return ComplaintWords(
        channel={
            ComplaintChannel.SMS_REPLY: t("complaint.channel.sms_reply"),
            ComplaintChannel.CONSOLE: t("complaint.channel.console"),
            ComplaintChannel.API: t("complaint.channel.api"),
        },
        outcome={
            ComplaintOutcome.UPHELD: t("complaint.outcome.upheld"),
            ComplaintOutcome.PARTLY_UPHELD: t("complaint.outcome.partly_upheld"),
            ComplaintOutcome.NOT_UPHELD: t("complaint.outcome.not_upheld"),
            ComplaintOutcome.WITHDRAWN: t("complaint.outcome.withdrawn"),
        },
        deadline={
            MET: t("complaint.deadline.met"),
            LATE: t("complaint.deadline.late"),
            DUE: t("complaint.deadline.due"),
            OVERDUE: t("complaint.deadline.overdue"),
            ESCALATED: t("complaint.deadline.escalated"),
        },
        state={
            OPEN: t("complaint.state.open"),
            ACKNOWLEDGED: t("complaint.state.acknowledged"),
            RESOLVED: t("complaint.state.resolved"),
        },
    )


def deadline_state(
    deadline: datetime, met_at: datetime | None, escalated_at: datetime | None, at: datetime
) -> str:
    """Where one deadline stands at ``at``: met (in time, or ``late``), still ``due``, ``overdue`` (passed
    while the account has not yet escalated it: its timer fires within moments) or ``escalated``."""
    if met_at is not None:
        return LATE if escalated_at is not None or met_at > deadline else MET
    if escalated_at is not None:
        return ESCALATED
    return OVERDUE if at >= deadline else DUE


@dataclass(frozen=True)
class Deadlines:
    """The state of a complaint's two deadlines; resolving a complaint answers its acknowledgement too."""

    acknowledgement: str
    resolution: str

    @classmethod
    def of(
        cls,
        *,
        acknowledge_by: datetime,
        resolve_by: datetime,
        acknowledged_at: datetime | None,
        resolved_at: datetime | None,
        acknowledgement_overdue_at: datetime | None,
        resolution_overdue_at: datetime | None,
        at: datetime,
    ) -> Deadlines:
        return cls(
            acknowledgement=deadline_state(
                acknowledge_by, acknowledged_at or resolved_at, acknowledgement_overdue_at, at
            ),
            resolution=deadline_state(resolve_by, resolved_at, resolution_overdue_at, at),
        )

    @property
    def passed(self) -> bool:
        """A deadline has passed unmet (overdue or escalated): the list marks the complaint."""
        return self.acknowledgement in PASSED or self.resolution in PASSED


@dataclass(frozen=True)
class ComplaintLine:
    """One of an account's complaints as its page shows it."""

    complaint: Complaint
    state: str
    deadlines: Deadlines


def complaint_lines(complaints: Sequence[Complaint], at: datetime) -> list[ComplaintLine]:
    """The account's complaints, newest first, each with its state and its deadlines' states."""
    return [
        ComplaintLine(
            complaint, _state(complaint.acknowledged_at, complaint.resolved_at), _deadlines(complaint, at)
        )
        for complaint in sorted(complaints, key=lambda found: found.number, reverse=True)
    ]


@dataclass(frozen=True)
class QueueRow:
    """An open complaint on the specialists' list: its instants are shown in the account's zone."""

    complaint: ComplaintView
    zone: ZoneInfo
    state: str
    deadlines: Deadlines


@dataclass(frozen=True)
class ComplaintQueue:
    rows: list[QueueRow]
    total: int
    page: int
    next_page: int | None


def complaint_store(request: Request, engine: Engine) -> ComplaintStore:
    """The console's one ``ComplaintStore``, over the API's database."""
    store: ComplaintStore | None = getattr(request.app.state, "complaint_store", None)
    if store is None:
        store = ComplaintStore(engine)
        request.app.state.complaint_store = store
    return store


async def complaint_queue(store: ComplaintStore, page: int, at: datetime) -> ComplaintQueue:
    """A page of the open complaints, the next deadline first, and how many are open in all."""
    found, total = await asyncio.gather(
        asyncio.to_thread(lambda: store.open_by_deadline(limit=PAGE_SIZE + 1, offset=page * PAGE_SIZE)),
        asyncio.to_thread(store.count_open),
    )
    rows = [
        QueueRow(
            view, zone_of(view.timezone), _state(view.acknowledged_at, view.resolved_at), _deadlines(view, at)
        )
        for view in found[:PAGE_SIZE]
    ]
    return ComplaintQueue(rows, total, page, page + 1 if len(found) > PAGE_SIZE else None)


@dataclass(frozen=True)
class ComplaintCounts:
    """The dashboard's figures: open complaints, and those with a deadline passed unmet."""

    open: int
    overdue: int
    overdue_more: bool
    """More open complaints than ``OVERDUE_SCAN``: ``overdue`` counts the first of them only."""


def complaint_counts(store: ComplaintStore, at: datetime) -> ComplaintCounts:
    """Open and overdue complaints (blocking). Overdue ones are counted among the ``OVERDUE_SCAN`` open
    complaints with the nearest deadlines, so the dashboard stays bounded however many are open."""
    total = store.count_open()
    scanned = store.open_by_deadline(limit=OVERDUE_SCAN, offset=0) if total else []
    overdue = sum(1 for view in scanned if _deadlines(view, at).passed)
    return ComplaintCounts(total, overdue, total > OVERDUE_SCAN)


@dataclass(frozen=True)
class NoteComplaint:
    """The complaint a case note opens, and why it goes without the note, if it does."""

    payload: OpenComplaint
    note_left_out: bool


def complaint_from_note(text: str) -> NoteComplaint:
    """The complaint a case note records, received through the console as the account takes it (its
    deadlines count from then), with the note as its note when the contract takes it (at most
    ``NOTE_MAX`` characters, no number of seven or more digits, no e-mail address), else without it: the
    case note keeps the whole text either way."""
    cleaned = text.strip()
    if cleaned and len(cleaned) <= NOTE_MAX:
        try:
            return NoteComplaint(OpenComplaint(channel=ComplaintChannel.CONSOLE, note=cleaned), False)
        except ValidationError:
            pass
    return NoteComplaint(OpenComplaint(channel=ComplaintChannel.CONSOLE), bool(cleaned))


def zone_of(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _state(acknowledged_at: datetime | None, resolved_at: datetime | None) -> str:
    if resolved_at is not None:
        return RESOLVED
    return ACKNOWLEDGED if acknowledged_at is not None else OPEN


def _deadlines(found: Complaint | ComplaintView, at: datetime) -> Deadlines:
    return Deadlines.of(
        acknowledge_by=_aware(found.acknowledge_by),
        resolve_by=_aware(found.resolve_by),
        acknowledged_at=_maybe_aware(found.acknowledged_at),
        resolved_at=_maybe_aware(found.resolved_at),
        acknowledgement_overdue_at=_maybe_aware(found.acknowledgement_overdue_at),
        resolution_overdue_at=_maybe_aware(found.resolution_overdue_at),
        at=at,
    )


def _aware(value: datetime) -> datetime:
    """``value`` with its zone: a database without zones (SQLite) gives UTC back naive."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _maybe_aware(value: datetime | None) -> datetime | None:
    return None if value is None else _aware(value)
