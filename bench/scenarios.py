"""The bench's measurements, one function each; every one returns a JSON-ready dict."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from bench.baseline import (
    ACTIVITY_NAME,
    BASELINE_VARIANTS,
    KEY_PREFIX,
    SAME_WORK,
    BaselineInput,
    BaselineProgress,
    BaselineWorkflow,
    build_baseline_worker,
    build_sms_queue_worker,
    kindly_attributes,
)
from bench.common import (
    HERD_SEGMENT,
    KindlySetup,
    Server,
    afternoon_zone,
    dev_server,
    gather_limited,
    has_send_spread,
    local_today,
    make_account,
    time_skipping_server,
    wait_for_pollers,
    worker_env,
)
from bench.gateway import GatewayProcess
from bench.histories import Cost, cost_of, cut_after_touchpoint, describe_events
from bench.procs import ManagedProcess, cpu_seconds
from kindly.domain.contract import WORKFLOW_TYPE, AccountStatus, QueryName, workflow_id_for
from kindly.programs.portfolio import import_portfolio
from kindly.programs.rate_limit import sms_task_queue_rate
from kindly.programs.temporal import ensure_search_attributes
from kindly.programs.worker import build_worker

KINDLY_SMS_ACTIVITY = "send_sms"
MIB = 1024.0
UNLIMITED_SMS_RATE = 100_000.0
"""The SMS task-queue rate limit in the throughput runs: far above anything reached, so the engine is
measured and not the limiter (which the herd measures)."""


@dataclass(frozen=True)
class Options:
    accounts: int
    touchpoints: int
    open_accounts: int
    herd: int
    herd_rate: float
    cache: int
    kindly_cache: int
    start_concurrency: int
    import_concurrency: int
    cost_accounts: int
    history_sample: int
    rounds: int
    workdir: Path
    policy_file: Path


@dataclass
class MemorySampler:
    """Samples a process's VmRSS every ``interval`` seconds in the background."""

    process: ManagedProcess
    interval: float = 0.5
    samples: list[tuple[float, int]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(OSError, KeyError):
                self.samples.append((time.time(), self.process.memory().rss_kib))
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def peak_mib(self) -> float:
        return round(max((rss for _, rss in self.samples), default=0) / MIB, 1)


async def wait_for_messages(
    gateway: GatewayProcess, key: str, expected: int, process: ManagedProcess, *, timeout: float
) -> int:
    deadline = time.monotonic() + timeout
    while True:
        process.check_alive()
        seen = await gateway.count(key)
        if seen >= expected or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.25)


async def history_cost(
    client: Client, workflow_ids: Sequence[str], touchpoints: int, activity: str, *, timeout: float = 60.0
) -> Cost:
    """The summed cost of the workflows' first ``touchpoints``, each waited for until it is asleep
    again after them."""
    total = Cost()
    deadline = time.monotonic() + timeout
    for workflow_id in workflow_ids:
        while True:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
            cut = cut_after_touchpoint(history.events, touchpoints, [activity])
            if cut is not None:
                total.add(cost_of(cut, touchpoints))
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{workflow_id} did not finish touchpoint {touchpoints}")
            await asyncio.sleep(0.2)
    return total


# --- 1 and 2: touchpoint throughput on the dev server --------------------------------------------


