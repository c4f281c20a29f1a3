"""The bare Temporal baseline: per touchpoint, one activity (an HTTP POST of the SMS to the same
sandbox gateway Kindly uses) and one timer until the next touchpoint. Nothing else: no policy, no
database, no search attributes, no local activities.

With ``--sms-task-queue`` the activity runs on a queue of its own whose worker has a Temporal
task-queue rate limit, as Kindly's SMS do (the issue's herd requirement): Temporal then cannot hand
the activity back with the workflow task's completion (eager activity execution). With ``upsert`` in
its input a workflow also upserts seven search attributes after each SMS, as Kindly does. These
variants (``BASELINE_VARIANTS``) show what those requirements alone cost bare Temporal.

``python -m bench.baseline --address HOST:PORT --task-queue Q --sms-url URL`` runs its worker until
SIGTERM, as ``python worker.py`` runs Kindly's, so both are measured as separate processes.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import httpx

    # Kindly's attributes and its upsert of them, for the variants that upsert (registered by the bench).
    from kindly.domain.search_attributes import snapshot_updates

WORKFLOW_TYPE = "BaselineWorkflow"


@dataclass(frozen=True)
class BaselineVariant:
    """What a bare variant adds to the least a touchpoint can cost: its SMS activity on a queue of its
    own with a Temporal rate limit (the herd requirement), and one upsert of seven search attributes
    per touchpoint (what keeps an account findable by stage, next touchpoint and unanswered SMS)."""

    label: str
    chart_label: str
    sms_queue: bool = False
    upsert: bool = False


BASELINE_VARIANTS = {
    "baseline": BaselineVariant("bare Temporal", "bare\nTemporal"),
    "baseline_sms_queue": BaselineVariant(
        "bare, SMS on a rate-limited queue", "bare +\nSMS queue", sms_queue=True
    ),
    "baseline_upsert": BaselineVariant("bare, 7 attributes upserted", "bare +\nupsert", upsert=True),
    "baseline_queue_and_upsert": BaselineVariant(
        "bare, rate-limited queue + upsert", "bare +\nboth", sms_queue=True, upsert=True
    ),
}
"""The throughput targets are judged against ``baseline``; the others are information: what the issue's
own requirements cost bare Temporal on the same server."""
ACTIVITY_NAME = "post_sms"
KEY_PREFIX = "baseline-"
BODY = (
    "Kindly Finance: your loan ending 1234 has 1500.00 CNY due today. Repay in the app (Me > Loans > "
    "Repay) or by bank transfer. Questions: 400-800-1234. Reply STOP to opt out."
)
"""About the length of Kindly's rendered reminders, so both post the same amount of data."""


@dataclass(frozen=True)
class BaselineInput:
    account_id: str
    phone: str
    touchpoints: int
    interval_seconds: float
    sms_task_queue: str | None = None
    upsert: bool = False
    """After each SMS, upsert the account's seven search attributes, as Kindly does."""


@dataclass(frozen=True)
class SmsRequest:
    to: str
    body: str
    idempotency_key: str
    account_id: str


@dataclass(frozen=True)
class BaselineProgress:
    sent: int
    next_at: datetime | None


def idempotency_key(account_id: str, touchpoint: int) -> str:
    return f"{KEY_PREFIX}{account_id}/tp-{touchpoint}"


class SmsPoster:
    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self._http = http
        self._url = url

    @activity.defn(name=ACTIVITY_NAME)
    async def post_sms(self, request: SmsRequest) -> str:
        response = await self._http.post(
            self._url,
            json={
                "to": request.to,
                "body": request.body,
                "idempotency_key": request.idempotency_key,
                "account_id": request.account_id,
                "template": "baseline",
            },
            headers={"Idempotency-Key": request.idempotency_key},
        )
        response.raise_for_status()
        return str(response.json().get("id", ""))


@workflow.defn(name=WORKFLOW_TYPE)
class BaselineWorkflow:
    def __init__(self) -> None:
        self._sent = 0
        self._next_at: datetime | None = None

    @workflow.run
    async def run(self, params: BaselineInput) -> int:
        for touchpoint in range(1, params.touchpoints + 1):
            await workflow.execute_activity(
                ACTIVITY_NAME,
                SmsRequest(
                    to=params.phone,
                    body=BODY,
                    idempotency_key=idempotency_key(params.account_id, touchpoint),
                    account_id=params.account_id,
                ),
                task_queue=params.sms_task_queue,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=5)),
            )
            self._sent = touchpoint
            interval = timedelta(seconds=params.interval_seconds)
            self._next_at = workflow.now() + interval
            if params.upsert:
                workflow.upsert_search_attributes(
                    snapshot_updates(
                        ("overdue", touchpoint, 1500.0, touchpoint, self._next_at, "bench", False)
                    )
                )
            await workflow.sleep(interval)
        self._next_at = None
        return self._sent

    @workflow.query(name="progress")
    def progress(self) -> BaselineProgress:
        return BaselineProgress(sent=self._sent, next_at=self._next_at)


def build_baseline_worker(
    client: Client, task_queue: str, http: httpx.AsyncClient, sms_url: str, *, max_cached_workflows: int
) -> Worker:
    """SDK defaults but for the sticky-cache size, which is set as Kindly's worker sets it."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BaselineWorkflow],
        activities=[SmsPoster(http, sms_url).post_sms],
        max_cached_workflows=max_cached_workflows,
    )


def build_sms_queue_worker(
    client: Client, sms_task_queue: str, http: httpx.AsyncClient, sms_url: str, *, rate: float
) -> Worker:
    """The activity's own queue, rate-limited by Temporal as Kindly's ``<queue>-sms`` is."""
    return Worker(
        client,
        task_queue=sms_task_queue,
        activities=[SmsPoster(http, sms_url).post_sms],
        max_task_queue_activities_per_second=rate,
    )


async def serve(
    address: str,
    namespace: str,
    task_queue: str,
    sms_url: str,
    max_cached: int,
    sms_task_queue: str | None = None,
    sms_rate: float = 100_000.0,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    client = await Client.connect(address, namespace=namespace)
    async with httpx.AsyncClient(timeout=10) as http, AsyncExitStack() as workers:
        await workers.enter_async_context(
            build_baseline_worker(client, task_queue, http, sms_url, max_cached_workflows=max_cached)
        )
        if sms_task_queue is not None:
            await workers.enter_async_context(
                build_sms_queue_worker(client, sms_task_queue, http, sms_url, rate=sms_rate)
            )
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="worker of the bare Temporal baseline")
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--sms-url", required=True)
    parser.add_argument("--max-cached-workflows", type=int, default=1000)
    parser.add_argument("--sms-task-queue", help="run the activity on this rate-limited queue")
    parser.add_argument("--sms-rate", type=float, default=100_000.0, help="its rate limit (/s)")
    args = parser.parse_args()
    asyncio.run(
        serve(
            args.address,
            args.namespace,
            args.task_queue,
            args.sms_url,
            args.max_cached_workflows,
            args.sms_task_queue,
            args.sms_rate,
        )
    )


if __name__ == "__main__":
    main()
