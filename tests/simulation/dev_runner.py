"""Run a simulation script on a real Temporal dev server, in real time, with worker processes that are
SIGKILLed while a send is in flight and a server that is stopped and started again on its SQLite file.

The time-skipping server (``runner``) cannot skip time past a dead worker's open tasks, so these faults
need the real server and the real clock. The rest is ``runner``'s: accounts start through
``POST /accounts`` (Kindly's API, in this process), customers' replies and payment notices arrive through
the signed webhooks and operators' actions as signals, driven by the same ``_Run``; the phone team answers
the call tasks it accepts; the SMS gateway and hand-off endpoints are the same ``SimulatedWorld``, its
requests stamped with the real clock. The workers are ``python worker.py`` processes
(``tests.fault_helpers.WorkerProcesses``), configured through ``COLLECTIONS_*`` variables.

How a script becomes a real-time run, and why the checker stays sound:

- **Script time is compressed.** The script's ``days`` map linearly onto ``duration`` of real time: an
  action ``after`` the start is delivered ``after * duration / days`` into the run, and so are a webhook's
  late copies, the phone team's answers and the gateway's outages (each lasting at least ``MIN_OUTAGE``,
  so that sends retry through it). The checker only compares observed instants with one another (a
  reminder with the pause before it, a message with its window in the customer's zone), never with the
  script's offsets, so a compressed run is judged like any other: it covers the first minutes of each
  account's cadence with the account's whole history crowded into them. Dates in payloads (a promise's
  date, a pause's ``until``) are made from the real instant they are sent at, as in ``runner``.
- **First reminders are due now.** Each account is started with ``due_in_days`` clamped to at most 0
  (due today or overdue) and, instead of the script's zone, the fixed-offset zone (``Etc/GMT±n``) where
  it is 12:xx local time at the start (``LOCAL_HOUR``): inside both regimes' legal windows, the policies'
  09:00-20:00 and every customer window the scripts draw (the narrowest is 12:00-14:00), with over an
  hour to spare. The simulation's segments keep their rules (holiday calendars, blocked dates, caps,
  escalation) but send at their window's moment instead of spreading sends over its first hours
  (``send_spread_minutes: 0``, as the fault tests' policy): spread, a reminder could wait until 14:00.
  Zones with DST or half-hour offsets are the time-skipping runs' business.
- **Worker kills.** ``kills`` times (armed at the start, then every ``duration / kills``) the next SMS
  the gateway takes is held, unanswered, until the worker that sent it (each worker's gateway URL
  carries a ``via=`` tag) has been SIGKILLed (``SimulatedWorld.on_sms``): the customer has the message,
  the sender never heard so, and Temporal retries the send on another worker after its start-to-close
  timeout (60 s) under the same idempotency key, unless a signal made it unwanted meanwhile (then it is
  cancelled once that timeout has passed). A new worker starts at once. If no send is taken before the
  next kill is due (or the script's end), a worker is killed all the same (``Kill.mid_send`` false).
- **Server restart.** With ``restart_server`` the dev server is stopped (SIGTERM) at ``RESTART_AT`` of the
  run and started again on the same SQLite file and port; the workers and the API's client reconnect by
  themselves. Actions due meanwhile are delivered anyway and recorded with the answer they got (a 503, a
  refused signal), as their senders would see it.
- **The end.** When the script's time is up the run waits, at most ``SETTLE_TIMEOUT``, until no workflow
  has an activity or a workflow task pending and the world sees no new request, then reads each
  account's end as ``runner`` does, with its search attributes as the server has them (``describe()``).

Nothing here sleeps to synchronise: processes and the server are waited for by polling with deadlines;
the only sleeps are the paced real-time driving of the script and of its faults.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import workflow_id_for
from kindly.domain.policy.model import load_policies, policy_for
from kindly.domain.search_attributes import ALL_KEYS
from kindly.programs.dev_server import bundled_binary
from kindly.programs.temporal import ensure_search_attributes
from kindly.settings import Settings
from tests.conftest import ENCRYPTION_SETTINGS
from tests.fault_helpers import (
    DevServer,
    WorkerProcesses,
    poll_until,
    settings_environment,
    zone_at_local_hour,
)
from tests.simulation.gateway import SimulatedWorld
from tests.simulation.model import AccountEnd, AccountScript, Faults, Observations, Script, SmsAttempt
from tests.simulation.policies import SEGMENTS, simulation_policies
from tests.simulation.runner import Environment, _Run, realize_account
from tests.test_api import API_KEY, Api, api_settings, serving

LOCAL_HOUR = 12
"""Every account's local hour at the start: 12:00-12:59, inside every window a script can draw."""
MIN_OUTAGE = timedelta(seconds=5)
"""The shortest a compressed gateway outage lasts in real time (a few send retries' backoff)."""
RESTART_AT = 0.35
"""When the server restarts, as a share of the run's duration."""
WORKERS = 2
HTTP_TIMEOUT_SECONDS = 1.0
"""The workers' HTTP timeout: a gateway that hangs costs this much real time per attempt."""
WORKER_START_TIMEOUT = 90.0
"""Seconds for a new worker process to poll its task queue."""
SETTLE_TIMEOUT = timedelta(minutes=3)
"""How long the end waits for in-flight work: a killed worker's send is retried after its 60-second
start-to-close timeout and the retry's backoff."""
SETTLE_POLL_SECONDS = 0.5
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class Kill:
    """A worker SIGKILLed during the run."""

    at: datetime
    worker: str
    """The worker's tag (``w1``, ``w2``, ...; its gateway URL's ``via=``)."""
    pid: int
    mid_send: bool
    """Whether it died holding a send the gateway had taken but not yet answered."""
    key: str = ""
    """That send's idempotency key."""
    account_id: str = ""


