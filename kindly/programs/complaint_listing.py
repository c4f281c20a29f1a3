"""The open complaints as operators read them (``GET /complaints``, ``kindly complaints list``): from the
complaints table (``kindly.store.complaints``), the nearest deadline first, every instant at the account's
own UTC offset, as its timeline shows it. Counts, codes and instants only: no personal data."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel
from sqlalchemy import Engine

from kindly.domain.complaints import ComplaintChannel, ComplaintOutcome
from kindly.store import ComplaintStore, ComplaintView

PAGE = 50
"""Complaints one listing shows unless told otherwise."""


class ComplaintItem(BaseModel):
    """One complaint of the listing; instants at the account's offset."""

    account_id: str
    number: int
    channel: ComplaintChannel
    received_at: datetime
    acknowledge_by: datetime
    resolve_by: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    outcome: ComplaintOutcome | None
    acknowledgement_overdue_at: datetime | None
    """When the workflow escalated it, unacknowledged at its deadline (acknowledged late)."""
    resolution_overdue_at: datetime | None
    """When the workflow escalated it, unresolved at its deadline (resolved late)."""
    awaiting: str | None
    """``acknowledgement`` or ``resolution``; None once resolved."""
    next_deadline: datetime | None
    overdue: bool
    """The next deadline has passed."""
    segment: str
    timezone: str
    locale: str


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):  # not an account's: shown in UTC rather than lost
        return UTC


def listed(view: ComplaintView, now: datetime) -> ComplaintItem:
    """``view`` with its instants at the account's offset, and whether its next deadline has passed."""
    zone = _zone(view.timezone)

    def local(moment: datetime | None) -> datetime | None:
        return None if moment is None else moment.astimezone(zone)

    deadline = view.next_deadline
    return ComplaintItem(
        account_id=view.account_id,
        number=view.number,
        channel=view.channel,
        received_at=view.received_at.astimezone(zone),
        acknowledge_by=view.acknowledge_by.astimezone(zone),
        resolve_by=view.resolve_by.astimezone(zone),
        acknowledged_at=local(view.acknowledged_at),
        resolved_at=local(view.resolved_at),
        outcome=view.outcome,
        acknowledgement_overdue_at=local(view.acknowledgement_overdue_at),
        resolution_overdue_at=local(view.resolution_overdue_at),
        awaiting=view.awaiting,
        next_deadline=local(deadline),
        overdue=deadline is not None and deadline <= now,
        segment=view.segment,
        timezone=view.timezone,
        locale=view.locale,
    )


def open_complaints(
    engine: Engine, *, limit: int = PAGE, offset: int = 0, now: datetime | None = None
) -> tuple[list[ComplaintItem], int]:
    """A page of the open complaints, the nearest deadline first, and how many are open in all
    (blocking). ``ValueError`` naming ``limit`` or ``offset`` when out of bounds."""
    store = ComplaintStore(engine)
    moment = now or datetime.now(UTC)
    page = store.open_by_deadline(limit=limit, offset=offset)
    return [listed(view, moment) for view in page], store.count_open()
