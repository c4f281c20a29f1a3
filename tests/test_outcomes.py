"""Per-account outcomes (``kindly.analytics.outcomes``) folded from known stories (``tests/outcome_stories``),
and the derived table ``account_outcomes`` on SQLite and PostgreSQL: refreshed past its watermark it
holds what a full rebuild holds, whatever the order and the batches the audit rows came in."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, insert, inspect, select, text

from kindly.analytics import (
    AccountOutcome,
    fold,
    load_outcomes,
    outcome_table,
    rebuild_outcomes,
    refresh_outcomes,
)
from kindly.analytics.outcomes import OUTCOMES_VERSION, AuditEvent
from kindly.store import AuditEntry, AuditStore, make_engine, migrate
from kindly.store.audit import AUDIT_TABLE
from kindly.store.outcomes import WATERMARK_TABLE
from tests.databases import at_once, database_url  # noqa: F401  (SQLite and PostgreSQL, a fixture)
from tests.outcome_stories import entry, started, stories
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)

LATER = datetime(2027, 1, 1, tzinfo=UTC)
"""A refresh's "now" long after every story (so the watermark passes every row)."""


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text + "+00:00")


def folded(entries: list[AuditEntry]) -> dict[str, AccountOutcome]:
    """Each account's outcome by ``fold`` alone, with ids in list order."""
    by_account: dict[str, list[AuditEvent]] = defaultdict(list)
    for number, row in enumerate(entries, start=1):
        by_account[row.account_id].append(AuditEvent(number, row.at, row.kind, row.detail, row.template))
    return {
        account: fold(account, sorted(events, key=lambda event: (event.at, event.id)))
        for account, events in by_account.items()
    }


def test_each_story_comes_to_its_outcome() -> None:
    outcomes = folded(stories())
    a = outcomes["A-CURED"]
    assert (a.segment, a.currency, a.amount_due, a.due_date) == (
        "standard",
        "CNY",
        Decimal("1000.00"),
        date(2026, 1, 10),
    )
    assert (a.cohort, a.experiments, a.arm("tone"), a.arm("other")) == (
        "2026-01",
        {"tone": "gentle"},
        "gentle",
        "none",
    )
    assert (a.cured, a.cured_at, a.cure_day, a.days_past_due_at_cure) == (
        True,
        utc("2026-01-20T09:00:00"),
        10,
        10,
    )
    assert (a.cured_within(10), a.cured_within(9)) == (True, False)
    assert (a.collected, a.repayments, a.sms_sent, a.replies, a.replied) == (
        Decimal("1000.00"),
        2,
        3,
        1,
        True,
    )
    assert a.templates == {
        "pre_due": {"sent": 1, "replies": 0, "opt_outs": 0, "disputes": 0, "hardships": 0},
        "due_today": {"sent": 1, "replies": 0, "opt_outs": 0, "disputes": 0, "hardships": 0},
        "first_overdue": {"sent": 1, "replies": 1, "opt_outs": 0, "disputes": 0, "hardships": 0},
    }
    assert (a.promises_made, a.promises_kept, a.promises_broken) == (1, 1, 0)
    assert not (a.escalated_phone or a.escalated_specialist or a.settled or a.closed or a.opted_out)

    b = outcomes["B-SETTLED"]
    assert (b.cured, b.settled, b.settled_at, b.collected) == (
        False,
        True,
        utc("2026-04-10T02:00:00"),
        Decimal("1800.00"),
    )
    assert (b.sms_sent, b.call_tasks, b.escalated_phone, b.escalated_specialist) == (4, 1, True, True)
    assert (b.promises_made, b.promises_kept, b.promises_broken) == (2, 1, 1)
    assert {name: counts["sent"] for name, counts in b.templates.items()} == {
        "first_overdue": 1,
        "broken_promise": 1,
        "follow_up": 2,
    }

    c = outcomes["C-OPTOUT"]
    assert (c.opted_out, c.closed, c.closed_at, c.call_tasks, c.sms_sent, c.replies) == (
        True,
        True,
        utc("2026-05-01T02:00:00"),
        1,
        3,
        1,
    )
    assert c.templates["first_overdue"] == {
        "sent": 1,
        "replies": 1,
        "opt_outs": 1,
        "disputes": 0,
        "hardships": 0,
    }
    assert c.templates["opt_out_confirmation"]["sent"] == 1 and c.experiments == {}

    d = outcomes["D-DISPUTE"]
    assert (d.dispute, d.hardship, d.escalated_specialist, d.cured, d.settled, d.closed) == (
        True,
        False,
        True,
        False,
        False,
        False,
    )
    assert (d.complaints_opened, d.complaints_acknowledged_late, d.complaints_resolved_late) == (1, 1, 1)
    assert d.templates["pre_due"] == {
        "sent": 1,
        "replies": 1,
        "opt_outs": 0,
        "disputes": 1,
        "hardships": 0,
        "complaints": 1,
        "complaints_acknowledged_late": 1,
        "complaints_resolved_late": 1,
    }

    e = outcomes["E-EARLY"]
    assert (e.hardship, e.cure_day, e.days_past_due_at_cure, e.cured_within(0)) == (True, -1, 0, True)
    assert e.templates["pre_due"]["hardships"] == 1

    f = outcomes["F-PROMISES"]
    assert (f.promises_made, f.promises_kept, f.promises_broken, f.collected) == (3, 0, 1, Decimal("200.00"))
    assert f.templates["broken_promise"]["sent"] == 1  # read from the detail: the column is empty
    # Its complaint came before any SMS, and was resolved in time.
    assert (f.complaints_opened, f.complaints_acknowledged_late, f.complaints_resolved_late) == (1, 0, 0)
    assert not any("complaints" in counts for counts in f.templates.values())
    assert a.complaints_opened == 0

    g = outcomes["G-NOSTART"]
    assert (g.segment, g.due_date, g.started_at, g.cohort, g.sms_sent) == (None, None, None, None, 1)