async def throughput(system: str, opts: Options, gateway: GatewayProcess) -> dict[str, Any]:
    """``opts.accounts`` accounts started while the worker runs, each with its first SMS due at the same
    instant a little ahead (a morning's timers): each run has prepared itself and gone to sleep before
    it, as accounts imported days before have. Touchpoints per second = accounts / (last message at the
    gateway - that instant); CPU is counted over the same span."""
    tag = uuid.uuid4().hex[:6]
    n = opts.accounts
    async with dev_server(opts.workdir) as server:
        now = datetime.now(UTC)
        zone = afternoon_zone(now)
        today = local_today(zone, now)
        due_at = (now + timedelta(seconds=PREPARATION_SECONDS + n / PREPARED_PER_SECOND)).replace(
            microsecond=0
        )
        if system == "kindly":
            setup = KindlySetup(
                server.address,
                f"bench-tp-{tag}",
                opts.workdir,
                gateway.sms_url,
                opts.policy_file,
                max_cached_workflows=opts.kindly_cache,
                sms_rate_limit_per_second=UNLIMITED_SMS_RATE,
            )
            client = await setup.client()
            task_queue = setup.task_queue
            # No spread (HERD_SEGMENT), and the customer's own window opens at ``due_at``.
            local = due_at.astimezone(ZoneInfo(zone)).time()
            accounts = [
                make_account(f"TPK{tag}-{i:06d}", i, zone, today, segment=HERD_SEGMENT, contact_after=local)
                for i in range(n)
            ]
            workflow_ids = [workflow_id_for(account.account_id) for account in accounts]
            key = f"overdue-TPK{tag}-"
            process = setup.worker(f"kindly-throughput-{tag}")
            activity = KINDLY_SMS_ACTIVITY

            async def start_all() -> None:
                await setup.start_accounts(client, accounts, opts.start_concurrency)

        else:
            variant = BASELINE_VARIANTS[system]
            client = await Client.connect(server.address)
            if variant.upsert:
                await ensure_search_attributes(client, client.namespace)
            task_queue = f"bench-base-{tag}"
            sms_queue = f"{task_queue}-sms" if variant.sms_queue else None
            workflow_ids = [f"baseline-TPB{tag}-{i:06d}" for i in range(n)]
            key = f"{KEY_PREFIX}TPB{tag}-"
            process = baseline_worker_process(
                f"{system}-throughput-{tag}", server, task_queue, gateway, opts, sms_task_queue=sms_queue
            )
            activity = ACTIVITY_NAME

            async def start_all() -> None:
                await gather_limited(
                    [
                        partial(
                            client.start_workflow,
                            BaselineWorkflow.run,
                            BaselineInput(
                                account_id=f"TPB{tag}-{i:06d}",
                                phone=f"+86{13_000_000_000 + i}",
                                touchpoints=1,
                                interval_seconds=86_400,
                                sms_task_queue=sms_queue,
                                upsert=variant.upsert,
                                first_at=due_at,
                            ),
                            id=workflow_id,
                            task_queue=task_queue,
                        )
                        for i, workflow_id in enumerate(workflow_ids)
                    ],
                    opts.start_concurrency,
                )

        process.start()
        sampler = MemorySampler(process)
        sampler.start()
        # CPU (utime + stime from /proc/<pid>/stat) of each process over the drain, per touchpoint;
        # "temporal_server" is the dev server's.
        watched = {"worker": process.pid, "gateway": gateway.process.pid} | (
            {"temporal_server": server.pid} if server.pid is not None else {}
        )
        try:
            await wait_for_pollers(client, task_queue, process)
            await start_all()
            # Every run has started, prepared itself and gone to sleep, and the server has written
            # what that took, before the drain's clock and CPU counters start.
            await _until_quiet(process.pid)
            if server.pid is not None:
                await _until_quiet(server.pid)
            if (await gateway.times(key)) or datetime.now(UTC) >= due_at:
                raise RuntimeError(
                    f"the {n} accounts were not all asleep before their first SMS was due; "
                    "raise PREPARATION_SECONDS or lower PREPARED_PER_SECOND"
                )
            cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items()}
            wait = max(180.0, n / 5) + (due_at - datetime.now(UTC)).total_seconds()
            seen = await wait_for_messages(gateway, key, n, process, timeout=wait)
            times = await gateway.times(key)
            await _until_quiet(process.pid)
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in watched.items()}
            sample = workflow_ids[:: max(1, n // opts.history_sample)][: opts.history_sample]
            cost = await history_cost(client, sample, 1, activity)
        finally:
            await sampler.stop()
            process.stop()
    elapsed = (times[-1] - due_at.timestamp()) if times else float("nan")
    return {
        "system": system,
        "accounts": n,
        "touchpoints_seen": seen,
        "complete": seen >= n,
        "seconds_due_to_last_sms": round(elapsed, 3),
        "touchpoints_per_second": round(seen / elapsed, 2) if times else 0.0,
        "first_to_last_sms_per_second": (
            round((len(times) - 1) / (times[-1] - times[0]), 2) if len(times) > 1 else 0.0
        ),
        "worker_peak_rss_mib": sampler.peak_mib(),
        "cpu_ms_per_touchpoint": {name: round(1000 * used / max(seen, 1), 2) for name, used in cpu.items()},
        "first_touchpoint_cost_dev_server": cost.per_touchpoint(),
    }


PREPARATION_SECONDS = 30
PREPARED_PER_SECOND = 25
"""The first SMS of the throughput accounts is due ``PREPARATION_SECONDS + accounts / PREPARED_PER_SECOND``
after the server starts: time for every run to start, prepare itself and sleep first (measured here:
1,000 accounts in about 20 s on two cores)."""


async def _until_quiet(pid: int, *, timeout: float = 60.0) -> None:
    """Until the process stops using CPU (under 20 ms in half a second): its backlog is done."""
    deadline = time.monotonic() + timeout
    used = cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = cpu_seconds(pid)
        if now - used < 0.02:
            return
        used = now


def baseline_worker_process(
    name: str,
    server: Server,
    task_queue: str,
    gateway: GatewayProcess,
    opts: Options,
    *,
    sms_task_queue: str | None = None,
) -> ManagedProcess:
    queue_args = (
        ["--sms-task-queue", sms_task_queue, "--sms-rate", str(UNLIMITED_SMS_RATE)] if sms_task_queue else []
    )
    return ManagedProcess(
        name,
        [
            sys.executable,
            "-m",
            "bench.baseline",
            "--address",
            server.address,
            "--task-queue",
            task_queue,
            "--sms-url",
            gateway.sms_url,
            "--max-cached-workflows",
            str(opts.kindly_cache),
            *queue_args,
        ],
        log_dir=opts.workdir,
        env=worker_env(dict(os.environ), opts.workdir),
    )


# --- 2b: actions, events and bytes per touchpoint over a lifecycle (time-skipping server) --------

Progress = Callable[[], Awaitable[list[tuple[int, datetime | None]]]]
LIFECYCLE_BASELINES = ("baseline", SAME_WORK)
"""The bare variants taken through the lifecycle beside Kindly: plain, and the one doing the same work."""


async def _until_settled(
    env: WorkflowEnvironment, progress: Progress, touchpoints: int, timeout: float = 120.0
) -> list[tuple[int, datetime | None]]:
    """Until every workflow has sent ``touchpoints`` SMS or sleeps until a future touchpoint."""
    deadline = time.monotonic() + timeout
    while True:
        snapshot = await progress()
        now = await env.get_current_time()
        if all(sent >= touchpoints or (at is not None and at > now) for sent, at in snapshot):
            return snapshot
        if time.monotonic() > deadline:
            raise TimeoutError(f"workflows still busy: {snapshot}")
        await asyncio.sleep(0.05)


async def _drive(env: WorkflowEnvironment, progress: Progress, touchpoints: int) -> None:
    """Skip time to the earliest pending touchpoint of all the workflows, again and again, until every
    workflow sent ``touchpoints`` SMS. A skip may bring a single workflow's touchpoint (each account's
    spread offset gives it a moment of its own), so up to accounts x touchpoints skips are needed; twice
    that (and a few) are allowed, for touchpoints that move (out of the contact window)."""
    skips = 0
    while True:
        snapshot = await _until_settled(env, progress, touchpoints)
        pending = [at for sent, at in snapshot if sent < touchpoints and at is not None]
        if not pending:
            return
        if skips >= 2 * touchpoints * len(snapshot) + 10:
            raise RuntimeError(f"{touchpoints} touchpoints not reached after {skips} skips: {snapshot}")
        now = await env.get_current_time()
        await env.sleep(max(min(pending) - now, timedelta(0)) + timedelta(seconds=1))
        skips += 1


def _lifecycle_costs(histories: Sequence[Sequence[Any]], touchpoints: int, activity: str) -> dict[str, Any]:
    first, full = Cost(), Cost()
    for events in histories:
        one = cut_after_touchpoint(events, 1, [activity])
        all_ = cut_after_touchpoint(events, touchpoints, [activity])
        if one is None or all_ is None:
            continue
        first.add(cost_of(one, 1))
        full.add(cost_of(all_, touchpoints))
    later = full.minus(first) if touchpoints > 1 else None
    example = cut_after_touchpoint(histories[0], touchpoints, [activity]) if histories else None
    return {
        "lifecycle": full.per_touchpoint(),
        "first_touchpoint": first.per_touchpoint(),
        "each_later_touchpoint": later.per_touchpoint() if later is not None else None,
        "example_history": describe_events(example or []),
    }


async def lifecycle_costs(opts: Options, gateway: GatewayProcess) -> dict[str, Any]:
    """``opts.cost_accounts`` accounts of Kindly and of each of ``LIFECYCLE_BASELINES`` through
    ``opts.touchpoints`` SMS touchpoints on the time-skipping test server, which skips the days between
    touchpoints; only history counts and sizes are taken from it, never a time."""
    async with time_skipping_server() as server:
        env, client = server.env, server.env.client
        await ensure_search_attributes(client, client.namespace)
        now = await env.get_current_time()
        zone = afternoon_zone(now)
        today = local_today(zone, now)
        tag = uuid.uuid4().hex[:6]
        k = opts.cost_accounts

        setup = KindlySetup(
            server.address,
            f"bench-life-{tag}",
            opts.workdir,
            gateway.sms_url,
            opts.policy_file,
            max_cached_workflows=opts.kindly_cache,
            sms_rate_limit_per_second=UNLIMITED_SMS_RATE,
        )
        async with build_worker(client, setup.settings()) as workers, workers:
            kindly = await setup.start_accounts(
                client, [make_account(f"LCK{tag}-{i:03d}", i, zone, today) for i in range(k)], 1
            )

            async def kindly_progress() -> list[tuple[int, datetime | None]]:
                statuses = [await h.query(QueryName.STATUS, result_type=AccountStatus) for h in kindly]
                return [(status.sms_sent, status.next_touchpoint_at) for status in statuses]

            await _drive(env, kindly_progress, opts.touchpoints)
            kindly_histories = [list((await h.fetch_history()).events) for h in kindly]
            for handle in kindly:
                with contextlib.suppress(RPCError):
                    await handle.terminate("bench done")
        bare = {
            system: await _baseline_lifecycle(server, system, f"LCB{number}{tag}", gateway, opts)
            for number, system in enumerate(LIFECYCLE_BASELINES)
        }
    return {
        "server": "time-skipping test server (counts only)",
        "accounts": k,
        "touchpoints": opts.touchpoints,
        **{
            system: _lifecycle_costs(histories, opts.touchpoints, ACTIVITY_NAME)
            for system, histories in bare.items()
        },
        "kindly": _lifecycle_costs(kindly_histories, opts.touchpoints, KINDLY_SMS_ACTIVITY),
    }


async def _baseline_lifecycle(
    server: Server, system: str, prefix: str, gateway: GatewayProcess, opts: Options
) -> list[list[HistoryEvent]]:
    """The histories of ``opts.cost_accounts`` workflows of one bare variant through
    ``opts.touchpoints`` touchpoints, a day apart."""
    variant = BASELINE_VARIANTS[system]
    client = server.env.client
    task_queue = f"bench-life-{prefix}"
    sms_queue = f"{task_queue}-sms" if variant.sms_queue else None
    async with httpx.AsyncClient(timeout=10) as http, contextlib.AsyncExitStack() as workers:
        await workers.enter_async_context(
            build_baseline_worker(
                client, task_queue, http, gateway.sms_url, max_cached_workflows=opts.kindly_cache
            )
        )
        if sms_queue is not None:
            await workers.enter_async_context(
                build_sms_queue_worker(client, sms_queue, http, gateway.sms_url, rate=UNLIMITED_SMS_RATE)
            )
        handles: list[WorkflowHandle[Any, Any]] = [
            await client.start_workflow(
                BaselineWorkflow.run,
                BaselineInput(
                    account_id=f"{prefix}-{i:03d}",
                    phone=f"+86{13_000_000_000 + i}",
                    touchpoints=opts.touchpoints,
                    interval_seconds=86_400,
                    sms_task_queue=sms_queue,
                    upsert=variant.upsert,
                ),
                id=f"{KEY_PREFIX}{prefix}-{i:03d}",
                task_queue=task_queue,
            )
            for i in range(opts.cost_accounts)
        ]

        async def progress() -> list[tuple[int, datetime | None]]:
            states = [await h.query("progress", result_type=BaselineProgress) for h in handles]
            return [(state.sent, state.next_at) for state in states]

        await _drive(server.env, progress, opts.touchpoints)
        histories = [list((await h.fetch_history()).events) for h in handles]
        # Ended while their worker runs: an open workflow whose timer fires with no worker would hold
        # the test server's clock for the next system.
        for handle in handles:
            with contextlib.suppress(RPCError):
                await handle.terminate("bench done")
        return histories


# --- 3: bulk import start rate -------------------------------------------------------------------


async def import_rate(system: str, opts: Options, gateway: GatewayProcess) -> dict[str, Any]:
    """Start ``opts.accounts`` accounts with no worker running: Kindly's import path
    (``kindly.programs.portfolio.import_portfolio``) or bare ``client.start_workflow`` calls of the same
    workflow type and input, at the same concurrency; ``bare_with_attributes`` gives each bare start
    Kindly's search attributes (``bench.baseline.kindly_attributes``, built before the clock starts), the
    work a start needs to keep an imported account findable, and Kindly's import is checked against it."""
    tag = uuid.uuid4().hex[:6]
    n = opts.accounts
    async with dev_server(opts.workdir) as server:
        setup = KindlySetup(
            server.address,
            f"bench-import-{tag}",
            opts.workdir,
            gateway.sms_url,
            opts.policy_file,
            max_cached_workflows=opts.kindly_cache,
            sms_rate_limit_per_second=UNLIMITED_SMS_RATE,
        )
        client = await setup.client()
        now = datetime.now(UTC)
        zone = afternoon_zone(now)
        due = local_today(zone, now) + timedelta(days=30)
        accounts = [make_account(f"IMP{tag}-{i:06d}", i, zone, due) for i in range(n)]
        attributes: TypedSearchAttributes | None = None
        if system == "bare_with_attributes":
            due_at = datetime(due.year, due.month, due.day, tzinfo=ZoneInfo(zone))
            attributes = TypedSearchAttributes(kindly_attributes("pre_due", due_at, 0, None))
        if server.pid is not None:
            await _until_quiet(server.pid)  # done registering the attributes before the clock starts
        started_at = time.perf_counter()
        if system == "kindly":
            report = await import_portfolio(
                client, accounts, task_queue=setup.task_queue, concurrency=opts.import_concurrency
            )
            started, failed = report.started, len(report.failed)
        else:
            await gather_limited(
                [
                    partial(
                        client.start_workflow,
                        WORKFLOW_TYPE,
                        args=[account.model_dump(mode="json")],
                        id=workflow_id_for(account.account_id),
                        task_queue=setup.task_queue,
                        search_attributes=attributes,
                    )
                    for account in accounts
                ],
                opts.import_concurrency,
            )
            started, failed = n, 0
        elapsed = time.perf_counter() - started_at
    return {
        "system": system,
        "accounts": n,
        "started": started,
        "failed": failed,
        "concurrency": opts.import_concurrency,
        "seconds": round(elapsed, 3),
        "starts_per_second": round(started / elapsed, 2),
    }


# --- 4: worker memory with many open accounts ----------------------------------------------------


async def _count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def memory(opts: Options, gateway: GatewayProcess) -> dict[str, Any]:
    """``python worker.py`` with a small sticky cache; accounts due in 30 days (they plan, publish
    their search attributes and sleep) are imported in steps (``import_portfolio``, as ``kindly
    import`` does); after each step has been processed, the worker's VmRSS/VmHWM. A step is processed
    when all its accounts are visible in stage ``pre_due`` with a next touchpoint (which only a run
    publishes, once it has planned) and the worker has gone quiet."""
    tag = uuid.uuid4().hex[:6]
    async with dev_server(opts.workdir) as server:
        setup = KindlySetup(
            server.address,
            f"bench-mem-{tag}",
            opts.workdir,
            gateway.sms_url,
            opts.policy_file,
            max_cached_workflows=opts.cache,
            sms_rate_limit_per_second=UNLIMITED_SMS_RATE,
        )
        client = await setup.client()
        now = datetime.now(UTC)
        zone = afternoon_zone(now)
        due = local_today(zone, now) + timedelta(days=30)
        accounts = [make_account(f"MEM{tag}-{i:06d}", i, zone, due) for i in range(opts.open_accounts)]
        checkpoints = sorted({max(1, opts.open_accounts * share // 4) for share in (1, 2, 4)})
        process = setup.worker(f"kindly-memory-{tag}")
        process.start()
        sampler = MemorySampler(process)
        sampler.start()
        points: list[dict[str, Any]] = []
        query = (
            f"TaskQueue = '{setup.task_queue}' AND CollectionStage = 'pre_due' "
            "AND NextTouchpointAt IS NOT NULL"
        )
        try:
            await wait_for_pollers(client, setup.task_queue, process)
            idle = process.memory()
            points.append(
                {
                    "open_accounts": 0,
                    "rss_mib": round(idle.rss_kib / MIB, 1),
                    "hwm_mib": round(idle.hwm_kib / MIB, 1),
                }
            )
            done = 0
            for checkpoint in checkpoints:
                started_at = time.perf_counter()
                await import_portfolio(
                    client,
                    accounts[done:checkpoint],
                    task_queue=setup.task_queue,
                    concurrency=opts.import_concurrency,
                )
                done = checkpoint
                deadline = time.monotonic() + max(300.0, checkpoint / 5)
                while (open_now := await _count(client, query)) < checkpoint:
                    process.check_alive()
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"only {open_now} of {checkpoint} accounts processed")
                    await asyncio.sleep(0.5)
                await _until_quiet(process.pid, timeout=max(deadline - time.monotonic(), 10.0))
                seconds = time.perf_counter() - started_at
                now_memory = process.memory()
                points.append(
                    {
                        "open_accounts": checkpoint,
                        "rss_mib": round(now_memory.rss_kib / MIB, 1),
                        "hwm_mib": round(now_memory.hwm_kib / MIB, 1),
                        "step_accounts_per_second": round(
                            (checkpoint - (points[-1]["open_accounts"])) / seconds, 1
                        ),
                    }
                )
        finally:
            await sampler.stop()
            process.stop()
    start = sampler.samples[0][0] if sampler.samples else 0.0
    return {
        "max_cached_workflows": opts.cache,
        "open_accounts": opts.open_accounts,
        "points": points,
        "timeline": [(round(at - start, 1), round(rss / MIB, 1)) for at, rss in sampler.samples],
    }


# --- 5: the window-open herd ---------------------------------------------------------------------


def _peaks(times: Sequence[float]) -> tuple[int, int, dict[int, int]]:
    """Peak per calendar second, peak in any sliding 1-second interval, and the per-second counts."""
    buckets = Counter(int(at) for at in times)
    sliding, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        sliding = max(sliding, last - first + 1)
    return max(buckets.values(), default=0), sliding, dict(sorted(buckets.items()))


async def _planned(handles: Sequence[WorkflowHandle[Any, Any]], timeout: float = 120.0) -> list[datetime]:
    deadline = time.monotonic() + timeout

    async def one(handle: WorkflowHandle[Any, Any]) -> datetime:
        while True:
            try:
                status: AccountStatus = await handle.query(QueryName.STATUS, result_type=AccountStatus)
                if status.next_touchpoint_at is not None:
                    return status.next_touchpoint_at
            except (RPCError, WorkflowQueryFailedError):
                pass  # not started yet: the query comes before the workflow's first task
            if time.monotonic() > deadline:
                raise TimeoutError(f"{handle.id} planned nothing")
            await asyncio.sleep(0.2)

    return await gather_limited([partial(one, handle) for handle in handles], 16)


async def _sms_started_times(client: Client, workflow_ids: Sequence[str]) -> dict[str, float]:
    """When each workflow's first SMS activity started (was dispatched to a worker), by workflow id."""

    async def one(workflow_id: str) -> float | None:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        sms: set[int] = set()
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                if event.activity_task_scheduled_event_attributes.activity_type.name == KINDLY_SMS_ACTIVITY:
                    sms.add(event.event_id)
            elif (
                event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                and event.activity_task_started_event_attributes.scheduled_event_id in sms
            ):
                return event.event_time.ToDatetime(tzinfo=UTC).timestamp()
        return None

    found = await gather_limited([partial(one, workflow_id) for workflow_id in workflow_ids], 16)
    return {workflow_id: at for workflow_id, at in zip(workflow_ids, found, strict=True) if at is not None}


async def _delivery_delays(gateway: GatewayProcess, dispatched: dict[str, float]) -> dict[str, float | None]:
    """Seconds from Temporal's dispatch of each send (activity started) to the gateway's receipt of it
    (the idempotency key starts with the workflow id): the delay whose variation between sends close
    in time is the margin of ``kindly.programs.rate_limit`` (``DELIVERY_JITTER_SECONDS``)."""

    async def one(workflow_id: str) -> tuple[float, float] | None:
        received = await gateway.times(f"{workflow_id}/")
        at = dispatched[workflow_id]
        return (at, received[0] - at) if received else None

    found = await gather_limited([partial(one, workflow_id) for workflow_id in dispatched], 16)
    pairs = sorted(pair for pair in found if pair is not None)
    delays = sorted(delay for _, delay in pairs)
    if not delays:
        return {"min": None, "median": None, "p99": None, "max": None, "max_catch_up_within_2s": None}
    # How much sooner a send reached the gateway, relative to its dispatch, than one dispatched up to
    # 2 s before it: what squeezes more sends into a second at the gateway than Temporal dispatched.
    catch_up = 0.0
    for i, (at, delay) in enumerate(pairs):
        for later_at, later_delay in pairs[i + 1 :]:
            if later_at - at >= 2.0:
                break
            catch_up = max(catch_up, delay - later_delay)
    return {
        "min": round(delays[0], 3),
        "median": round(delays[len(delays) // 2], 3),
        "p99": round(delays[min(len(delays) - 1, int(len(delays) * 0.99))], 3),
        "max": round(delays[-1], 3),
        "max_catch_up_within_2s": round(catch_up, 3),
    }


async def herd(opts: Options, gateway: GatewayProcess) -> dict[str, Any]:
    """``opts.herd`` accounts whose contact window opens at the same instant (their stated
    ``contact_after``, a little ahead), segment without spreading, SMS rate limit ``opts.herd_rate``
    (the gateway's accepted rate; the worker gives the SMS task queue ``sms_task_queue_rate`` of it):
    time to drain and the gateway's peak messages per second. Then the same herd with the standard
    spread: when each account plans to send (not waited for: it spreads over hours)."""
    tag = uuid.uuid4().hex[:6]
    n = opts.herd
    task_queue_rate = sms_task_queue_rate(opts.herd_rate)
    async with dev_server(opts.workdir) as server:
        setup = KindlySetup(
            server.address,
            f"bench-herd-{tag}",
            opts.workdir,
            gateway.sms_url,
            opts.policy_file,
            max_cached_workflows=opts.kindly_cache,
            sms_rate_limit_per_second=opts.herd_rate,
        )
        client = await setup.client()
        process = setup.worker(f"kindly-herd-{tag}")
        process.start()
        try:
            await wait_for_pollers(client, setup.task_queue, process)
            now = datetime.now(UTC)
            zone = afternoon_zone(now)
            lead = timedelta(seconds=max(20.0, n / 25))
            opens = (now + lead).astimezone(ZoneInfo(zone)).replace(microsecond=0) + timedelta(seconds=1)
            accounts = [
                make_account(
                    f"HRD{tag}-{i:06d}",
                    i,
                    zone,
                    opens.date(),
                    segment=HERD_SEGMENT,
                    contact_after=opens.time(),
                )
                for i in range(n)
            ]
            await setup.start_accounts(client, accounts, opts.start_concurrency)
            all_started = time.time()
            key = f"overdue-HRD{tag}-"
            seen = await wait_for_messages(
                gateway, key, n, process, timeout=lead.total_seconds() + 3 * n / task_queue_rate + 120
            )
            times = await gateway.times(key)
            peak, sliding, per_second = _peaks(times)
            started = await _sms_started_times(client, [workflow_id_for(a.account_id) for a in accounts])
            dispatched = sorted(started.values())
            dispatch_peak, dispatch_sliding, dispatch_per_second = _peaks(dispatched)
            delays = await _delivery_delays(gateway, started)
            opened = opens.timestamp()
            result: dict[str, Any] = {
                "accounts": n,
                "sms_rate_limit_per_second": opts.herd_rate,
                "send_spread_minutes": 0 if has_send_spread() else None,
                "spread_setting_present": has_send_spread(),
                "messages_seen": seen,
                "all_started_before_window_opened": all_started < opened,
                "seconds_window_open_to_first_sms": round(times[0] - opened, 3) if times else None,
                "seconds_to_drain": round(times[-1] - opened, 3) if times else None,
                "ideal_seconds_to_drain_at_limit": round(n / opts.herd_rate, 1),
                # What the worker asks Temporal for (kindly.programs.rate_limit): the gateway's rate less the
                # limiter's one-second burst per partition and the delivery-jitter margin.
                "sms_task_queue_rate_per_second": round(task_queue_rate, 3),
                "ideal_seconds_to_drain_at_task_queue_rate": round(n / task_queue_rate, 1),
                "peak_per_calendar_second": peak,
                "peak_in_any_1s_interval": sliding,
                "per_second": {str(int(at - int(opened))): count for at, count in per_second.items()},
                # When Temporal handed each send to the worker (ActivityTaskStarted): the rate limit
                # acts here; the gateway sees these moments plus the worker's time to send.
                "dispatch_peak_per_calendar_second": dispatch_peak,
                "dispatch_peak_in_any_1s_interval": dispatch_sliding,
                "dispatch_per_second": {
                    str(int(at - int(opened))): count for at, count in dispatch_per_second.items()
                },
                "seconds_dispatch_to_gateway": delays,
            }
            if has_send_spread():
                later = datetime.now(UTC) + lead
                opens2 = later.astimezone(ZoneInfo(zone)).replace(microsecond=0)
                spread_accounts = [
                    make_account(f"HRS{tag}-{i:06d}", n + i, zone, opens2.date(), contact_after=opens2.time())
                    for i in range(n)
                ]
                handles = await setup.start_accounts(client, spread_accounts, opts.start_concurrency)
                planned = sorted(at.timestamp() for at in await _planned(handles))
                per_minute = Counter(int((at - planned[0]) // 60) for at in planned)
                planned_peak, planned_sliding, _ = _peaks(planned)
                result["with_standard_spread"] = {
                    "accounts": n,
                    "window_opens": opens2.isoformat(),
                    "planned_first": datetime.fromtimestamp(planned[0], UTC).isoformat(),
                    "planned_last": datetime.fromtimestamp(planned[-1], UTC).isoformat(),
                    "planned_span_minutes": round((planned[-1] - planned[0]) / 60, 1),
                    "planned_peak_per_second": planned_peak,
                    "planned_peak_in_any_1s_interval": planned_sliding,
                    "planned_peak_per_minute": max(per_minute.values()),
                    "planned_mean_per_second": round(n / max(planned[-1] - planned[0], 1.0), 3),
                }
        finally:
            process.stop()
    return result
