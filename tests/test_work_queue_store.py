"""The phone team's work queue (``kindly.store.work_queue``) on SQLite and PostgreSQL: a task added once
however often its hand-off is retried, one open task per account, the queue's order, claims that two
agents racing cannot both win, leases that run out, the number only for the live holder, and the call
history the regimes' limits count. Then the ``create_call_task`` activity without a URL, which fills it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, insert, select
from temporalio.testing import ActivityEnvironment

from activities.handoffs import HandoffActivities
from activities.inputs import AuditRecord, CallTaskInput, WorkItemFacts
from kindly.keyring import KeyRing
from kindly.store import (
    AuditStore,
    CallRecord,
    CallTask,
    NewCallTask,
    SpecialistCases,
    TaskUnavailable,
    WorkQueue,
    make_engine,
)
from kindly.store.work_queue import CALL_TASK_TABLE
from tests.databases import at_once, database_url  # noqa: F401
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)

KEYRING = KeyRing(keys={"k1": b"k" * 32}, current_id="k1", hash_key=b"h" * 32)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=10)
PHONE = "+86 138-0013-8000"
STORED_PHONE = "+8613800138000"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:  # noqa: F811
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def queue(engine: Engine) -> WorkQueue:
    return WorkQueue(engine, KEYRING)


def task(account: str, key: str | None = None, **changes: object) -> NewCallTask:
    base = NewCallTask(
        idempotency_key=key or f"overdue-{account}/run/tp-1",
        account_id=account,
        attempt=1,
        reason="no answer to two reminders",
        amount_due=Decimal("100.00"),
        currency="CNY",
        phone=PHONE,
        due_date=date(2026, 1, 10),
        timezone="Asia/Shanghai",
        locale="zh-CN",
        segment="standard",
        regime="cn",
        window_start=time(9),
        window_end=time(20),
        promise_broken=False,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def ids(tasks: list[CallTask]) -> list[str]:
    return [each.account_id for each in tasks]


# --- adding ------------------------------------------------------------------------------------------


def test_a_task_is_added_once_under_its_key(queue: WorkQueue) -> None:
    first = queue.add(task("A"), NOW)
    again = queue.add(task("A", amount_due=Decimal("999")), NOW + timedelta(minutes=5))
    assert again.id == first.id and again.amount_due == "100.00" and again.created_at == NOW
    assert queue.count_open(NOW) == 1
    assert (first.due_date, first.window_start, first.window_end) == (date(2026, 1, 10), time(9), time(20))
    assert first.phone_encrypted != STORED_PHONE and KEYRING.open_text(first.phone_encrypted) == STORED_PHONE


def test_a_new_task_supersedes_the_accounts_open_one_and_a_late_retry_closes_nothing(
    queue: WorkQueue,
) -> None:
    old = queue.add(task("A", "A/tp-1"), NOW)
    new = queue.add(task("A", "A/tp-2", attempt=2), NOW + timedelta(hours=1))
    old_now = queue.get(old.id or 0)
    assert old_now is not None and (old_now.closed_reason, old_now.closed_at) == (
        "superseded",
        new.created_at,
    )
    assert [each.id for each in queue.open_tasks(NOW + timedelta(hours=2), 10)] == [new.id]
    queue.add(task("A", "A/tp-1"), NOW + timedelta(hours=3))  # the old hand-off's retry
    newest = queue.get(new.id or 0)
    assert newest is not None and newest.closed_at is None


def test_a_task_of_a_run_without_facts_keeps_them_empty(queue: WorkQueue) -> None:
    added = queue.add(NewCallTask("B/tp-1", "B", 1, "reason", Decimal("5"), "CNY", PHONE), NOW)
    assert (added.due_date, added.regime, added.window_start, added.promise_broken) == (
        None,
        None,
        None,
        None,
    )


# --- the order of the queue --------------------------------------------------------------------------


def test_the_queue_puts_due_call_backs_then_broken_promises_then_amount_due_date_and_age(
    queue: WorkQueue,
) -> None:
    adds = [
        task("created-b", amount_due=Decimal("50"), due_date=date(2026, 1, 5)),
        task("no-facts", amount_due=Decimal("50"), due_date=None),
        task("new-due", amount_due=Decimal("100"), due_date=date(2026, 1, 20)),
        task("old-due", amount_due=Decimal("100"), due_date=date(2026, 1, 1)),
        task("999.99", amount_due=Decimal("999.99")),
        task("1000", amount_due=Decimal("1000.00")),
        task("big", amount_due=Decimal("5000")),
        task("promise", amount_due=Decimal("20"), promise_broken=True),
        task("call-back", amount_due=Decimal("10"), call_back_at=NOW - timedelta(minutes=1)),
        task("later", amount_due=Decimal("9000"), call_back_at=NOW + timedelta(hours=1)),
    ]
    for minutes, each in enumerate(adds):
        queue.add(each, NOW - timedelta(hours=1) + timedelta(minutes=minutes))
    queue.add(task("created-a", amount_due=Decimal("50"), due_date=date(2026, 1, 5)), NOW - timedelta(days=1))
    expected = [
        "call-back",
        "promise",
        "big",
        "1000",  # by value, not as text
        "999.99",
        "old-due",
        "new-due",
        "created-a",
        "created-b",
        "no-facts",
    ]
    assert ids(queue.open_tasks(NOW, 100)) == expected  # the call-back due in an hour is not listed
    assert queue.count_open(NOW) == len(expected)
    assert ids(queue.open_tasks(NOW, 3, offset=3)) == expected[3:6]
    # Due, the later call-back comes first too; between call-backs the amount decides.
    assert ids(queue.open_tasks(NOW + timedelta(hours=1), 3)) == ["later", "call-back", "promise"]


def test_the_queue_of_10000_tasks_is_paged_by_the_database(engine: Engine, queue: WorkQueue) -> None:
    rows = [
        {
            "idempotency_key": f"k-{n}",
            "account_id": f"A-{n}",
            "attempt": 1,
            "reason": "r",
            "amount_due": f"{n % 997}.{n % 100:02d}",
            "currency": "CNY",
            "due_date": date(2026, 1, 1) + timedelta(days=n % 60),
            "promise_broken": n % 50 == 0,
            "phone_encrypted": "sealed",
            "created_at": NOW - timedelta(seconds=n),
        }
        for n in range(10_000)
    ]
    with engine.begin() as connection:
        connection.execute(insert(CALL_TASK_TABLE), rows)
    page = queue.open_tasks(NOW, 50, offset=100)
    assert queue.count_open(NOW) == 10_000
    assert len(page) == 50 and all(each.promise_broken for each in page)


# --- claims ------------------------------------------------------------------------------------------


def test_of_agents_claiming_a_task_at_once_exactly_one_wins(queue: WorkQueue) -> None:
    added = queue.add(task("A"), NOW)
    agents = iter(f"agent-{n}" for n in range(8))

    def claim() -> str:
        agent = next(agents)
        try:
            queue.claim(added.id or 0, agent, NOW, LEASE)
        except TaskUnavailable as refused:
            assert "is claimed by agent-" in str(refused) and "until 09:10 UTC" in str(refused)
            return "refused"
        return agent

    results = at_once(8, claim)
    [winner] = [result for result in results if result != "refused"]
    held = queue.get(added.id or 0)
    assert held is not None and (held.claimed_by, held.claimed_until) == (winner, NOW + LEASE)


def test_an_agent_claiming_two_tasks_at_once_holds_one(queue: WorkQueue) -> None:
    """Two tabs of one agent's: the claims are serialised per agent, and the second sees the first."""
    first, second = queue.add(task("A"), NOW), queue.add(task("B"), NOW)
    tasks = iter([first.id or 0, second.id or 0])

    def claim() -> bool:
        task_id = next(tasks)
        try:
            queue.claim(task_id, "ann", NOW, LEASE)
        except TaskUnavailable as refused:
            assert "you already hold task" in str(refused)
            return False
        return True

    assert sorted(at_once(2, claim)) == [False, True]


