"""The Temporal dev server stops and starts again on the same SQLite file while accounts are mid-cadence.

Some accounts already had their first SMS before the stop; others wait for the customer's stated
contact window (``contact_after`` about a minute ahead), so their timers fire only after the server
is back. Afterwards: the waiting ones are sent once and not before their planned moment (the
``status`` query's ``next_touchpoint_at`` taken before the stop, compared with the sandbox's receive
time), the others are not sent again, every workflow is the same run and answers queries, and
signals sent after the restart are processed. The worker process stays up throughout and reconnects.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from kindly.domain.contract import (
    AccountInput,
    AccountResult,
    AccountStatus,
    Outcome,
    QueryName,
    SignalName,
    TimelineEntry,
    TimelineKind,
)
from kindly.programs.temporal import start_account
from tests.fault_helpers import (
    FAULT_SEGMENT,
    DevServer,
    fault_settings,
    faulty_gateway,
    phone_number,
    poll_until,
    settings_environment,
    worker_processes,
    zone_at_local_hour,
)

LEAD = timedelta(seconds=75)
"""How far ahead the waiting accounts' window opens: room to stop and restart the server first."""
AMOUNT = Decimal("600.00")

Handle = WorkflowHandle[Any, AccountResult]


async def _status(handle: Handle) -> AccountStatus:
    status: AccountStatus = await handle.query(QueryName.STATUS, result_type=AccountStatus)
    return status


async def _timeline(handle: Handle) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = await handle.query(QueryName.TIMELINE, result_type=list[TimelineEntry])
    return entries


async def _wait_status(handle: Handle, check: Any, what: str, timeout: float, alive: Any) -> AccountStatus:
    return await poll_until(lambda: _status(handle), check, what=what, timeout=timeout, alive=alive)


def _account(zone: str, n: int, **extra: Any) -> AccountInput:
    return AccountInput.model_validate(
        {
            "account_id": f"RST-{uuid.uuid4().hex[:8]}-{n}",
            "customer_name": "Restart Test",
            "phone": phone_number(n),
            "timezone": zone,
            "locale": "zh-CN",
            "amount_due": AMOUNT,
            "currency": "CNY",
            "due_date": datetime.now(ZoneInfo(zone)).date(),
            "segment": FAULT_SEGMENT,
            **extra,
        }
    )


async def test_dev_server_restart_mid_cadence_loses_and_repeats_nothing(tmp_path: Path) -> None:
    async with faulty_gateway() as gateway:
        server = DevServer(tmp_path / "temporal.db")
        server.start()
        try:
            settings = fault_settings(
                tmp_path, temporal_address=server.address, sms_webhook_url=f"{gateway.url}/sms"
            )
            client = await server.wait_ready(settings)
            with worker_processes(settings_environment(settings), tmp_path) as workers:
                worker = workers.start()

                def alive() -> None:
                    workers.check_alive(worker)

                # A zone where it is early afternoon: the 09:00-20:00 window is open, far from its ends.
                now = datetime.now(UTC)
                zone = zone_at_local_hour(now, 13)
                opens = (now + LEAD).astimezone(ZoneInfo(zone)).replace(microsecond=0) + timedelta(seconds=1)
                sent_first = [_account(zone, n) for n in range(3)]
                waiting = [_account(zone, n, contact_after=opens.time().isoformat()) for n in range(3, 6)]
                handles = {
                    a.account_id: await start_account(client, a, task_queue=settings.task_queue)
                    for a in sent_first + waiting
                }
                run_ids = {account_id: h.result_run_id for account_id, h in handles.items()}

                for account in sent_first:
                    await _wait_status(
                        handles[account.account_id],
                        lambda s: s.sms_sent == 1,
                        f"{account.account_id}'s first SMS before the restart",
                        60,
                        alive,
                    )
                planned: dict[str, datetime] = {}
                for account in waiting:
                    status = await _wait_status(
                        handles[account.account_id],
                        lambda s: s.next_touchpoint_at is not None,
                        f"{account.account_id}'s plan",
                        60,
                        alive,
                    )
                    assert status.sms_sent == 0
                    assert status.next_touchpoint_at is not None
                    planned[account.account_id] = status.next_touchpoint_at
                    assert status.next_touchpoint_at == opens, "planned for the customer's stated window"
                    assert gateway.messages_to(account.phone) == []

                # --- the restart: same SQLite file, same port ------------------------------------
                stopped_at = datetime.now(UTC)
                assert server.stop() == 0
                alive()
                server.start()
                client = await server.wait_ready(settings)
                back_at = datetime.now(UTC)
                assert back_at < min(planned.values()), (
                    f"the server took until {back_at} to come back, after the planned moment "
                    f"{min(planned.values())}: raise LEAD"
                )
                handles = {
                    account_id: client.get_workflow_handle(h.id, result_type=AccountResult)
                    for account_id, h in handles.items()
                }

                # Every workflow is still there, the same run, and answers queries.
                for account_id, handle in handles.items():
                    description = await handle.describe()
                    assert description.status == WorkflowExecutionStatus.RUNNING
                    assert description.run_id == run_ids[account_id]
                    await _wait_status(handle, lambda _: True, "queries after the restart", 60, alive)

                # The waiting accounts' timers fire after the restart: sent once, not early.
                for account in waiting:
                    handle = handles[account.account_id]
                    await _wait_status(
                        handle,
                        lambda s: s.sms_sent == 1,
                        f"{account.account_id}'s SMS after the restart",
                        LEAD.total_seconds() + 120,
                        alive,
                    )
                    inbox = gateway.messages_to(account.phone)
                    assert len(inbox) == 1, inbox
                    assert inbox[0].at >= planned[account.account_id] > back_at
                    sent = [e for e in await _timeline(handle) if e.kind is TimelineKind.SMS_SENT]
                    assert len(sent) == 1
                    assert datetime.fromisoformat(sent[0].at) >= planned[account.account_id]

                # The accounts texted before the stop are not texted again.
                for account in sent_first:
                    inbox = gateway.messages_to(account.phone)
                    assert len(inbox) == 1 and inbox[0].at < stopped_at, inbox
                    assert (await _status(handles[account.account_id])).sms_sent == 1
                for handle in handles.values():
                    key = f"{handle.id}/{run_ids[_account_id(handle)]}/tp-1"
                    assert len(gateway.attempts_for(key)) == 1, "no send was retried or repeated"
                    entries = await _timeline(handle)
                    assert [e.kind for e in entries].count(TimelineKind.STARTED) == 1
                    assert [e.kind for e in entries].count(TimelineKind.SMS_SENT) == 1
                assert len(gateway.mailbox.messages) == len(handles)

                # Signals after the restart are processed: a part payment, and one paid in full.
                part = handles[sent_first[0].account_id]
                await part.signal(SignalName.REPAYMENT, {"amount": "100.00", "reference": "AFTER-1"})
                await poll_until(
                    lambda: _status(part),
                    lambda s: s.amount_due == AMOUNT - 100,
                    what="the part payment after the restart",
                    timeout=60,
                    alive=alive,
                )
                full = handles[waiting[0].account_id]
                await full.signal(SignalName.REPAYMENT, {"amount": str(AMOUNT), "reference": "AFTER-2"})
                result = await asyncio.wait_for(full.result(), timeout=60)
                assert result == AccountResult(outcome=Outcome.REPAID, amount_collected=AMOUNT)
                alive()
        finally:
            server.stop()


def _account_id(handle: Handle) -> str:
    return handle.id.removeprefix("overdue-")