@dataclass(frozen=True)
class Restart:
    stopped_at: datetime
    """When the server was asked to stop."""
    back_at: datetime
    """When it answered again."""


@dataclass
class DevServerObservations(Observations):
    """What the world saw, with the faults the dev-server run injected beyond the gateway's."""

    duration: timedelta = timedelta(0)
    """The real time the script's days were compressed into."""
    kills: list[Kill] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)
    settled: bool = True
    """Whether the in-flight work settled within ``SETTLE_TIMEOUT`` (the ends are read either way)."""


def delivered_after(observed: Observations, instant: datetime) -> list[SmsAttempt]:
    """The messages the gateway took (and the customer got) after ``instant``."""
    return [a for a in observed.sms if a.outcome == "delivered" and a.at > instant]


def fault_figures(observed: DevServerObservations) -> dict[str, Any]:
    """What the run's own faults did, for the console: kills (mid-send ones and how many of those sends
    were tried again), restarts (and how long the server was down), messages delivered after them."""
    mid_send = [kill for kill in observed.kills if kill.mid_send]
    retried = [k for k in mid_send if any(a.key == k.key and a.at > k.at for a in observed.sms)]
    back = max((restart.back_at for restart in observed.restarts), default=None)
    return {
        "real_duration_seconds": observed.duration.total_seconds(),
        "worker_kills": len(observed.kills),
        "worker_kills_mid_send": len(mid_send),
        "killed_sends_tried_again": len(retried),
        "server_restarts": len(observed.restarts),
        "server_down_seconds": [
            round((restart.back_at - restart.stopped_at).total_seconds(), 1) for restart in observed.restarts
        ],
        "sms_delivered_after_restart": None if back is None else len(delivered_after(observed, back)),
        "settled": observed.settled,
    }


def dev_policies(start: datetime) -> dict[str, dict[str, Any]]:
    """The policy file of a dev-server run: the simulation's segments, sending at once."""
    policies = simulation_policies(start.date())
    return {segment: {**policies[segment], "send_spread_minutes": 0} for segment in SEGMENTS}