def test_an_agent_holds_one_task_and_renews_its_own_lease(queue: WorkQueue) -> None:
    first, second = queue.add(task("A"), NOW), queue.add(task("B"), NOW)
    queue.claim(first.id or 0, "ann", NOW, LEASE)
    with pytest.raises(TaskUnavailable, match=f"you already hold task {first.id}: release it") as refused:
        queue.claim(second.id or 0, "ann", NOW, LEASE)
    assert refused.value.held_task == first.id
    renewed = queue.claim(first.id or 0, "ann", NOW + timedelta(minutes=5), LEASE)
    assert renewed.claimed_until == NOW + timedelta(minutes=15)
    held = queue.held_by("ann", NOW + timedelta(minutes=5))
    assert held is not None and held.id == first.id
    assert queue.release(first.id or 0, "ann", NOW + timedelta(minutes=6))
    assert queue.held_by("ann", NOW + timedelta(minutes=6)) is None
    assert queue.claim(second.id or 0, "ann", NOW + timedelta(minutes=6), LEASE).claimed_by == "ann"
    assert not queue.release(first.id or 0, "ann", NOW + timedelta(minutes=7))


def test_a_lease_that_ran_out_lets_another_agent_claim(queue: WorkQueue) -> None:
    added = queue.add(task("A"), NOW)
    queue.claim(added.id or 0, "ann", NOW, LEASE)
    with pytest.raises(TaskUnavailable, match="claimed by ann until 09:10 UTC") as refused:
        queue.claim(added.id or 0, "bob", NOW + timedelta(minutes=9), LEASE)
    assert (refused.value.holder, refused.value.until) == ("ann", NOW + LEASE)
    later = NOW + timedelta(minutes=11)
    assert queue.held_by("ann", later) is None
    assert queue.claim(added.id or 0, "bob", later, LEASE).claimed_by == "bob"
    assert not queue.release(added.id or 0, "ann", later)


