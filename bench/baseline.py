"""The bare Temporal baseline: per touchpoint, one activity (an HTTP POST of the SMS to the same
sandbox gateway Kindly uses) and one timer until the next touchpoint. Nothing else: no policy, no
database, no search attributes, no local activities.

With ``--sms-task-queue`` the activity runs on a queue of its own whose worker has a Temporal
task-queue rate limit, as Kindly's SMS do (the herd requirement): Temporal then cannot hand the
activity back with the workflow task's completion (eager activity execution). With ``upsert`` in its
input a workflow also upserts Kindly's search attributes (``kindly_attributes``) after each SMS, as
Kindly does. These variants (``BASELINE_VARIANTS``) show what those requirements alone cost bare
Temporal; the one with both (``SAME_WORK``) does the work Kindly is required to do per touchpoint, and
Kindly's throughput is checked against it.

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
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy, SearchAttributePair
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import httpx

    # Kindly's attribute keys, for the variants that give or upsert them (registered by the bench).
    from kindly.domain import search_attributes as sa

WORKFLOW_TYPE = "BaselineWorkflow"


@dataclass(frozen=True)
class BaselineVariant:
    """What a bare variant adds to the least a touchpoint can cost: its SMS activity on a queue of its
    own with a Temporal rate limit (the herd requirement), and one upsert of Kindly's search attributes
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
    "baseline_upsert": BaselineVariant("bare, search attributes upserted", "bare +\nupsert", upsert=True),
    "baseline_queue_and_upsert": BaselineVariant(
        "bare, rate-limited queue + upsert", "bare +\nqueue + upsert", sms_queue=True, upsert=True
    ),
}
SAME_WORK = "baseline_queue_and_upsert"
"""The bare variant doing the work Kindly is required to do per touchpoint (rate-limited SMS queue and
the search-attribute upsert): Kindly's touchpoint throughput is checked against it. ``baseline`` and
the other variants are information: what each requirement alone costs bare Temporal on the same
server."""
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
    """After each SMS, upsert the account's search attributes (``kindly_attributes``), as Kindly does."""
    first_at: datetime | None = None
    """Sleep until then before the first SMS (a morning's timers), as Kindly's accounts wait for theirs."""


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


def kindly_attributes(
    stage: str, due_at: datetime, unanswered: int, next_at: datetime | None
) -> list[SearchAttributePair[Any]]:
    """Values for Kindly's search attributes (``kindly.domain.search_attributes``), as an account of the
    bench carries them: what the bare variants give with their starts (no next touchpoint, as Kindly's
    starts) or upsert after each SMS (all of them)."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(sa.COLLECTION_STAGE, stage),
        SearchAttributePair(sa.DUE_DATE, due_at),
        SearchAttributePair(sa.AMOUNT_DUE, 1500.0),
        SearchAttributePair(sa.UNANSWERED_SMS, unanswered),
        SearchAttributePair(sa.SEGMENT, "bench"),
        SearchAttributePair(sa.PAUSED, False),
    ]
    return pairs if next_at is None else [*pairs, SearchAttributePair(sa.NEXT_TOUCHPOINT_AT, next_at)]


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
        if params.first_at is not None and params.first_at > workflow.now():
            self._next_at = params.first_at
            await workflow.sleep(params.first_at - workflow.now())
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
                # Due on the first touchpoint's day, like the bench's accounts.
                pairs = kindly_attributes("overdue", workflow.info().start_time, touchpoint, self._next_at)
                workflow.upsert_search_attributes([pair.key.value_set(pair.value) for pair in pairs])
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
