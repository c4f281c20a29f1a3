"""What a complaint does to an account: pure functions over ``AccountState``, as ``kindly.domain.effects``.

A complaint opens (a reply with a complaint keyword, or an operator's ``open_complaint``), holds automated
contact, and carries two deadlines. An operator acknowledges and resolves it; the workflow escalates it
when a deadline passes first (``deadlines_passed``, at the planner's ``complaint_deadline`` step). Contact
stays held after the resolution until an operator resumes it: whether and how to contact a customer who
complained is a person's decision. Refusals (``complaint_refusal``) come before any of these.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kindly.domain.complaints import (
    AcknowledgeComplaint,
    Complaint,
    ComplaintChannel,
    OpenComplaint,
    ResolveComplaint,
    personal_data_in,
)
from kindly.domain.contract import TimelineKind
from kindly.domain.effect_types import CancelReason, Effect, Entry
from kindly.domain.policy.business_days import business_deadline
from kindly.domain.policy.moments import local_iso
from kindly.domain.refusal_types import Refusal, RefusalKind, invalid
from kindly.domain.state import AccountState

MAX_RECEIVED_AGO = timedelta(days=366)
"""How long before it is recorded a complaint may have been received: an older one is a data-entry slip."""


def open_complaint(state: AccountState) -> Complaint | None:
    return next((complaint for complaint in state.complaints if complaint.is_open), None)


def complaint_opened(
    state: AccountState,
    channel: ComplaintChannel,
    received_at: datetime,
    *,
    note: str | None = None,
    said: Entry | None = None,
) -> Effect:
    """Open the account's next complaint (``state`` is the caller's own copy; none is open): its deadlines
    count from ``received_at``, and automated contact is held. ``said`` is the reply that opened it."""
    policy, zone = state.policy, state.account.timezone
    complaint = Complaint(
        number=len(state.complaints) + 1,
        channel=channel,
        received_at=received_at,
        acknowledge_by=business_deadline(
            policy, zone, received_at, policy.complaint_acknowledge_business_days
        ),
        resolve_by=business_deadline(policy, zone, received_at, policy.complaint_resolve_business_days),
    )
    state.complaints = [*state.complaints, complaint]
    state.complaint_hold = True
    detail = (
        f"complaint {complaint.number} opened ({channel}), received {local_iso(zone, received_at)}; "
        f"acknowledge by {local_iso(zone, complaint.acknowledge_by)}, resolve by "
        f"{local_iso(zone, complaint.resolve_by)}; automated contact held{_noted(note)}"
    )
    entries = (*((said,) if said is not None else ()), Entry(TimelineKind.COMPLAINT_OPENED, detail))
    return Effect(state, entries, CancelReason.COMPLAINT, escalated_to_person=True, complaint_changed=True)


def complaint_acknowledged(state: AccountState, message: AcknowledgeComplaint, now: datetime) -> Effect:
    """``message`` passed ``complaint_refusal``; ``state`` is the caller's own copy."""
    complaint = _numbered(state, message.complaint)
    late = _late(state, now, complaint.acknowledge_by)
    _replace(state, complaint.model_copy(update={"acknowledged_at": now}))
    detail = f"complaint {complaint.number} acknowledged{late}{_noted(message.note)}"
    return Effect(state, (Entry(TimelineKind.COMPLAINT_ACKNOWLEDGED, detail),), complaint_changed=True)


def complaint_resolved(state: AccountState, message: ResolveComplaint, now: datetime) -> Effect:
    """``message`` passed ``complaint_refusal``; ``state`` is the caller's own copy. Resolving answers an
    unacknowledged complaint too; contact stays held until an operator resumes it."""
    complaint = _numbered(state, message.complaint)
    late = _late(state, now, complaint.resolve_by)
    resolved = {
        "resolved_at": now,
        "outcome": message.outcome,
        "acknowledged_at": complaint.acknowledged_at or now,
    }
    _replace(state, complaint.model_copy(update=resolved))
    detail = (
        f"complaint {complaint.number} resolved: {message.outcome}{late}; contact stays held until an "
        f"operator resumes it{_noted(message.note)}"
    )
    return Effect(state, (Entry(TimelineKind.COMPLAINT_RESOLVED, detail),), complaint_changed=True)