def test_closed_tasks_and_call_backs_not_yet_due_are_not_claimed(queue: WorkQueue) -> None:
    later = queue.add(task("A", call_back_at=NOW + timedelta(hours=2)), NOW)
    with pytest.raises(TaskUnavailable, match="a call-back due at 2026-03-02 11:00 UTC"):
        queue.claim(later.id or 0, "ann", NOW, LEASE)
    assert queue.claim(later.id or 0, "ann", NOW + timedelta(hours=2), LEASE).claimed_by == "ann"
    repaid = queue.add(task("B"), NOW)
    assert queue.close_for_account("B", "repaid", NOW) == 1
    assert queue.close_for_account("B", "repaid", NOW) == 0
    with pytest.raises(TaskUnavailable, match=r"is closed \(repaid\)"):
        queue.claim(repaid.id or 0, "bob", NOW, LEASE)
    with pytest.raises(TaskUnavailable, match="there is no task 999"):
        queue.claim(999, "bob", NOW, LEASE)


def test_a_task_past_its_days_window_is_neither_listed_nor_claimed(queue: WorkQueue) -> None:
    """The account planned the call for a day the law and its calendar allowed: after that day's window
    the task waits for the account's next attempt instead."""
    added = queue.add(task("A", offered_until=NOW + timedelta(hours=1)), NOW)
    assert ids(queue.open_tasks(NOW, 10)) == ["A"]
    later = NOW + timedelta(hours=1)
    assert queue.open_tasks(later, 10) == [] and queue.count_open(later) == 0
    with pytest.raises(TaskUnavailable, match="the account plans its next"):
        queue.claim(added.id or 0, "ann", later, LEASE)


# --- the number, the outcome, the history --------------------------------------------------------------


def test_the_number_is_opened_only_for_the_live_holder(queue: WorkQueue) -> None:
    added = queue.add(task("A"), NOW)
    task_id = added.id or 0
    assert queue.phone_for(task_id, "ann", NOW) is None  # nobody holds it
    queue.claim(task_id, "ann", NOW, LEASE)
    assert queue.phone_for(task_id, "ann", NOW + timedelta(minutes=1)) == STORED_PHONE
    assert queue.phone_for(task_id, "bob", NOW + timedelta(minutes=1)) is None
    assert queue.phone_for(task_id, "ann", NOW + LEASE) is None  # the lease ran out


def test_an_outcome_needs_the_live_lease_and_closes_the_task(queue: WorkQueue) -> None:
    added = queue.add(task("A"), NOW)
    task_id = added.id or 0
    with pytest.raises(TaskUnavailable, match="you do not hold task"):
        queue.record_outcome(task_id, "ann", "reached", NOW)
    queue.claim(task_id, "ann", NOW, LEASE)
    with pytest.raises(TaskUnavailable, match="you do not hold task"):
        queue.record_outcome(task_id, "bob", "reached", NOW)
    with pytest.raises(TaskUnavailable, match=r"lease on task \d+ ran out"):
        queue.record_outcome(task_id, "ann", "reached", NOW + LEASE)
    with pytest.raises(ValueError, match="outcome: one of"):
        queue.record_outcome(task_id, "ann", "chatted", NOW)
    queue.claim(task_id, "ann", NOW + LEASE, LEASE)
    done = queue.record_outcome(task_id, "ann", "reached", NOW + LEASE + timedelta(minutes=1))
    assert (done.outcome, done.outcome_by, done.closed_reason) == ("reached", "ann", "outcome")
    assert queue.open_tasks(NOW + timedelta(hours=1), 10) == [] and queue.held_by("ann", NOW + LEASE) is None
    with pytest.raises(TaskUnavailable, match=r"is closed \(outcome\)"):
        queue.record_outcome(task_id, "ann", "reached", NOW + LEASE + timedelta(minutes=2))