def test_a_second_start_and_an_unreadable_detail_change_nothing_they_should_not() -> None:
    rows = [
        started("R-1", "2026-01-01T00:00:00", "standard", "100.00", "CNY", "2026-01-05"),
        entry("R-1", "2026-01-02T00:00:00", "repayment_received", "garbled"),
        entry("R-1", "2026-01-03T00:00:00", "promise_broken", "nothing was promised"),
        entry("R-1", "2026-01-03T00:00:00", "experiment_assigned", "experiment tone arm a"),
        entry("R-1", "2026-01-04T00:00:00", "experiment_assigned", "experiment tone arm b"),
        started("R-1", "2026-02-01T00:00:00", "other", "50.00", "USD", "2026-02-05"),
        entry("R-1", "2026-02-02T00:00:00", "started", "not a start"),
    ]
    outcome = folded(rows)["R-1"]
    assert (outcome.segment, outcome.currency, outcome.due_date) == ("standard", "CNY", date(2026, 1, 5))
    assert (outcome.repayments, outcome.collected, outcome.promises_broken) == (1, Decimal("0"), 0)
    assert outcome.experiments == {"tone": "a"}


# --- the derived table ----------------------------------------------------------------------------


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:  # noqa: F811
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def by_account(engine: Engine) -> dict[str, AccountOutcome]:
    return {outcome.account_id: outcome for outcome in load_outcomes(engine)}


def watermark(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(WATERMARK_TABLE.c.audit_id)).scalar_one())


def without_ids(outcomes: dict[str, AccountOutcome]) -> dict[str, dict[str, Any]]:
    return {name: {**outcome.to_record(), "last_audit_id": None} for name, outcome in outcomes.items()}


def test_the_first_refresh_builds_the_table_and_later_ones_read_only_what_is_new(engine: Engine) -> None:
    AuditStore(engine).append(stories())
    first = refresh_outcomes(engine, now=LATER)
    assert first.rebuilt and first.accounts == 8 and first.watermark == len(stories())
    stored = by_account(engine)
    assert without_ids(stored) == without_ids(folded(stories()))
    assert stored["A-CURED"].last_audit_id == 12  # its repaid entry, the story's 12th row

    nothing = refresh_outcomes(engine, now=LATER)
    assert (nothing.rebuilt, nothing.audit_rows, nothing.accounts, nothing.watermark) == (
        False,
        0,
        0,
        first.watermark,
    )

    AuditStore(engine).append(
        [
            entry(
                "D-DISPUTE", "2026-05-01T00:00:00", "repayment_received", "800.00 received (P-D); 0.00 left"
            ),
            entry("D-DISPUTE", "2026-05-01T00:00:00", "repaid", "paid in full"),
            entry("Z-NEW", "2026-05-01T00:00:00", "deferred", "sms pre_due D-7 deferred (x) to y"),
        ]
    )
    later = refresh_outcomes(engine, now=LATER)
    assert (later.rebuilt, later.audit_rows, later.accounts, later.watermark) == (
        False,
        3,
        1,
        first.watermark + 3,
    )
    d = by_account(engine)["D-DISPUTE"]
    assert (d.cure_day, d.collected, d.dispute) == (70, Decimal("800.00"), True)
    assert "Z-NEW" not in by_account(engine)  # nothing an outcome reads


