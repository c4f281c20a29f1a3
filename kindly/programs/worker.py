"""Kindly's worker: runs account workflows and their activities on the task queue.

``python worker.py`` (or ``python -m kindly.programs.worker``) connects to the Temporal that the
settings name (``COLLECTIONS_TEMPORAL_ADDRESS``);
``python worker.py --dev`` first starts the embedded dev server (SQLite under ``.data/``, Web UI on
:8233); ``--demo`` also starts a small demo portfolio. Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import timedelta
from typing import Any, NoReturn

import httpx
import uvicorn
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.handoffs import HandoffActivities
from activities.messaging import MessagingActivities
from activities.records import RecordActivities
from activities.sms_providers import build_sms_provider
from kindly.domain.policy.model import load_policies
from kindly.domain.policy.sendable import policies_in_use
from kindly.keyring import ensure_development_keys, load_keyring
from kindly.programs.calendar_watch import calendars_in_use, watching_calendars
from kindly.programs.composers import checked_composer
from kindly.programs.demo import start_demo_portfolio
from kindly.programs.dev_server import start_dev_server
from kindly.programs.experiment_watch import watching_experiments
from kindly.programs.rate_limit import sms_task_queue_rate
from kindly.programs.temporal import connect, ensure_search_attributes
from kindly.settings import Settings
from kindly.store import (
    AuditStore,
    ComplaintStore,
    PhoneBook,
    SelfServiceLinks,
    SpecialistCases,
    WorkQueue,
    make_engine,
)
from kindly.store.experiments import ExperimentStore
from workflows.overdue_account import OverdueAccountWorkflow
from workflows.requests import SMS_TASK_QUEUE_SUFFIX

logger = logging.getLogger("kindly.worker")

WORKFLOW_PACKAGE = OverdueAccountWorkflow.__module__.partition(".")[0]


def workflow_runner(settings: Settings) -> SandboxedWorkflowRunner:
    """The workflow sandbox, with Kindly's own workflow package passed through unless
    ``strict_workflow_sandbox`` is set.

    Passed through, the package is imported once per worker like the modules it imports, and a new
    workflow instance no longer re-executes it: its class and handler definitions cost about a sixth
    of a touchpoint's worker CPU and 90 MiB of a full sticky cache. Instances then share the module's
    globals, so the package keeps no mutable module state (``tests/test_workflow_sandbox.py`` checks), and the
    sandbox's restrictions no longer see the calls its own code makes. That is what the strict mode is
    for: the test suite runs in it (as do the replay tests, on the SDK's default sandbox), so a clock,
    I/O or random call in workflow code fails the tests before it reaches a worker.
    """
    if settings.strict_workflow_sandbox:
        return SandboxedWorkflowRunner()
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(WORKFLOW_PACKAGE)
    )


class KindlyWorkers:
    """The account worker and the SMS worker, started and stopped together (``async with``).

    SMS sends poll their own task queue, ``<task_queue>-sms``, whose Temporal rate limit the server
    enforces across every worker, so nothing else waits behind a queue of reminders. That limit is
    ``sms_task_queue_rate(sms_rate_limit_per_second)``, about two fifths of the gateway's accepted
    rate: Temporal's limiter lets a second's worth through at once after a quiet spell, per task-queue
    partition, and the gateway must never see more than the setting in any second, however many
    workers run (``kindly/programs/rate_limit.py``). The account worker also runs ``send_sms`` for workflows
    that started before the SMS queue existed.
    """

    def __init__(self, *workers: Worker) -> None:
        self.workers = workers
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> KindlyWorkers:
        async with AsyncExitStack() as stack:
            for worker in self.workers:
                await stack.enter_async_context(worker)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()


@asynccontextmanager
async def build_worker(client: Client, settings: Settings) -> AsyncIterator[KindlyWorkers]:
    """The workers with every activity built from settings; checks the templates the policies (and the
    running experiments' arms) can send before anything runs.

    While the block runs, the holiday calendars the policies use are watched (``calendar_watch``), and
    so are the running experiments' guardrails (``experiment_watch``)."""
    policies = load_policies(
        settings.policy_file,
        continue_as_new_after_events=settings.continue_as_new_after_events,
        complaint_business_days=(
            settings.complaint_acknowledge_business_days,
            settings.complaint_resolve_business_days,
        ),
    )
    engine = make_engine(settings.database_url)
    running = [found.definition for found in ExperimentStore(engine).all() if found.running]
    composer = checked_composer(settings, uses=policies_in_use(running, policies))
    store = AuditStore(engine)
    keyring = load_keyring(settings)
    # Warns of provisional holiday years and of calendar data running out, now and daily.
    watch = watching_calendars(calendars_in_use(policies))
    guardrails = watching_experiments(engine)
    async with httpx.AsyncClient(timeout=settings.http_timeout_seconds) as http, watch, guardrails:
        messaging = MessagingActivities(
            build_sms_provider(settings, http),
            composer,
            store,
            SelfServiceLinks(engine, keyring),
            public_base_url=settings.public_base_url,
            link_lifetime=timedelta(days=settings.self_service_link_days),
        )
        handoffs = HandoffActivities(
            http,
            store,
            phone_url=settings.phone_webhook_url,
            specialist_url=settings.specialist_webhook_url,
            # Where hand-offs go without a URL: the staff console's queues.
            work_queue=WorkQueue(engine, keyring),
            cases=SpecialistCases(engine, keyring),
        )
        phones = PhoneBook(engine, keyring)
        records = RecordActivities(
            store, phones, policies, ExperimentStore(engine), complaints=ComplaintStore(engine)
        )
        accounts = Worker(
            client,
            task_queue=settings.task_queue,
            max_cached_workflows=settings.max_cached_workflows,
            workflows=[OverdueAccountWorkflow],
            workflow_runner=workflow_runner(settings),
            activities=[
                messaging.send_sms,
                handoffs.create_call_task,
                handoffs.hand_off_to_specialist,
                records.prepare_account,
                records.record_changes,
                records.resolve_policy,
                records.cancel_send,
            ],
        )
        sms = Worker(
            client,
            task_queue=settings.task_queue + SMS_TASK_QUEUE_SUFFIX,
            activities=[messaging.send_sms],
            max_task_queue_activities_per_second=sms_task_queue_rate(settings.sms_rate_limit_per_second),
        )
        yield KindlyWorkers(accounts, sms)


def telemetry_runtime(settings: Settings) -> Runtime | None:
    """A runtime serving the SDK's and Kindly's metrics to Prometheus, when an address is set."""
    if settings.metrics_bind_address is None:
        return None
    return Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=settings.metrics_bind_address))
    )


