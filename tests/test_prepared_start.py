"""Accounts their starter prepared (``kindly.programs.preparation``): a run that begins without
asking the world.

What it saves is read from the run's history (no marker, no upsert before its first action); what the
preparation does is checked in the database (phone index, opt-outs) and in the workflow's timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import WORKFLOW_TYPE, AccountInput, TimelineKind, workflow_id_for
from kindly.domain.policy.model import load_policies
from kindly.domain.search_attributes import ALL_KEYS, NEXT_TOUCHPOINT_AT
from kindly.keyring import load_keyring
from kindly.programs.portfolio import ImportOutcome, import_portfolio
from kindly.programs.preparation import AccountPreparer, NewRun, PreparedStart
from kindly.programs.temporal import start_account
from kindly.settings import Settings
from kindly.store.contacts import PhoneIndex, create_tables
from kindly.store.db import AuditStore, make_engine
from tests.conftest import eventually
from tests.lifecycle_helpers import STARTED, make_account, status, timeline

CHANGE_VERSION = "TemporalChangeVersion"


def _afternoon_zone(now: datetime) -> str:
    """A fixed-offset zone where it is 14:xx at ``now``: a reminder due today goes at once."""
    offset = 14 - now.hour
    offset = offset - 24 if offset > 14 else offset
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"


def _phones(settings: Settings) -> PhoneIndex:
    engine = make_engine(settings.database_url)
    create_tables(engine)
    return PhoneIndex(engine, load_keyring(settings))


def _preparer(settings: Settings, now: datetime) -> AccountPreparer:
    """As ``AccountPreparer.from_settings`` builds it, at ``now``."""
    engine = make_engine(settings.database_url)
    return AccountPreparer(
        _phones(settings), load_policies(settings.policy_file), audit=AuditStore(engine), clock=lambda: now
    )


def _first_task_commands(events: list[HistoryEvent]) -> list[int]:
    """The events the run's first workflow task recorded: between its completion and what follows."""
    start = next(
        i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    commands: list[int] = []
    for event in events[start + 1 :]:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            break
        commands.append(event.event_type)
    return commands


def _upserted_keys(event: HistoryEvent) -> set[str]:
    return set(event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)


async def _overdue_account_due_now(
    env: WorkflowEnvironment, **overrides: Any
) -> tuple[AccountInput, datetime]:
    now = await env.get_current_time()
    zone = _afternoon_zone(now)
    local_today = now.astimezone(load_zone(zone)).date()
    return make_account(local_today - timedelta(days=1), timezone=zone, **overrides), now


def load_zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


async def test_a_prepared_run_writes_no_marker_and_publishes_once_for_its_first_touchpoint(
    env: WorkflowEnvironment, client: Client, settings: Settings, store: AuditStore
) -> None:
    account, now = await _overdue_account_due_now(env)
    [prepared] = _preparer(settings, now).prepare([account])
    handle = await start_account(client, account, task_queue=settings.task_queue, prepared=prepared)
    STARTED.append(handle)
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 1 and s.next_touchpoint_at is not None)

    events = [event async for event in handle.fetch_history_events()]
    assert not [e for e in events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    started = events[0].workflow_execution_started_event_attributes
    assert set(started.search_attributes.indexed_fields) == {key.name for key in ALL_KEYS}
    assert _first_task_commands(events) == [EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED], (
        "the first task only sends: no local activity, no version marker, no upsert"
    )
    upserts = [e for e in events if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES]
    assert len(upserts) == 1 and CHANGE_VERSION not in _upserted_keys(upserts[0])

    assert _phones(settings).accounts_for(account.phone) == [account.account_id]
    audited = [entry.kind for entry in store.audit_for(account.account_id)]
    assert TimelineKind.STARTED in audited and TimelineKind.SMS_SENT in audited, (
        "the start's entry reached the audit log with the first SMS"
    )


async def test_a_prepared_run_whose_first_reminder_is_days_away_only_starts_a_timer(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    """Its first plan equals the one the starter published (same code, same state): nothing to upsert."""
    now = await env.get_current_time()
    zone = _afternoon_zone(now)
    account = make_account(now.astimezone(load_zone(zone)).date() + timedelta(days=10), timezone=zone)
    [prepared] = _preparer(settings, now).prepare([account])
    handle = await start_account(client, account, task_queue=settings.task_queue, prepared=prepared)
    STARTED.append(handle)
    planned = await eventually(lambda: status(handle), lambda s: s.next_touchpoint_at is not None)

    events = [event async for event in handle.fetch_history_events()]
    assert _first_task_commands(events) == [EventType.EVENT_TYPE_TIMER_STARTED]
    assert planned.next_touchpoint_at == prepared.search_attributes.get(NEXT_TOUCHPOINT_AT)


async def test_a_number_that_opted_out_before_starts_opted_out(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    account, now = await _overdue_account_due_now(env, phone="+8613900139000")
    _phones(settings).record_opt_out(account.phone, "LN-EARLIER-ACCOUNT")
    [prepared] = _preparer(settings, now).prepare([account])
    assert prepared.prepared.opted_out
    handle = await start_account(client, account, task_queue=settings.task_queue, prepared=prepared)
    STARTED.append(handle)
    entries = await eventually(
        lambda: timeline(handle), lambda e: TimelineKind.OPTED_OUT in [x.kind for x in e]
    )
    assert TimelineKind.SMS_SENT not in [entry.kind for entry in entries]
    assert (await status(handle)).sms_sent == 0


async def test_a_bad_preparation_fails_the_run_naming_the_field(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    account, _ = await _overdue_account_due_now(env)
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        args=[account.model_dump(mode="json"), None, {"policy": {}, "opted_out": "perhaps"}],
        id=workflow_id_for(account.account_id),
        task_queue=settings.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidAccountInput"
    assert "preparation" in cause.message and "opted_out" in cause.message


def test_indexing_before_a_bulk_start_adds_new_accounts_and_leaves_changed_numbers_alone(
    settings: Settings,
) -> None:
    phones = _phones(settings)
    phones.replace("LN-CHANGED", "+8613700137001")  # an open run whose number an operator changed
    phones.record_opt_out("+8613700137002", "LN-ELSEWHERE")
    found = phones.index_new_accounts(
        [("LN-NEW", "+8613700137000"), ("LN-CHANGED", "+8613700137009"), ("LN-STOPPED", "+8613700137002")]
    )
    assert found.opted_out == {"LN-STOPPED"}
    assert found.indexed_elsewhere == {"LN-CHANGED"}
    assert phones.accounts_for("+8613700137000") == ["LN-NEW"]
    assert phones.accounts_for("+8613700137001") == ["LN-CHANGED"]
    assert phones.accounts_for("+8613700137009") == []
    # Indexing the same accounts again changes nothing and reports the same.
    again = phones.index_new_accounts([("LN-NEW", "+8613700137000")])
    assert again.indexed_elsewhere == frozenset() and phones.accounts_for("+8613700137000") == ["LN-NEW"]


async def test_import_prepares_new_accounts_and_a_reimport_keeps_a_changed_number(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    now = await env.get_current_time()
    preparer = _preparer(settings, now)
    phones = _phones(settings)
    accounts = [
        make_account(now.date() + timedelta(days=20), phone=f"+861360013600{i}", amount_due=Decimal("900.00"))
        for i in range(3)
    ]
    first = await import_portfolio(client, accounts, task_queue=settings.task_queue, preparer=preparer)
    STARTED.extend(client.get_workflow_handle(workflow_id_for(a.account_id)) for a in accounts)
    assert [r.outcome for r in first.results] == [ImportOutcome.STARTED] * 3
    assert all(r.error is None for r in first.results)
    for account in accounts:
        assert phones.accounts_for(account.phone) == [account.account_id]
        history = [
            e
            async for e in client.get_workflow_handle(
                workflow_id_for(account.account_id)
            ).fetch_history_events()
        ]
        assert not [e for e in history if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]

    phones.replace(accounts[0].account_id, "+8613600136999")  # the workflow's update_contact did this
    again = await import_portfolio(client, accounts, task_queue=settings.task_queue, preparer=preparer)
    assert [r.outcome for r in again.results] == [ImportOutcome.ALREADY_RUNNING] * 3
    assert phones.accounts_for("+8613600136999") == [accounts[0].account_id]
    assert phones.accounts_for(accounts[0].phone) == []


class _BrokenPreparer(AccountPreparer):
    def prepare(self, accounts: Sequence[AccountInput]) -> list[PreparedStart]:
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))


async def test_an_import_whose_preparation_fails_starts_the_accounts_unprepared(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    now = await env.get_current_time()
    broken = _BrokenPreparer(_phones(settings), load_policies(settings.policy_file), clock=lambda: now)
    account = make_account(now.date() + timedelta(days=20), phone="+8613500135000")
    report = await import_portfolio(client, [account], task_queue=settings.task_queue, preparer=broken)
    handle = client.get_workflow_handle(workflow_id_for(account.account_id))
    STARTED.append(handle)
    assert [r.outcome for r in report.results] == [ImportOutcome.STARTED]
    # The run prepared itself: its own local activity (a marker in its history) indexed its number.
    await eventually(lambda: _marker_names(handle), lambda names: "core_local_activity" in names)
    assert _phones(settings).accounts_for(account.phone) == [account.account_id]


async def _marker_names(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [
        event.marker_recorded_event_attributes.marker_name
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]


async def test_an_import_writes_its_new_runs_first_audit_entries_once(
    env: WorkflowEnvironment, client: Client, settings: Settings, store: AuditStore
) -> None:
    """The audit log shows an imported account from its import on, not from its first reminder days
    later; the run's own write of the same entries (with its first SMS) adds no second row."""
    account_due_now, now = await _overdue_account_due_now(env, phone="+8613400134000")
    later = make_account(now.date() + timedelta(days=20), phone="+8613400134001")
    stopped = make_account(now.date() + timedelta(days=20), phone="+8613400134002")
    _phones(settings).record_opt_out(stopped.phone, "LN-EARLIER-ACCOUNT")
    accounts = [account_due_now, later, stopped]

    report = await import_portfolio(
        client, accounts, task_queue=settings.task_queue, preparer=_preparer(settings, now)
    )
    STARTED.extend(client.get_workflow_handle(workflow_id_for(a.account_id)) for a in accounts)
    run_ids = report.run_ids()

    def keyed(account: AccountInput) -> dict[str, str]:
        return {entry.event_key: entry.kind for entry in store.audit_for(account.account_id)}

    first_run = f"{workflow_id_for(later.account_id)}/{run_ids[later.account_id]}"
    assert keyed(later) == {f"{first_run}/ev-1": TimelineKind.STARTED}, (
        "written by the importer: the run's first action is 20 days away"
    )
    stopped_run = f"{workflow_id_for(stopped.account_id)}/{run_ids[stopped.account_id]}"
    assert keyed(stopped) == {
        f"{stopped_run}/ev-1": TimelineKind.STARTED,
        f"{stopped_run}/ev-2": TimelineKind.OPTED_OUT,
    }

    handle = client.get_workflow_handle(workflow_id_for(account_due_now.account_id))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
    kinds = [entry.kind for entry in store.audit_for(account_due_now.account_id)]
    assert kinds.count(TimelineKind.STARTED) == 1 and TimelineKind.SMS_SENT in kinds

    again = await import_portfolio(
        client, accounts, task_queue=settings.task_queue, preparer=_preparer(settings, now)
    )
    assert [r.outcome for r in again.results] == [ImportOutcome.ALREADY_RUNNING] * 3
    assert len(keyed(later)) == 1, "a re-import starts no run and writes nothing"


class _AuditDownPreparer(AccountPreparer):
    def record_started(self, runs: Sequence[NewRun]) -> int:
        raise OperationalError("INSERT", {}, Exception("database is locked"))


async def test_an_import_whose_audit_write_fails_still_starts_and_reports_no_error(
    env: WorkflowEnvironment, client: Client, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The runs write the same entries with their first action: the import loses nothing."""
    now = await env.get_current_time()
    preparer = _AuditDownPreparer(_phones(settings), load_policies(settings.policy_file), clock=lambda: now)
    account = make_account(now.date() + timedelta(days=20), phone="+8613400134100")
    report = await import_portfolio(client, [account], task_queue=settings.task_queue, preparer=preparer)
    STARTED.append(client.get_workflow_handle(workflow_id_for(account.account_id)))
    assert [(r.outcome, r.error) for r in report.results] == [(ImportOutcome.STARTED, None)]
    assert "could not write the first audit entries of 1 new run(s)" in caplog.text
