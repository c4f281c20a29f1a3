"""The specialist team's cases (``kindly.store.cases``) on SQLite and PostgreSQL: one open case per
account whatever hands it over, the queue by kind and age, bounded notes, a case that ends once. Then the
``hand_off_to_specialist`` activity without a URL, which opens the case."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select
from temporalio.testing import ActivityEnvironment

from activities.handoffs import HandoffActivities
from activities.inputs import SpecialistHandoffInput, WorkItemFacts
from kindly.keyring import KeyRing
from kindly.store import (
    AuditStore,
    CaseUnavailable,
    NewCase,
    SpecialistCases,
    WorkQueue,
    make_engine,
)
from kindly.store.cases import CASE_NOTE_TABLE, MAX_TEXT, UNKNOWN_KIND
from tests.databases import at_once, database_url  # noqa: F401
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


KEYRING = KeyRing(keys={"k1": b"k" * 32}, current_id="k1", hash_key=b"h" * 32)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:  # noqa: F811
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def cases(engine: Engine) -> SpecialistCases:
    return SpecialistCases(engine, KEYRING)


def case(account: str, key: str | None = None, kind: str | None = "hardship", **changes: object) -> NewCase:
    base = NewCase(
        idempotency_key=key or f"overdue-{account}/run/tp-9",
        account_id=account,
        kind=kind,
        reason="customer reported hardship",
        amount_due=Decimal("1200.50"),
        currency="CNY",
        due_date=date(2026, 1, 10),
        timezone="Asia/Shanghai",
        locale="zh-CN",
        segment="standard",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_case_is_added_once_and_an_account_has_one_open_case(cases: SpecialistCases) -> None:
    first = cases.add(case("A"), NOW)
    assert (first.kind, first.amount_due, first.due_date) == ("hardship", "1200.50", date(2026, 1, 10))
    assert cases.add(case("A"), NOW + timedelta(minutes=1)).id == first.id  # a retry
    second_reason = cases.add(case("A", "A/tp-12", kind="dispute"), NOW + timedelta(days=1))
    assert second_reason.id == first.id and second_reason.kind == "hardship"
    assert cases.count_open_by_kind() == {"hardship": 1}
    open_case = cases.case_for_account("A")
    assert open_case is not None and open_case.id == first.id
    cases.resolve(first.id or 0, "sam", "payment plan agreed", NOW + timedelta(days=2))
    assert cases.case_for_account("A") is None
    reopened = cases.add(case("A", "A/tp-20", kind="dispute"), NOW + timedelta(days=3))
    assert reopened.id != first.id and reopened.kind == "dispute"


def test_hand_offs_of_one_account_at_once_open_one_case(cases: SpecialistCases) -> None:
    keys = iter(f"A/tp-{n}" for n in range(6))
    opened = at_once(6, lambda: cases.add(case("A", next(keys)), NOW).id)
    assert len(set(opened)) == 1 and cases.count_open_by_kind() == {"hardship": 1}


def test_a_case_of_a_run_without_kinds_or_facts(cases: SpecialistCases) -> None:
    added = cases.add(NewCase("B/tp-1", "B", None, "no contact", Decimal("3"), "CNY"), NOW)
    assert (added.kind, added.due_date, added.segment) == (UNKNOWN_KIND, None, None)


def test_the_open_cases_by_kind_oldest_first(cases: SpecialistCases) -> None:
    cases.add(case("new-hardship"), NOW)
    cases.add(case("old-hardship"), NOW - timedelta(days=2))
    cases.add(case("dispute", kind="dispute"), NOW - timedelta(days=1))
    cases.add(case("closed", kind="dispute"), NOW - timedelta(days=3))
    assert cases.close_for_account("closed", "repaid", NOW) == 1
    assert cases.close_for_account("closed", "repaid", NOW) == 0
    accounts = [each.account_id for each in cases.open_cases(None, 10)]
    assert accounts == ["old-hardship", "dispute", "new-hardship"]
    assert [each.account_id for each in cases.open_cases("hardship", 10)] == ["old-hardship", "new-hardship"]
    assert [each.account_id for each in cases.open_cases("hardship", 1, offset=1)] == ["new-hardship"]
    assert cases.count_open_by_kind() == {"dispute": 1, "hardship": 2}


def test_notes_are_kept_in_order_and_bounded(cases: SpecialistCases) -> None:
    added = cases.add(case("A"), NOW)
    case_id = added.id or 0
    cases.add_note(case_id, "sam", "called, asked for payslips", NOW + timedelta(hours=1))
    cases.add_note(case_id, "kim", "  payslips received  ", NOW + timedelta(hours=2))
    with pytest.raises(ValueError, match=f"text: at most {MAX_TEXT} characters"):
        cases.add_note(case_id, "sam", "x" * (MAX_TEXT + 1), NOW)
    with pytest.raises(ValueError, match="text: must not be empty"):
        cases.add_note(case_id, "sam", "   ", NOW)
    with pytest.raises(CaseUnavailable, match="there is no case 999"):
        cases.add_note(999, "sam", "lost", NOW)
    cases.add_note(case_id, "sam", "x" * MAX_TEXT, NOW + timedelta(hours=3))
    notes = cases.notes(case_id)
    assert [(note.author, note.text[:16]) for note in notes] == [
        ("sam", "called, asked fo"),
        ("kim", "payslips receive"),
        ("sam", "x" * 16),
    ]
    assert notes[1].text == "payslips received" and notes[0].at == NOW + timedelta(hours=1)
    assert cases.notes(999) == []


def test_notes_are_sealed_in_the_table(cases: SpecialistCases, engine: Engine) -> None:
    """A note may hold what a customer confided: the table keeps it only under the key ring."""
    case_id = cases.add(case("A"), NOW).id or 0
    cases.add_note(case_id, "sam", "lost her job in March", NOW)
    with engine.connect() as connection:
        [stored] = connection.execute(select(CASE_NOTE_TABLE.c.text)).scalars().all()
    assert "job" not in stored and KEYRING.open_text(stored) == "lost her job in March"


def test_a_case_is_resolved_once(cases: SpecialistCases) -> None:
    added = cases.add(case("A"), NOW)
    case_id = added.id or 0
    resolved = cases.resolve(case_id, "sam", "payment plan agreed", NOW + timedelta(hours=1))
    assert (resolved.resolved_by, resolved.resolution, resolved.closed_reason) == (
        "sam",
        "payment plan agreed",
        "resolved",
    )
    with pytest.raises(CaseUnavailable, match="was resolved by sam at 2026-03-02 10:00 UTC"):
        cases.resolve(case_id, "kim", "written off", NOW + timedelta(hours=2))
    again = cases.get(case_id)
    assert again is not None and again.resolution == "payment plan agreed"
    with pytest.raises(ValueError, match="resolution: must not be empty"):
        cases.resolve(case_id, "kim", "", NOW)
    closed = cases.add(case("B"), NOW)
    cases.close_for_account("B", "repaid", NOW)
    with pytest.raises(CaseUnavailable, match=r"was closed \(repaid\)"):
        cases.resolve(closed.id or 0, "kim", "done", NOW)
    with pytest.raises(CaseUnavailable, match="there is no case 999"):
        cases.resolve(999, "kim", "done", NOW)


def test_two_specialists_resolving_at_once_one_succeeds(cases: SpecialistCases) -> None:
    case_id = cases.add(case("A"), NOW).id or 0
    names = iter(f"specialist-{n}" for n in range(4))

    def resolve() -> bool:
        try:
            cases.resolve(case_id, next(names), "settled", NOW)
        except CaseUnavailable:
            return False
        return True

    assert sorted(at_once(4, resolve)) == [False, False, False, True]


async def test_a_hand_off_without_a_url_opens_one_case(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'kindly.db'}")
    store, cases = AuditStore(engine), SpecialistCases(engine, KEYRING)
    keyring = KEYRING
    facts = WorkItemFacts(
        due_date=date(2026, 2, 1),
        timezone="Asia/Shanghai",
        locale="zh-CN",
        segment="standard",
        regime="cn",
        window_start=time(9),
        window_end=time(20),
    )
    request = SpecialistHandoffInput(
        account_id="LN-1",
        amount_due=Decimal("1200.00"),
        currency="CNY",
        reason="customer reported dispute",
        idempotency_key="K",
        facts=facts,
        case="dispute",
    )
    async with httpx.AsyncClient() as client:
        handoffs = HandoffActivities(
            client,
            store,
            phone_url=None,
            specialist_url=None,
            work_queue=WorkQueue(engine, keyring),
            cases=cases,
        )
        for _ in range(2):
            result = await ActivityEnvironment().run(handoffs.hand_off_to_specialist, request)
            assert (result.status, result.detail) == ("accepted", "built-in work queue")
    [opened] = cases.open_cases(None, 10)
    assert (opened.account_id, opened.kind, opened.segment) == ("LN-1", "dispute", "standard")
    assert [(row.kind, row.outcome) for row in store.audit_for("LN-1")] == [
        ("escalated_specialist", "accepted")
    ]
    engine.dispose()