def test_a_held_task_the_account_superseded_meanwhile_still_takes_its_outcome(queue: WorkQueue) -> None:
    """The account takes a no-answer and adds its next attempt at once, before the console records the
    outcome: the first call still counts, and the new task is left open."""
    first = queue.add(task("A", key="k-1"), NOW)
    queue.claim(first.id or 0, "ann", NOW, LEASE)
    second = queue.add(task("A", key="k-2"), NOW + timedelta(minutes=1))
    done = queue.record_outcome(first.id or 0, "ann", "no_answer", NOW + timedelta(minutes=1))
    assert (done.outcome, done.outcome_by, done.closed_reason) == ("no_answer", "ann", "superseded")
    assert [record.connected for record in queue.call_history(["A"], NOW)["A"]] == [False]
    assert ids(queue.open_tasks(NOW + timedelta(minutes=2), 10)) == ["A"]
    newer = queue.get(second.id or 0)
    assert newer is not None and newer.closed_at is None
    with pytest.raises(TaskUnavailable, match="superseded"):
        queue.record_outcome(first.id or 0, "ann", "reached", NOW + timedelta(minutes=2))


def test_the_call_history_tells_attempts_from_connected_calls(queue: WorkQueue) -> None:
    for hour, outcome in enumerate(["no_answer", "no_answer", "reached"]):
        at = NOW + timedelta(hours=hour)
        added = queue.add(task("A", f"A/tp-{hour}"), at)
        queue.claim(added.id or 0, "ann", at, LEASE)
        queue.record_outcome(added.id or 0, "ann", outcome, at + timedelta(minutes=1))
    queue.add(task("A", "A/tp-open"), NOW + timedelta(hours=5))  # no outcome yet: no call
    history = queue.call_history(["A", "B"], since=NOW + timedelta(minutes=30))
    assert history == {
        "A": [
            CallRecord(at=NOW + timedelta(hours=1, minutes=1), connected=False),
            CallRecord(at=NOW + timedelta(hours=2, minutes=1), connected=True),
        ],
        "B": [],
    }
    assert queue.call_history([], since=NOW) == {}


# --- the activity that fills the queue ----------------------------------------------------------------


def decision(name: str) -> AuditRecord:
    return AuditRecord(event_key=f"K/{name}", account_id="LN-1", at=NOW, kind="scheduled", detail=name)


async def test_a_call_task_without_a_url_lands_in_the_queue_once_with_the_number_sealed(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'kindly.db'}")
    store, queue = AuditStore(engine), WorkQueue(engine, KEYRING)
    async with httpx.AsyncClient() as client:
        handoffs = HandoffActivities(
            client,
            store,
            phone_url=None,
            specialist_url=None,
            work_queue=queue,
            cases=SpecialistCases(engine, KEYRING),
        )
        facts = WorkItemFacts(
            due_date=date(2026, 2, 1),
            timezone="Asia/Shanghai",
            locale="zh-CN",
            segment="standard",
            regime="cn",
            window_start=time(9),
            window_end=time(20),
            promise_broken=True,
        )
        request = CallTaskInput(
            account_id="LN-1",
            attempt=1,
            phone=STORED_PHONE,
            amount_due=Decimal("1200.00"),
            currency="CNY",
            reason="no answer to two reminders",
            idempotency_key="K",
            decisions=[decision("d1")],
            facts=facts,
        )
        retry = ActivityEnvironment()
        retry.info = dataclasses.replace(retry.info, attempt=2)
        results = [
            await env.run(handoffs.create_call_task, request) for env in (ActivityEnvironment(), retry)
        ]
    assert {(result.status, result.detail) for result in results} == {("accepted", "built-in work queue")}
    [queued] = queue.open_tasks(datetime.now(UTC), 10)
    assert (queued.account_id, queued.amount_due, queued.promise_broken, queued.regime) == (
        "LN-1",
        "1200.00",
        True,
        "cn",
    )
    assert [(row.kind, row.outcome) for row in store.audit_for("LN-1")] == [
        ("scheduled", None),
        ("escalated_phone", "accepted"),
    ]
    with engine.connect() as connection:
        assert connection.execute(select(CALL_TASK_TABLE.c.phone_encrypted)).scalar_one() != STORED_PHONE
    engine.dispose()
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.name.startswith("kindly.db"))
    assert b"13800138000" not in stored and "13800138000".encode("utf-16-le") not in stored