async def _connect_unless_stopped(
    settings: Settings,
    stop: asyncio.Event,
    server: subprocess.Popen[bytes] | None,
    wait: timedelta,
) -> Client | None:
    """Connect (retrying for ``wait``), but give up at once on Ctrl-C/SIGTERM (``None``) or when
    the dev server we started has exited (``RuntimeError``), instead of retrying for a minute."""

    async def stopped_or_server_gone() -> None:
        while not stop.is_set():
            if server is not None and server.poll() is not None:
                raise RuntimeError(f"the Temporal dev server exited with code {server.returncode}")
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)

    connecting = asyncio.create_task(connect(settings, wait=wait, runtime=telemetry_runtime(settings)))
    watching = asyncio.create_task(stopped_or_server_gone())
    try:
        await asyncio.wait({connecting, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (connecting, watching):
            task.cancel()
        await asyncio.gather(connecting, watching, return_exceptions=True)
    if connecting.done() and not connecting.cancelled():
        return connecting.result()
    if not watching.cancelled():
        watching.result()  # raises when the dev server exited
    return None


@asynccontextmanager
async def serving(apps: list[ServedApp]) -> AsyncIterator[None]:
    """Serve ASGI apps with uvicorn in this event loop for the duration of the block."""
    servers = [
        (name, uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")))
        for name, app, host, port in apps
    ]
    tasks = [asyncio.create_task(server.serve()) for _, server in servers]
    try:
        for (name, server), task in zip(servers, tasks, strict=True):
            while not server.started:
                if task.done():
                    raise RuntimeError(f"{name} could not start: {task.exception()}")
                await asyncio.sleep(0.05)
        yield
    finally:
        for _, server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)


async def _register_search_attributes(client: Client, settings: Settings) -> None:
    """Add Kindly's search attributes where missing; on Temporal Cloud they are created up front."""
    try:
        added = await ensure_search_attributes(client, settings.temporal_namespace)
    except RPCError as err:
        logger.warning(
            "could not register search attributes (%s); on Temporal Cloud create them (docs/deploying.md)",
            err.message,
        )
        return
    if added:
        logger.info("registered search attributes: %s", ", ".join(added))


ServedApp = tuple[str, Any, str, int]
"""(name, ASGI app, host, port) served beside the worker, e.g. the HTTP API and the SMS sandbox."""


async def serve(
    settings: Settings,
    *,
    dev: bool = False,
    demo: bool = False,
    apps: Callable[[Client], list[ServedApp]] | None = None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server: subprocess.Popen[bytes] | None = None
    try:
        if dev:
            ensure_development_keys(settings)
            port = int(settings.temporal_address.rsplit(":", 1)[1])
            server = start_dev_server(settings.dev_server_db, port=port, ui_port=settings.dev_server_ui_port)
            logger.info(
                "Temporal dev server starting; Web UI http://localhost:%s",
                settings.dev_server_ui_port,
            )
        client = await _connect_unless_stopped(
            settings, stop, server, timedelta(seconds=60) if dev else timedelta(0)
        )
        if client is None:
            logger.info("stopped before connecting to Temporal")
            return
        await _register_search_attributes(client, settings)
        async with build_worker(client, settings) as worker, worker, serving(apps(client) if apps else []):
            logger.info(
                "worker polling task queues %r and %r (SMS at most %s/s)",
                settings.task_queue,
                settings.task_queue + SMS_TASK_QUEUE_SUFFIX,
                settings.sms_rate_limit_per_second,
            )
            if demo:
                ids = await start_demo_portfolio(client, settings.task_queue)
                logger.info("demo accounts: %s", ", ".join(ids))
            await stop.wait()
            logger.info("stopping")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dev", action="store_true", help="start the embedded Temporal dev server")
    parser.add_argument("--demo", action="store_true", help="start a demo portfolio")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # One INFO line per HTTP request (every SMS) costs CPU and says nothing the audit log does not.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(serve(Settings(), dev=args.dev, demo=args.demo))
    exit_without_finalizing()


def exit_without_finalizing() -> NoReturn:
    """Exit 0 once everything has shut down, skipping the interpreter's finalization: the Temporal SDK's
    Rust threads can still call into Python then and abort the process (SIGABRT, "PyGILState_Release",
    temporalio/sdk-python#300), which a supervisor would report as a crash of a clean stop."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