def dev_script(script: Script, zone: str) -> Script:
    """``script`` with every account in ``zone`` and due today at the latest."""
    accounts = tuple(
        AccountScript(
            {**account.account, "timezone": zone, "due_in_days": min(int(account.account["due_in_days"]), 0)},
            account.actions,
        )
        for account in script.accounts
    )
    return replace(script, accounts=accounts)


def compressed_faults(faults: Faults, compression: float) -> Faults:
    """The gateway's faults with their outages in real time (``compression``: script seconds a second)."""
    outages = []
    for start, end in faults.outages:
        real_start = start / compression
        outages.append((real_start, max(end / compression, real_start + MIN_OUTAGE)))
    return replace(faults, outages=tuple(outages))


def search_attributes_json(description: WorkflowExecutionDescription) -> dict[str, Any]:
    """Kindly's search attributes from a workflow's ``describe()``, as JSON values."""
    wanted = {key.name for key in ALL_KEYS}
    values: dict[str, Any] = {}
    for pair in description.typed_search_attributes:
        if pair.key.name in wanted:
            value = pair.value
            values[pair.key.name] = value.isoformat() if isinstance(value, datetime) else value
    return values


class _RealTime:
    """A run's ``Environment`` on the real clock: sleeping for a stretch of script time sleeps its share
    of the real duration."""

    def __init__(self, client: Client, compression: float) -> None:
        self._client = client
        self.compression = compression

    @property
    def client(self) -> Client:
        return self._client

    async def get_current_time(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, duration: timedelta) -> None:
        await asyncio.sleep(max(0.0, duration.total_seconds() / self.compression))


class _DevRun(_Run):
    """``runner``'s driver on the real clock, script offsets compressed; ends carry search attributes."""

    def __init__(self, script: Script, clock: _RealTime, api: Api, world: SimulatedWorld) -> None:
        env: Environment = clock
        super().__init__(script, env, api, world)
        self.compression = clock.compression

    def offset(self, instant: datetime) -> timedelta:
        return (instant - self.started_at) * self.compression

    async def end_of(self, account_id: str) -> AccountEnd:
        end = await super().end_of(account_id)
        description = await self.client.get_workflow_handle(workflow_id_for(account_id)).describe()
        end.search_attributes = search_attributes_json(description)
        return end


@dataclass
class _LoggedDevServer(DevServer):
    """A ``DevServer`` whose output goes to ``log_file`` instead of the console (a stop's warnings)."""

    log_file: Path = Path("temporal.log")

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        command = [
            bundled_binary("temporal"),
            "server",
            "start-dev",
            "--db-filename",
            str(self.db_file),
            "--port",
            str(self.port),
            "--ui-port",
            str(self.ui_port),
            "--ip",
            "127.0.0.1",
            "--log-level",
            "warn",
            "--headless",
        ]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)


