"""Worker crashes (SIGKILL) against a real dev server, real worker processes and the real SMS sandbox.

1. The gateway accepted a message but the worker died before the activity completed: after the
   activity's start-to-close timeout (60 s, set by the workflow; no worker-side setting shortens it,
   so this test waits for it in real time) Temporal retries on a new worker with the same
   idempotency key, the sandbox deduplicates it, and the customer has exactly one SMS.
2. Two workers share the task queue and one is killed with sends in flight: every account still
   gets its first SMS, exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.api.enums.v1 import EventType, TaskQueueType, TimeoutType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle

from kindly.domain.contract import (
    AccountInput,
    AccountStatus,
    QueryName,
    TemplateName,
    TimelineEntry,
    TimelineKind,
)
from kindly.programs.temporal import start_account
from kindly.settings import Settings
from tests.fault_helpers import (
    FAULT_SEGMENT,
    FaultyGateway,
    dev_server,
    fault_settings,
    faulty_gateway,
    phone_number,
    poll_until,
    settings_environment,
    worker_processes,
    zone_at_local_hour,
)

START_TO_CLOSE_SECONDS = 60  # workflows/overdue_account.py, send_sms
RETRY_DEADLINE = START_TO_CLOSE_SECONDS + 120  # the timeout, the first retry's backoff, slow CI
WORKER_HTTP_TIMEOUT = "600"  # the held request must outlive the kill, not time out on its own

Handle = WorkflowHandle[Any, Any]


def _account(zone: str, n: int) -> AccountInput:
    """An account due today in ``zone`` (where it is early afternoon): its SMS goes at once."""
    return AccountInput(
        account_id=f"FLT-{uuid.uuid4().hex[:8]}-{n}",
        customer_name="Fault Test",
        phone=phone_number(n),
        timezone=zone,
        locale="en-US",
        amount_due=Decimal("800.00"),
        currency="CNY",
        due_date=datetime.now(ZoneInfo(zone)).date(),
        segment=FAULT_SEGMENT,
    )


async def _status(handle: Handle) -> AccountStatus:
    status: AccountStatus = await handle.query(QueryName.STATUS, result_type=AccountStatus)
    return status


async def _timeline(handle: Handle) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = await handle.query(QueryName.TIMELINE, result_type=list[TimelineEntry])
    return entries


def _sent_entries(entries: list[TimelineEntry]) -> list[TimelineEntry]:
    return [e for e in entries if e.kind is TimelineKind.SMS_SENT]


def _outbox(database: Path, key: str) -> tuple[str, int]:
    with sqlite3.connect(database) as db:
        row = db.execute("SELECT status, attempts FROM outbox WHERE idempotency_key = ?", (key,)).fetchone()
    assert row is not None, f"no outbox row for {key}"
    return str(row[0]), int(row[1])


def _audited_sends(database: Path, account_id: str) -> int:
    with sqlite3.connect(database) as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM audit_log WHERE account_id = ? AND kind = 'sms_sent'", (account_id,)
        ).fetchone()
    return int(count)


async def _wait_event(event: asyncio.Event, *, what: str, timeout: float, alive: Callable[[], None]) -> None:
    """Wait for ``event``, failing at once if ``alive`` says a process died."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not event.is_set():
        alive()
        if loop.time() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        try:
            await asyncio.wait_for(event.wait(), timeout=0.5)
        except TimeoutError:
            continue


async def _pollers(client: Client, task_queue: str) -> list[str]:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return [poller.identity for poller in response.pollers]


def _key(handle: Handle, touchpoint: int = 1) -> str:
    return f"{handle.id}/{handle.result_run_id}/tp-{touchpoint}"


def _alive(workers: Any, *processes: subprocess.Popen[bytes]) -> Callable[[], None]:
    return lambda: workers.check_alive(*processes)


