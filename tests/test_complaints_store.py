"""The complaints table (``kindly.store.complaints``) on SQLite and PostgreSQL: the workflow's snapshots
kept by account and number (through ``record_changes``), idempotently and without losing a fact to an
older snapshot (also when writers race); the open complaints listed by their next deadline, a page at a
time; an account's own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, inspect
from temporalio.testing import ActivityEnvironment

from activities.inputs import AuditRecord, ComplaintRecord, RecordChangesInput
from activities.records import RecordActivities
from kindly.domain.complaints import Complaint, ComplaintChannel, ComplaintOutcome
from kindly.keyring import KeyRing
from kindly.store import AuditStore, ComplaintStore, ComplaintView, PhoneBook, make_engine
from kindly.store.complaints import ACCOUNT_NUMBER_INDEX, OPEN_DEADLINES_INDEX, snapshot_time
from tests.databases import at_once, database_url  # noqa: F401
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)

AT = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:  # noqa: F811
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def complaints(engine: Engine) -> ComplaintStore:
    return ComplaintStore(engine)


def opened(
    number: int = 1, received: datetime = AT, *, acknowledge_in: int = 1, resolve_in: int = 15
) -> Complaint:
    return Complaint(
        number=number,
        channel=ComplaintChannel.SMS_REPLY,
        received_at=received,
        acknowledge_by=received + acknowledge_in * DAY,
        resolve_by=received + resolve_in * DAY,
    )


def record(
    complaint: Complaint,
    account_id: str = "LN-1",
    *,
    timezone: str = "Asia/Shanghai",
    segment: str = "standard",
) -> ComplaintRecord:
    return ComplaintRecord(
        account_id=account_id, segment=segment, timezone=timezone, locale="zh-CN", complaint=complaint
    )


def acknowledged(complaint: Complaint, at: datetime) -> Complaint:
    return complaint.model_copy(update={"acknowledged_at": at})


def resolved(
    complaint: Complaint, at: datetime, outcome: ComplaintOutcome = ComplaintOutcome.UPHELD
) -> Complaint:
    return complaint.model_copy(update={"resolved_at": at, "outcome": outcome})


def test_a_new_complaint_is_kept_as_the_workflow_sent_it(complaints: ComplaintStore, engine: Engine) -> None:
    complaint = opened()
    complaints.upsert([record(complaint)])
    [view] = complaints.for_account("LN-1")
    assert view == ComplaintView(
        account_id="LN-1",
        number=1,
        channel=ComplaintChannel.SMS_REPLY,
        received_at=AT,
        acknowledge_by=AT + DAY,
        resolve_by=AT + 15 * DAY,
        segment="standard",
        timezone="Asia/Shanghai",
        locale="zh-CN",
        updated_at=AT,
    )
    assert view.is_open and view.awaiting == "acknowledgement" and view.next_deadline == AT + DAY
    assert complaints.count_open() == 1 and complaints.open_by_deadline() == [view]
    assert complaints.for_account("LN-2") == []
    indexes = {index["name"]: index for index in inspect(engine).get_indexes("complaint")}
    assert indexes[ACCOUNT_NUMBER_INDEX]["unique"] and OPEN_DEADLINES_INDEX in indexes


def test_a_retry_changes_nothing_and_each_later_snapshot_adds_its_facts(complaints: ComplaintStore) -> None:
    first = opened()
    complaints.upsert([record(first)])
    complaints.upsert([record(first)])
    assert len(complaints.for_account("LN-1")) == 1
    answered = acknowledged(first, AT + timedelta(hours=3))
    complaints.upsert([record(answered)])
    [view] = complaints.for_account("LN-1")
    assert view.acknowledged_at == AT + timedelta(hours=3) and view.updated_at == AT + timedelta(hours=3)
    assert view.awaiting == "resolution" and view.next_deadline == AT + 15 * DAY
    done = resolved(answered, AT + 4 * DAY, ComplaintOutcome.PARTLY_UPHELD)
    complaints.upsert([record(done)])
    [view] = complaints.for_account("LN-1")
    assert (view.resolved_at, view.outcome) == (AT + 4 * DAY, ComplaintOutcome.PARTLY_UPHELD)
    assert not view.is_open and view.next_deadline is None and view.awaiting is None
    assert complaints.count_open() == 0 and complaints.open_by_deadline() == []


def test_an_older_snapshot_after_a_newer_one_loses_no_fact(complaints: ComplaintStore) -> None:
    first = opened()
    late = first.model_copy(update={"acknowledgement_overdue_at": AT + DAY})
    done = resolved(acknowledged(late, AT + 2 * DAY), AT + 3 * DAY, ComplaintOutcome.NOT_UPHELD)
    complaints.upsert([record(done, timezone="Asia/Urumqi", segment="gentle")])
    # A replayed run sends what it had then: nothing it no longer knows is cleared, nor is the account's
    # newer time zone replaced by the one it had.
    complaints.upsert([record(first), record(late), record(acknowledged(late, AT + 2 * DAY))])
    [view] = complaints.for_account("LN-1")
    assert (view.acknowledgement_overdue_at, view.acknowledged_at) == (AT + DAY, AT + 2 * DAY)
    assert (view.resolved_at, view.outcome) == (AT + 3 * DAY, ComplaintOutcome.NOT_UPHELD)
    assert (view.timezone, view.segment, view.updated_at) == ("Asia/Urumqi", "gentle", snapshot_time(done))


def test_two_snapshots_of_one_complaint_in_a_batch_are_both_kept(complaints: ComplaintStore) -> None:
    first = opened()
    overdue = first.model_copy(update={"acknowledgement_overdue_at": AT + DAY})
    complaints.upsert([record(overdue), record(acknowledged(first, AT + 2 * DAY))])
    [view] = complaints.for_account("LN-1")
    assert (view.acknowledgement_overdue_at, view.acknowledged_at) == (AT + DAY, AT + 2 * DAY)


def test_racing_writers_of_one_complaint_end_with_every_fact(complaints: ComplaintStore) -> None:
    first = opened()
    snapshots = [
        first,
        first.model_copy(update={"acknowledgement_overdue_at": AT + DAY}),
        acknowledged(first, AT + 2 * DAY),
        resolved(first, AT + 3 * DAY),
        first.model_copy(update={"resolution_overdue_at": AT + 16 * DAY}),
        first,
    ]
    pending = list(snapshots)
    at_once(len(snapshots), lambda: complaints.upsert([record(pending.pop())]))
    [view] = complaints.for_account("LN-1")
    assert (view.acknowledgement_overdue_at, view.acknowledged_at) == (AT + DAY, AT + 2 * DAY)
    assert (view.resolved_at, view.outcome, view.resolution_overdue_at) == (
        AT + 3 * DAY,
        ComplaintOutcome.UPHELD,
        AT + 16 * DAY,
    )
    assert view.updated_at == AT + 16 * DAY


def test_the_open_ones_are_listed_by_their_next_deadline_a_page_at_a_time(complaints: ComplaintStore) -> None:
    # Deadlines: C acknowledge by day 1 (overdue first of all), A acknowledge by day 2, B acknowledged so
    # resolve by day 3, D and E both acknowledge by day 4 (E received earlier), F resolved (not listed).
    a = opened(received=AT + DAY)
    b = acknowledged(opened(received=AT - 5 * DAY, resolve_in=8), AT - 4 * DAY)
    c = opened(received=AT)
    d = opened(received=AT + 3 * DAY)
    e = opened(received=AT + 2 * DAY, acknowledge_in=2)
    f = resolved(opened(received=AT - DAY), AT)
    complaints.upsert(
        [
            record(a, "LN-A"),
            record(b, "LN-B"),
            record(c, "LN-C"),
            record(d, "LN-D"),
            record(e, "LN-E"),
            record(f, "LN-F"),
        ]
    )
    listed = [view.account_id for view in complaints.open_by_deadline()]
    assert listed == ["LN-C", "LN-A", "LN-B", "LN-E", "LN-D"]
    assert [view.next_deadline for view in complaints.open_by_deadline()] == [
        AT + DAY,
        AT + 2 * DAY,
        AT + 3 * DAY,
        AT + 4 * DAY,
        AT + 4 * DAY,
    ]
    assert complaints.count_open() == 5
    pages = [complaints.open_by_deadline(limit=2, offset=offset) for offset in (0, 2, 4, 6)]
    assert [[view.account_id for view in page] for page in pages] == [
        ["LN-C", "LN-A"],
        ["LN-B", "LN-E"],
        ["LN-D"],
        [],
    ]


def test_an_accounts_complaints_come_by_number_open_and_resolved(complaints: ComplaintStore) -> None:
    first = resolved(opened(), AT + DAY, ComplaintOutcome.WITHDRAWN)
    second = opened(2, AT + 10 * DAY)
    complaints.upsert([record(second), record(first), record(opened(1), "LN-OTHER")])
    views = complaints.for_account("LN-1")
    assert [(view.number, view.is_open) for view in views] == [(1, False), (2, True)]
    assert complaints.count_open() == 2


@pytest.mark.parametrize(
    ("limit", "offset", "field"),
    [(0, 0, "limit"), (1001, 0, "limit"), (10, -1, "offset"), (10, 10**9 + 1, "offset")],
)
def test_a_page_out_of_bounds_is_refused_naming_the_parameter(
    complaints: ComplaintStore, limit: int, offset: int, field: str
) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        complaints.open_by_deadline(limit=limit, offset=offset)


def test_an_empty_batch_writes_nothing(complaints: ComplaintStore) -> None:
    complaints.upsert([])
    assert complaints.count_open() == 0


async def test_record_changes_keeps_the_complaints_the_workflow_sends(engine: Engine) -> None:
    keyring = KeyRing(keys={"k1": b"k" * 32}, current_id="k1", hash_key=b"h" * 32)
    complaints = ComplaintStore(engine)
    records = RecordActivities(AuditStore(engine), PhoneBook(engine, keyring), {}, complaints=complaints)
    entry = AuditRecord(
        event_key="overdue-LN-1/run/ev-7",
        account_id="LN-1",
        at=AT,
        kind="complaint_opened",
        detail="complaint 1 opened (sms_reply)",
    )
    request = RecordChangesInput(
        account_id="LN-1",
        phone="+8613800138000",
        phone_changed=False,
        opted_out=False,
        decisions=[entry],
        complaints=[record(opened())],
    )
    for _ in range(2):  # a local activity may run again
        await ActivityEnvironment().run(records.record_changes, request)
    [view] = complaints.for_account("LN-1")
    assert (view.number, view.next_deadline) == (1, AT + DAY)
    assert [row.kind for row in AuditStore(engine).audit_for("LN-1")] == ["complaint_opened"]