def test_refreshing_in_any_batches_and_order_gives_what_a_rebuild_gives(engine: Engine) -> None:
    rows = stories()
    # Entries reach the log late and out of their time order (a workflow's pending entries, written
    # with its next activity): the odd rows first, in three batches, then the even ones in reverse.
    batches = [rows[0::2][:10], rows[0::2][10:20], rows[0::2][20:], list(reversed(rows[1::2]))]
    for batch in batches:
        AuditStore(engine).append(batch)
        refresh_outcomes(engine, now=LATER)
    incremental = by_account(engine)
    rebuilt = rebuild_outcomes(engine, now=LATER)
    assert rebuilt.rebuilt and rebuilt.watermark == watermark(engine) == len(rows)
    assert by_account(engine) == incremental
    assert without_ids(incremental) == without_ids(folded(rows))


def test_a_row_committed_after_a_higher_id_is_not_passed_by_the_watermark(engine: Engine) -> None:
    """On PostgreSQL ids are taken at insert and rows appear at commit: id 3 may appear after id 4. The
    watermark stops short of rows recorded within the grace period, so a late one is read next time."""
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def row(row_id: int, at: str, kind: str, detail: str, recorded: datetime) -> dict[str, Any]:
        return {
            "id": row_id,
            "event_key": f"late/{row_id}",
            "account_id": "L-1",
            "at": utc(at),
            "kind": kind,
            "detail": detail,
            "recorded_at": recorded,
        }

    def add(*rows: dict[str, Any]) -> None:
        with engine.begin() as connection:
            connection.execute(insert(AUDIT_TABLE), list(rows))

    old = now - timedelta(hours=1)
    add(
        row(1, "2026-02-20T00:00:00", "started", "segment standard, 100.00 CNY due 2026-02-25", old),
        row(2, "2026-02-26T00:00:00", "sms_sent", "first_overdue touchpoint 1 (1 segment(s))", old),
        row(4, "2026-03-01T11:59:00", "repaid", "paid in full", now - timedelta(seconds=30)),
    )
    first = refresh_outcomes(engine, now=now)
    assert first.watermark == 2  # row 4 is too recent to pass
    assert by_account(engine)["L-1"].cured
    add(
        row(
            3,
            "2026-03-01T11:58:00",
            "repayment_received",
            "100.00 received (P-L); 0.00 left",
            now - timedelta(seconds=40),
        )
    )
    second = refresh_outcomes(engine, now=now)
    assert (second.audit_rows, second.watermark) == (2, 2)
    assert by_account(engine)["L-1"].collected == Decimal("100.00")
    third = refresh_outcomes(engine, now=now + timedelta(minutes=11))
    assert third.watermark == 4
    assert refresh_outcomes(engine, now=now + timedelta(minutes=12)).audit_rows == 0


def test_other_definitions_rebuild_the_table(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    AuditStore(engine).append(stories())
    assert refresh_outcomes(engine, now=LATER).rebuilt
    assert not refresh_outcomes(engine, now=LATER).rebuilt
    monkeypatch.setattr(outcome_table, "OUTCOMES_VERSION", OUTCOMES_VERSION + 1)
    again = refresh_outcomes(engine, now=LATER)
    assert again.rebuilt and again.accounts == 8
    assert not refresh_outcomes(engine, now=LATER).rebuilt


def test_refreshes_at_once_write_the_table_once_each_and_agree(engine: Engine) -> None:
    AuditStore(engine).append(stories())
    url = engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url) for _ in range(4)]
    waiting = list(engines)
    try:
        results = at_once(4, lambda: refresh_outcomes(waiting.pop(), now=LATER))
    finally:
        for each in engines:
            each.dispose()
    assert all(result.watermark == len(stories()) for result in results)
    assert without_ids(by_account(engine)) == without_ids(folded(stories()))


def test_the_migration_adds_only_what_is_missing_and_its_downgrade_loses_nothing_of_the_log(
    engine: Engine,
) -> None:
    """0003 on a database that has its index but not its tables (a half-finished earlier attempt), and
    back down to 0002 and up again: the derived tables come back empty and the next report rebuilds them."""
    AuditStore(engine).append(stories())
    refresh_outcomes(engine, now=LATER)
    with engine.begin() as connection:
        command.downgrade(migrate.alembic_config(connection), "0002")
    assert not {"account_outcomes", "analytics_watermark"} & set(inspect(engine).get_table_names())
    with engine.begin() as connection:
        connection.execute(text("CREATE INDEX ix_audit_log_account_id_at ON audit_log (account_id, at)"))
    assert migrate.upgrade(engine) == migrate.head_revision()
    assert refresh_outcomes(engine, now=LATER).rebuilt
    assert without_ids(by_account(engine)) == without_ids(folded(stories()))