async def test_worker_killed_after_the_gateway_accepted_the_sms_sends_it_once(tmp_path: Path) -> None:
    async with faulty_gateway() as gateway:
        with dev_server(tmp_path / "temporal.db") as server:
            settings = fault_settings(
                tmp_path, temporal_address=server.address, sms_webhook_url=f"{gateway.url}/sms"
            )
            client = await server.wait_ready(settings)
            env = settings_environment(settings, http_timeout_seconds=WORKER_HTTP_TIMEOUT)
            with worker_processes(env, tmp_path) as workers:
                first = workers.start()
                gateway.hold_first_accepted()
                account = _account(zone_at_local_hour(datetime.now(UTC), 13), 1)
                handle = await start_account(client, account, task_queue=settings.task_queue)

                # The sandbox stored the message; its answer never reaches the worker.
                await _wait_event(
                    gateway.accepted,
                    what="the sandbox to accept the SMS",
                    timeout=90,
                    alive=_alive(workers, first),
                )
                assert len(gateway.messages_to(account.phone)) == 1
                assert workers.kill(first) == -signal.SIGKILL
                second = workers.start()

                status = await poll_until(
                    lambda: _status(handle),
                    lambda s: s.sms_sent == 1,
                    what="the retried send to complete on the new worker",
                    timeout=RETRY_DEADLINE,
                    alive=_alive(workers, second),
                )
                await _assert_sent_once(gateway, settings, handle, account, status)

                # Retried on the new worker after the start-to-close timeout, same key both times.
                key = _key(handle)
                attempts = gateway.attempts_for(key)
                assert len(attempts) == 2, attempts
                assert {a.header_key for a in attempts} == {key}
                assert _outbox(_database(settings), key) == ("sent", 2)
                started = [
                    event.activity_task_started_event_attributes
                    async for event in handle.fetch_history_events()
                    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                ]
                assert len(started) == 1
                assert started[0].attempt == 2
                assert (
                    started[0].last_failure.timeout_failure_info.timeout_type
                    == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
                )


async def _assert_sent_once(
    gateway: FaultyGateway, settings: Settings, handle: Handle, account: AccountInput, status: AccountStatus
) -> None:
    """One message in the customer's inbox, one ``sms_sent`` in the timeline and the audit log."""
    inbox = gateway.messages_to(account.phone)
    assert [(m.idempotency_key, m.template) for m in inbox] == [(_key(handle), TemplateName.DUE_TODAY)]
    assert status.sms_sent == 1
    entries = await _timeline(handle)
    assert len(_sent_entries(entries)) == 1, entries
    assert TimelineKind.SMS_FAILED not in [e.kind for e in entries]
    assert _audited_sends(_database(settings), account.account_id) == 1


def _database(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///"))


ACCOUNTS = 20


async def test_one_of_two_workers_killed_mid_run_every_account_gets_one_sms(tmp_path: Path) -> None:
    async with faulty_gateway() as gateway:
        with dev_server(tmp_path / "temporal.db") as server:
            settings = fault_settings(
                tmp_path, temporal_address=server.address, sms_webhook_url=f"{gateway.url}/sms"
            )
            client = await server.wait_ready(settings)
            env = settings_environment(settings, http_timeout_seconds=WORKER_HTTP_TIMEOUT)
            with worker_processes(env, tmp_path) as workers:
                # Each worker's gateway URL names it, so the gateway knows whose sends it holds.
                processes = {
                    via: workers.start(COLLECTIONS_SMS_WEBHOOK_URL=f"{gateway.url}/sms?via={via}")
                    for via in ("A", "B")
                }
                everyone = _alive(workers, *processes.values())
                await poll_until(
                    lambda: _pollers(client, settings.task_queue),
                    lambda pollers: len(pollers) >= 2,
                    what="both workers to poll the task queue",
                    timeout=90,
                    alive=everyone,
                )

                gateway.close_gate()
                zone = zone_at_local_hour(datetime.now(UTC), 13)
                accounts = [_account(zone, n) for n in range(ACCOUNTS)]
                handles = await asyncio.gather(
                    *(start_account(client, a, task_queue=settings.task_queue) for a in accounts)
                )
                # Every first send is in flight, held at the gateway, split between the workers.
                held = await poll_until(
                    lambda: _held(gateway),
                    lambda counts: sum(counts.values()) == ACCOUNTS,
                    what="every account's first send to reach the gateway",
                    timeout=120,
                    alive=everyone,
                )
                victim = max(held, key=lambda via: held[via])
                survivor = next(via for via in processes if via != victim)
                assert workers.kill(processes[victim]) == -signal.SIGKILL
                gateway.open_gate()

                async def statuses() -> list[AccountStatus]:
                    return list(await asyncio.gather(*(_status(h) for h in handles)))

                await poll_until(
                    statuses,
                    lambda all_: all(s.sms_sent == 1 for s in all_),
                    what="every account's first SMS",
                    timeout=RETRY_DEADLINE,
                    alive=_alive(workers, processes[survivor]),
                )
                for account, handle in zip(accounts, handles, strict=True):
                    await _assert_sent_once(gateway, settings, handle, account, await _status(handle))
                    attempts = gateway.attempts_for(_key(handle))
                    # The killed worker's sends were retried by the survivor with the same key.
                    assert [a.via for a in attempts] in ([survivor], [victim, survivor]), attempts
                retried = [h for h in handles if len(gateway.attempts_for(_key(h))) == 2]
                assert len(retried) == held[victim] >= 1
                assert len(gateway.mailbox.messages) == ACCOUNTS


async def _held(gateway: FaultyGateway) -> dict[str, int]:
    return dict(gateway.held)