class _Workers:
    """The worker processes by tag. The gateway's thread kills the one whose taken send it holds when a
    kill is armed; the run's loop starts new ones."""

    def __init__(
        self,
        processes: WorkerProcesses,
        sms_url: str,
        client: Client,
        task_queue: str,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.processes = processes
        self.sms_url = sms_url
        self.client = client
        self.task_queue = task_queue
        self.loop = loop
        self.live: dict[str, subprocess.Popen[bytes]] = {}
        self.kills: list[Kill] = []
        self.killed = asyncio.Event()
        self._armed = False
        self._lock = threading.Lock()
        self._serial = itertools.count(1)

    async def start(self) -> None:
        """A new worker, once it polls the account task queue (a worker registers its policies and
        search attributes before it polls)."""
        tag = f"w{next(self._serial)}"
        process = self.processes.start(COLLECTIONS_SMS_WEBHOOK_URL=f"{self.sms_url}?via={tag}")
        with self._lock:
            self.live[tag] = process
        await poll_until(
            self.poller_identities,
            lambda identities: any(identity.startswith(f"{process.pid}@") for identity in identities),
            what=f"worker {tag} (pid {process.pid}) to poll {self.task_queue}",
            timeout=WORKER_START_TIMEOUT,
            alive=self.check_alive,
        )

    async def poller_identities(self) -> list[str]:
        response = await self.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.client.namespace,
                task_queue=TaskQueue(name=self.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        return [poller.identity for poller in response.pollers]

    def check_alive(self) -> None:
        """Raise if a worker that was not killed has exited."""
        with self._lock:
            dead = [(tag, p) for tag, p in self.live.items() if p.poll() is not None]
        if dead:
            tag, process = dead[0]
            raise RuntimeError(
                f"worker {tag} (pid {process.pid}) exited with code {process.returncode}\n{self.log_tails()}"
            )

    def arm(self) -> None:
        self.killed.clear()
        with self._lock:
            self._armed = True

    def on_sms(self, attempt: SmsAttempt, query: str) -> None:
        """In the gateway's thread, before it answers: an armed kill takes the worker whose send the
        gateway has just taken; the answer goes out only once that worker is dead."""
        if attempt.outcome != "delivered":
            return
        tag = parse_qs(query).get("via", [""])[-1]
        with self._lock:
            process = self.live.get(tag) if self._armed else None
            if process is None:
                return
            self._armed = False
            del self.live[tag]
        at = datetime.now(UTC)
        WorkerProcesses.kill(process)  # SIGKILL and reap: dead before the gateway answers
        self.kills.append(Kill(at, tag, process.pid, True, attempt.key, attempt.account_id))
        self.loop.call_soon_threadsafe(self.killed.set)

    def kill_any(self) -> None:
        """The armed kill when no send came in time: some worker, whatever it is doing."""
        with self._lock:
            if not self._armed or not self.live:
                return  # the gateway's thread got there first
            self._armed = False
            tag, process = next(iter(self.live.items()))
            del self.live[tag]
        at = datetime.now(UTC)
        WorkerProcesses.kill(process)
        self.kills.append(Kill(at, tag, process.pid, False))

    def stop_all(self) -> None:
        with self._lock:
            processes, self.live = list(self.live.values()), {}
        for process in processes:
            WorkerProcesses.stop(process)

    def log_tails(self) -> str:
        parts = []
        for process, path in self.processes.started:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []
            tail = "\n".join(lines[-LOG_TAIL_LINES:])
            parts.append(f"----- {path.name} (pid {process.pid}, exit {process.returncode}) -----\n{tail}")
        return "\n".join(parts)


class _Faults:
    """The run's faults beyond the gateway's, on the real clock beside the script's driver."""

    def __init__(
        self,
        workers: _Workers,
        server: DevServer,
        settings: Settings,
        started: float,
        duration: timedelta,
        log: Callable[[str], None],
    ) -> None:
        self.workers = workers
        self.server = server
        self.settings = settings
        self.started = started
        """The loop's clock at the start."""
        self.duration = duration
        self.log = log
        self.restarts: list[Restart] = []
        self.accounts_started = asyncio.Event()
        """Set once every account has started: the server does not restart before."""
        self.changes = asyncio.Lock()
        """Held while a worker starts or the server restarts: a worker starting while the server is down
        would give up at once (``worker.py`` does not wait for a server it did not start)."""

    async def until(self, share: float) -> None:
        """Sleep until ``share`` of the run's duration (the faults' real-time pacing)."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self.started + share * self.duration.total_seconds() - loop.time()))

    async def kill(self, count: int) -> None:
        for index in range(count):
            await self.until(index / count)
            before = len(self.workers.kills)
            self.workers.arm()
            loop = asyncio.get_running_loop()
            deadline = self.started + (index + 1) / count * self.duration.total_seconds()
            try:
                await asyncio.wait_for(self.workers.killed.wait(), timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                await asyncio.to_thread(self.workers.kill_any)
                if len(self.workers.kills) == before:  # the gateway's thread was killing one meanwhile
                    await asyncio.wait_for(self.workers.killed.wait(), timeout=WORKER_START_TIMEOUT)
            kill = self.workers.kills[-1]
            what = f"mid-send ({kill.key})" if kill.mid_send else "no send in flight"
            self.log(f"killed worker {kill.worker} (pid {kill.pid}): {what}")
            async with self.changes:
                await self.workers.start()

    async def restart(self) -> None:
        await self.accounts_started.wait()
        await self.until(RESTART_AT)
        async with self.changes:
            stopped_at = datetime.now(UTC)
            code = await asyncio.to_thread(self.server.stop)
            self.server.start()
            await self.server.wait_ready(self.settings)
            back_at = datetime.now(UTC)
        self.restarts.append(Restart(stopped_at, back_at))
        self.log(
            f"dev server restarted (stop exit code {code}), down "
            f"{(back_at - stopped_at).total_seconds():.1f}s"
        )

    async def watch(self, drive: asyncio.Task[None]) -> None:
        """Fail at once when a worker dies that was not killed (polled until the script's end)."""
        while not drive.done():
            self.workers.check_alive()
            await asyncio.wait({drive}, timeout=0.5)


async def _busy(client: Client, account_id: str) -> bool:
    """Whether the account's workflow has an activity or a workflow task pending."""
    try:
        description = await client.get_workflow_handle(workflow_id_for(account_id)).describe()
    except Exception:  # a server still catching up: not settled yet
        return True
    if description.status != WorkflowExecutionStatus.RUNNING:
        return False
    raw = description.raw_description
    return bool(raw.pending_activities) or raw.HasField("pending_workflow_task")


async def _settle(client: Client, account_ids: list[str], world: SimulatedWorld, workers: _Workers) -> bool:
    """Wait until no workflow has work pending and the world saw no new request between two looks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT.total_seconds()
    seen = -1
    while True:
        workers.check_alive()
        busy = await asyncio.gather(*(_busy(client, account_id) for account_id in account_ids))
        requests = len(world.sms) + len(world.handoffs)
        if not any(busy) and requests == seen:
            return True
        seen = -1 if any(busy) else requests
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(SETTLE_POLL_SECONDS)


def _quiet(_: str) -> None:
    """No console."""


async def run_on_dev_server(
    script: Script,
    workdir: Path,
    *,
    kills: int = 2,
    restart_server: bool = True,
    duration: timedelta = timedelta(minutes=2),
    workers: int = WORKERS,
    log: Callable[[str], None] | None = None,
) -> DevServerObservations:
    """Run ``script`` on a dev server in ``duration`` of real time with ``kills`` worker kills (``workers``
    processes run at once) and, with ``restart_server``, one server restart; return what the world saw.
    ``workdir`` holds the server's and Kindly's databases, the policy file and the processes' logs;
    ``log`` gets a line per injected fault."""
    if duration <= timedelta(0) or kills < 0 or workers < 1:
        raise ValueError("duration must be positive, kills at least 0, workers at least 1")
    say = log or _quiet
    workdir.mkdir(parents=True, exist_ok=True)
    compression = timedelta(days=script.days) / duration  # script seconds per real second
    now = datetime.now(UTC)
    policy_file = workdir / "policies.json"
    policy_file.write_text(json.dumps(dev_policies(now)), encoding="utf-8")
    loop = asyncio.get_running_loop()
    server = _LoggedDevServer(workdir / "temporal.db", log_file=workdir / "temporal.log")
    server.start()
    try:
        with SimulatedWorld(
            script.seed,
            compressed_faults(script.faults, compression),
            started_at=now,
            hang_seconds=HTTP_TIMEOUT_SECONDS * 4,
        ) as world:
            world.clock = lambda: datetime.now(UTC)
            settings = Settings(
                _env_file=None,
                temporal_address=server.address,
                task_queue=f"simdev-{script.seed}-{uuid.uuid4().hex[:6]}",
                database_url=f"sqlite:///{workdir / 'kindly.db'}",
                sms_provider="webhook",
                sms_webhook_url=f"{world.url}/sms",
                phone_webhook_url=f"{world.url}/phone",
                specialist_webhook_url=f"{world.url}/specialist",
                policy_file=policy_file,
                http_timeout_seconds=HTTP_TIMEOUT_SECONDS,
                strict_workflow_sandbox=False,  # as deployed: the workflow package passed through
                dev_keys_file=workdir / "dev-keys.json",
                **ENCRYPTION_SETTINGS,
            )
            client = await server.wait_ready(settings)
            await ensure_search_attributes(client, client.namespace)
            pool = _Workers(
                WorkerProcesses(env=settings_environment(settings), log_dir=workdir),
                f"{world.url}/sms",
                client,
                settings.task_queue,
                loop,
            )
            world.on_sms = pool.on_sms
            try:
                for _ in range(workers):
                    await pool.start()
                return await _run(
                    script,
                    _Setup(server, settings, world, pool, policy_file),
                    duration=duration,
                    kills=kills,
                    restart_server=restart_server,
                    log=say,
                )
            except BaseException:
                print(pool.log_tails(), file=sys.stderr)
                raise
            finally:
                world.on_sms = None
                await asyncio.to_thread(pool.stop_all)
    finally:
        await asyncio.to_thread(server.stop)


@dataclass
class _Setup:
    server: DevServer
    settings: Settings
    world: SimulatedWorld
    workers: _Workers
    policy_file: Path


async def _run(
    script: Script,
    setup: _Setup,
    *,
    duration: timedelta,
    kills: int,
    restart_server: bool,
    log: Callable[[str], None],
) -> DevServerObservations:
    """Start the accounts, drive the script with the faults beside it, settle, read the ends."""
    world, workers = setup.world, setup.workers
    client = workers.client
    compression = timedelta(days=script.days) / duration
    loop = asyncio.get_running_loop()
    started_at, started = datetime.now(UTC), loop.time()
    world.started_at = started_at  # the outages count from here
    script = dev_script(script, zone_at_local_hour(started_at, LOCAL_HOUR))
    accounts = {a.account_id: realize_account(a.account, started_at) for a in script.accounts}
    clock = _RealTime(client, compression)
    # ``serving`` reads only the environment's clock (for ``Api.today``): the real one here.
    async with serving(cast(WorkflowEnvironment, clock), client, setup.settings, api_settings()) as api:
        simulation = _DevRun(script, clock, api, world)
        faults = _Faults(workers, setup.server, setup.settings, started, duration, log)

        async def start_and_drive() -> None:
            for account in accounts.values():
                response = await api.http.post("/accounts", json=account, headers={"X-API-Key": API_KEY})
                if response.status_code != 201:
                    raise RuntimeError(f"could not start {account['account_id']}: {response.text}")
            faults.accounts_started.set()
            await simulation.drive()

        # The first kill is armed from the start: it takes the first reminder the gateway takes.
        async with asyncio.TaskGroup() as group:
            drive = group.create_task(start_and_drive())
            group.create_task(faults.watch(drive))
            group.create_task(faults.kill(kills))
            if restart_server:
                group.create_task(faults.restart())
        settled = await _settle(client, list(accounts), world, workers)
        if not settled:
            log(f"in-flight work had not settled after {SETTLE_TIMEOUT}: reading the ends anyway")
        ends = {account_id: await simulation.end_of(account_id) for account_id in accounts}
    policies = load_policies(setup.policy_file)
    return DevServerObservations(
        started_at=started_at,
        ended_at=datetime.now(UTC),
        accounts=accounts,
        policies={
            segment: policy_for(segment, policies).model_dump(mode="json")
            for segment in {a["segment"] for a in accounts.values()}
        },
        sms=list(world.sms),
        handoffs=list(world.handoffs),
        deliveries=simulation.deliveries,
        ends=ends,
        duration=duration,
        kills=list(workers.kills),
        restarts=list(faults.restarts),
        settled=settled,
    )