def deadlines_passed(state: AccountState, now: datetime) -> Effect:
    """Escalate the open complaint's deadlines that passed by ``now`` unmet (the planner's
    ``complaint_deadline`` step): each is recorded once, as acknowledged or resolved late."""
    complaint = open_complaint(state)
    entries: list[Entry] = []
    state = state.model_copy()
    zone = state.account.timezone
    while (
        complaint is not None and (deadline := complaint.next_deadline()) is not None and deadline[0] <= now
    ):
        at, which = deadline
        if which == "acknowledgement":
            complaint = complaint.model_copy(update={"acknowledgement_overdue_at": now})
            kind, what = TimelineKind.COMPLAINT_ACKNOWLEDGEMENT_OVERDUE, "acknowledged"
        else:
            complaint = complaint.model_copy(update={"resolution_overdue_at": now})
            kind, what = TimelineKind.COMPLAINT_RESOLUTION_OVERDUE, "resolved"
        detail = f"complaint {complaint.number} not {what} by its deadline {local_iso(zone, at)}: escalated"
        entries.append(Entry(kind, detail))
    if complaint is None or not entries:
        return Effect(state)
    _replace(state, complaint)
    return Effect(state, tuple(entries), complaint_changed=True)


def complaint_refusal(
    state: AccountState, message: OpenComplaint | AcknowledgeComplaint | ResolveComplaint, now: datetime
) -> Refusal | None:
    """Why the account cannot take a complaint action now: a second open complaint, a number it does not
    have, one already acknowledged or resolved, a received time ahead of now, or a note naming the
    customer."""
    name, phone = state.account.customer_name, state.account.phone
    note = message.note
    if note is not None and (found := personal_data_in(note, name=name, phone=phone)) is not None:
        return invalid("note", f"must hold no personal data: it has {found}")
    if isinstance(message, OpenComplaint):
        current = open_complaint(state)
        if current is not None:
            return Refusal(
                RefusalKind.CONFLICT, f"complaint {current.number} is open: acknowledge or resolve it first"
            )
        received = message.received_at
        if received is not None and received > now:
            shown = local_iso(state.account.timezone, now)
            return invalid("received_at", f"{received.isoformat()} is in the future (it is now {shown})")
        if received is not None and received < now - MAX_RECEIVED_AGO:
            return invalid("received_at", f"{received.isoformat()} is more than a year ago")
        return None
    if not 1 <= message.complaint <= len(state.complaints):
        return invalid("complaint", f"the account has no complaint {message.complaint} ({_count(state)})")
    complaint = state.complaints[message.complaint - 1]
    if not complaint.is_open:
        return Refusal(RefusalKind.CONFLICT, f"complaint {complaint.number} is already resolved")
    if isinstance(message, AcknowledgeComplaint) and complaint.acknowledged_at is not None:
        return Refusal(RefusalKind.CONFLICT, f"complaint {complaint.number} is already acknowledged")
    return None


def resume_refusal(state: AccountState) -> Refusal | None:
    """Contact held for a complaint resumes only once no complaint is open."""
    current = open_complaint(state)
    if current is None:
        return None
    return Refusal(
        RefusalKind.CONFLICT, f"complaint {current.number} is open: resolve it before contact resumes"
    )


def _count(state: AccountState) -> str:
    count = len(state.complaints)
    return "it has none" if count == 0 else f"it has {count}"


def _numbered(state: AccountState, number: int) -> Complaint:
    return state.complaints[number - 1]


def _replace(state: AccountState, complaint: Complaint) -> None:
    complaints = list(state.complaints)
    complaints[complaint.number - 1] = complaint
    state.complaints = complaints


def _late(state: AccountState, now: datetime, deadline: datetime) -> str:
    if now <= deadline:
        return ""
    return f", after its deadline {local_iso(state.account.timezone, deadline)}"


def _noted(note: str | None) -> str:
    return f"; note: {note}" if note else ""
