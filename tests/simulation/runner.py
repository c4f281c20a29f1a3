"""Run a simulation script on Temporal's time-skipping server, with a real worker and Kindly's API.

Accounts start through ``POST /accounts`` as a lender's system starts them. Customers' replies and the
lender's payment notices arrive through the signed webhooks (copies of one arrive later, out of order
with the rest); operators' and the phone team's actions arrive as signals. The phone team answers the
call tasks it accepts with an outcome some hours later. Time moves with ``env.sleep`` in steps of at most
six simulated hours. What the world saw is returned as :class:`Observations`; nothing is read from
Kindly's database.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from kindly.codec import data_converter
from kindly.domain.contract import AccountResult, AccountStatus, TimelineEntry, workflow_id_for
from kindly.domain.policy.model import load_policies, policy_for
from kindly.keyring import load_keyring
from kindly.programs.api.security import kindly_headers
from kindly.programs.dev_server import bundled_binary
from kindly.programs.temporal import ensure_search_attributes
from kindly.programs.worker import build_worker
from kindly.settings import Settings
from tests.conftest import ENCRYPTION_SETTINGS, TEST_POLICIES
from tests.fault_helpers import loop_clock
from tests.simulation.gateway import SimulatedWorld, _chance
from tests.simulation.model import AccountEnd, Action, Delivery, Observations, Script
from tests.simulation.policies import simulation_policies
from tests.test_api import API_KEY, WEBHOOK_SECRET, Api, api_settings, serving

STEP = timedelta(hours=6)
"""The longest stretch of simulated time between two looks at the world (for the phone team's answers)."""
OUTAGE_STEP = timedelta(minutes=2)
"""The stretch during a gateway outage, so that actions triggered by a retry land while it retries."""
HTTP_TIMEOUT_SECONDS = 0.5
"""The worker's HTTP timeout: a gateway that hangs costs this much real time per attempt."""
QUERY_TIMEOUT = timedelta(seconds=60)
PROGRESS_DAYS = 10
RECEIPT_DEAD_NUMBER = 0.02
"""The share of messages whose final receipt says the number is dead for good (undelivered, permanent)."""
RECEIPT_FAILED = 0.03
"""The share whose final receipt is a passing failure."""


@dataclass(order=True)
class _Due:
    """An action waiting in the run's queue (ordered by time, then by insertion)."""

    after: timedelta
    order: int
    account_id: str = field(compare=False)
    action: Action = field(compare=False)
    message_id: str = field(compare=False, default="")


def realize_account(template: dict[str, Any], started_at: datetime) -> dict[str, Any]:
    """The ``AccountInput`` JSON of a script's account, its relative dates made absolute."""
    account = {key: value for key, value in template.items() if not key.endswith("_in_days")}
    local_start = started_at.astimezone(ZoneInfo(template["timezone"])).date()
    account["due_date"] = (local_start + timedelta(days=template["due_in_days"])).isoformat()
    if template.get("birthday_in_days") is not None:
        day = local_start + timedelta(days=template["birthday_in_days"])
        account["birthday"] = date(
            1990, day.month, min(day.day, 28 if day.month == 2 else day.day)
        ).isoformat()
    account.setdefault("customer_name", "Sim Customer")
    return account


def realize_payload(payload: dict[str, Any], at: datetime, timezone: str) -> dict[str, Any]:
    """A payload as sent at ``at``: ``<field>_in_days`` becomes a local date, ``<field>_in_hours`` an
    instant (``date_in_days`` → ``date``, ``until_in_hours`` → ``until``)."""
    today = at.astimezone(ZoneInfo(timezone)).date()
    realized: dict[str, Any] = {}
    for key, value in payload.items():
        if key.endswith("_in_days") and isinstance(value, int):
            realized[key.removesuffix("_in_days")] = (today + timedelta(days=value)).isoformat()
        elif key.endswith("_in_hours") and isinstance(value, int | float):
            realized[key.removesuffix("_in_hours")] = (at + timedelta(hours=value)).isoformat()
        else:
            realized[key] = value
    return realized


class Environment(Protocol):
    """What a run needs of its Temporal environment: a client, and a clock it reads and sleeps on
    (``WorkflowEnvironment``'s is simulated; a dev-server run's is the real one, ``dev_runner``)."""

    @property
    def client(self) -> Client: ...

    async def get_current_time(self) -> datetime: ...

    async def sleep(self, duration: timedelta) -> None: ...


class _Run:
    def __init__(
        self,
        script: Script,
        env: Environment,
        api: Api,
        world: SimulatedWorld,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.script = script
        self.progress = progress
        self.reported_day = 0
        self.env = env
        self.client: Client = env.client
        self.api = api
        self.world = world
        self.started_at = world.started_at
        self.queue: list[_Due] = []
        self.order = itertools.count()
        self.deliveries: list[Delivery] = []
        self.zones = {a.account_id: str(a.account["timezone"]) for a in script.accounts}
        self.answered_handoffs: set[str] = set()
        self.stamps: dict[bytes, set[int]] = {}
        self.on_retry: dict[str, list[tuple[str, Action]]] = {}
        """Actions waiting for one of their account's messages to be refused, with their message ids."""
        self.seen_sms = 0
        self.receipted = 0

    async def post_signed(self, path: str, payload: dict[str, Any]) -> str:
        """POST a signed webhook as a sender does: each delivery signed afresh, so that a repeated body (a
        duplicate notification) carries a timestamp of its own and is no replay. Returns the status."""
        raw = json.dumps(payload).encode()
        used = self.stamps.setdefault(raw, set())
        now = int(time.time())
        stamp = next(now - back for back in itertools.count() if now - back not in used)
        used.add(stamp)
        headers = {"Content-Type": "application/json", **kindly_headers(WEBHOOK_SECRET, raw, stamp)}
        return str((await self.api.http.post(path, content=raw, headers=headers)).status_code)

    def push(self, after: timedelta, account_id: str, action: Action, message_id: str = "") -> None:
        heapq.heappush(self.queue, _Due(after, next(self.order), account_id, action, message_id))

    def offset(self, instant: datetime) -> timedelta:
        """Where an instant of the environment's clock falls in the script (its offset from the start)."""
        return instant - self.started_at

    async def elapsed(self) -> timedelta:
        return self.offset(await self.env.get_current_time())

    async def drive(self) -> None:
        for account in self.script.accounts:
            for index, action in enumerate(account.actions):
                message_id = f"sim-{self.script.seed}-{account.account_id}-{index}"
                if action.trigger == "retrying":
                    self.on_retry.setdefault(account.account_id, []).append((message_id, action))
                else:
                    self.schedule(action.after, account.account_id, action, message_id)
        end = timedelta(days=self.script.days)
        while True:
            now = await self.elapsed()
            if now >= end:
                break
            step = OUTAGE_STEP if self.in_outage(now) else STEP
            starts = [start for start, _ in self.script.faults.outages if start > now]
            target = min(self.queue[0].after if self.queue else end, end, now + step, *starts)
            if target > now:
                await self.env.sleep(target - now)
            now = await self.elapsed()
            self.trigger_on_retries(now)
            self.send_receipts(now)
            self.report(now)
            while self.queue and self.queue[0].after <= now:
                due = heapq.heappop(self.queue)
                await self.deliver(due)
            self.answer_call_tasks(now)

    def send_receipts(self, now: timedelta) -> None:
        """The carrier's delivery receipts for each message the gateway took: ``sent``, then the final
        state (mostly ``delivered``; some numbers dead for good, some failures passing), minutes later,
        sometimes the final one first and sometimes twice."""
        new, self.receipted = self.world.sms[self.receipted :], len(self.world.sms)
        seed = self.script.seed
        for attempt in new:
            if attempt.outcome not in ("delivered", "lost_answer"):
                continue
            roll = _chance(seed, "receipt", attempt.key)
            final: dict[str, Any] = {"message_id": f"sim-{attempt.key}", "status": "delivered"}
            if roll < RECEIPT_DEAD_NUMBER:
                final.update(status="undelivered", error_code="30005", permanent=True)
            elif roll < RECEIPT_DEAD_NUMBER + RECEIPT_FAILED:
                final.update(status="failed", error_code="30008")
            sent_after = timedelta(seconds=5 + int(60 * _chance(seed, "receipt-sent", attempt.key)))
            final_after = timedelta(minutes=1 + int(30 * _chance(seed, "receipt-final", attempt.key)))
            if _chance(seed, "receipt-order", attempt.key) < 0.2:
                sent_after, final_after = final_after, sent_after  # out of order
            copies = 2 if _chance(seed, "receipt-copies", attempt.key) < 0.2 else 1
            base = max(attempt.at - self.started_at, now)
            sent = {"message_id": final["message_id"], "status": "sent"}
            for payload, after, times in ((sent, sent_after, 1), (final, final_after, copies)):
                action = Action(base + after, "receipt_webhook", "receipt", payload, times)
                self.schedule(base + after, attempt.account_id, action, f"receipt-{attempt.key}")

    def report(self, now: timedelta) -> None:
        """A line every ``PROGRESS_DAYS`` simulated days, for a soak's console."""
        day = now.days
        if self.progress is None or day < self.reported_day + PROGRESS_DAYS:
            return
        self.reported_day = day
        self.progress(
            f"day {day}/{self.script.days}: {len(self.world.sms)} SMS requests, "
            f"{len(self.world.handoffs)} hand-off requests, {len(self.deliveries)} actions delivered"
        )

    def schedule(self, after: timedelta, account_id: str, action: Action, message_id: str) -> None:
        self.push(after, account_id, action, message_id)
        # A sender's retries: the same message again, later, out of order with the rest.
        for copy in range(1, action.copies):
            delay = timedelta(minutes=1 + int(180 * _chance(self.script.seed, message_id, copy)))
            self.push(after + delay, account_id, action, message_id)

    def in_outage(self, elapsed: timedelta) -> bool:
        return any(start <= elapsed < end for start, end in self.script.faults.outages)

    def trigger_on_retries(self, now: timedelta) -> None:
        """Schedule each retry-triggered action ``after`` the first refusal of one of its account's
        messages during an outage (any refusal when the run has none)."""
        new, self.seen_sms = self.world.sms[self.seen_sms :], len(self.world.sms)
        outages = bool(self.script.faults.outages)
        for attempt in new:
            waiting = self.on_retry.get(attempt.account_id)
            if attempt.outcome not in ("refused", "timeout") or not waiting:
                continue
            if outages and not self.in_outage(self.offset(attempt.at)):
                continue  # a one-off refusal is retried within seconds: wait for an outage's long retries
            message_id, action = waiting.pop(0)
            self.schedule(
                max(self.offset(attempt.at) + action.after, now), attempt.account_id, action, message_id
            )

    def answer_call_tasks(self, now: timedelta) -> None:
        """The phone team calls each accepted call task's customer and reports an outcome, hours later."""
        for attempt in self.world.handoffs:
            if attempt.kind != "phone" or not attempt.accepted or attempt.key in self.answered_handoffs:
                continue
            self.answered_handoffs.add(attempt.key)
            roll = _chance(self.script.seed, "call", attempt.key)
            hours = 2 + int(40 * _chance(self.script.seed, "call-delay", attempt.key))
            payload: dict[str, Any]
            if roll < 0.4:
                payload = {"outcome": "no_answer"}
            elif roll < 0.65:
                payload = {"outcome": "reached"}
            elif roll < 0.8:
                payload = {"outcome": "promise_to_pay", "promise_date_in_days": 3 + int(roll * 10)}
            elif roll < 0.9:
                payload = {"outcome": "wrong_number"}
            elif roll < 0.95:
                payload = {"outcome": "refused"}
            else:
                continue  # the team never reports: the workflow tries again after its wait
            after = max(self.offset(attempt.at) + timedelta(hours=hours), now)
            self.push(after, attempt.account_id, Action(after, "signal", "call_outcome", payload))

    async def deliver(self, due: _Due) -> None:
        action = due.action
        at = await self.env.get_current_time()
        payload = realize_payload(action.payload, at, self.zones[due.account_id])
        if action.channel == "signal":
            handle = self.client.get_workflow_handle(workflow_id_for(due.account_id))
            try:
                await handle.signal(action.name, payload)
                answer = "signalled"
            except RPCError as err:
                answer = f"refused: {err.status.name if err.status else err}"
        elif action.channel == "receipt_webhook":
            answer = await self.post_signed("/webhooks/receipts", payload)
        elif action.channel == "reply_webhook":
            message_id = payload.get("message_id") or due.message_id
            body = {"from": payload.get("from"), "text": payload.get("text"), "message_id": message_id}
            answer = await self.post_signed("/webhooks/sms", body)
        else:
            answer = await self.post_signed("/webhooks/payments", payload)
        self.deliveries.append(
            Delivery(due.account_id, Action(action.after, action.channel, action.name, payload), at, answer)
        )

    async def end_of(self, account_id: str) -> AccountEnd:
        workflow_id = workflow_id_for(account_id)
        described = await self.client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(
                namespace=self.client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
            )
        )
        status_name = WorkflowExecutionStatus.Name(described.workflow_execution_info.status)
        workflow_status = status_name.removeprefix("WORKFLOW_EXECUTION_STATUS_")
        handle = self.client.get_workflow_handle(workflow_id, result_type=AccountResult)
        end = AccountEnd(account_id=account_id, workflow_status=workflow_status, status=None, timeline=[])
        try:
            status = await handle.query("status", result_type=AccountStatus, rpc_timeout=QUERY_TIMEOUT)
            entries = await handle.query(
                "timeline", result_type=list[TimelineEntry], rpc_timeout=QUERY_TIMEOUT
            )
            end.status = status.model_dump(mode="json")
            end.timeline = [entry.model_dump(mode="json") for entry in entries]
        except Exception:  # a workflow that cannot answer: the checker reports it
            pass
        if workflow_status == "COMPLETED":
            end.result = (await handle.result()).model_dump(mode="json")
        return end


async def run(script: Script, workdir: Path, progress: Callable[[str], None] | None = None) -> Observations:
    """Run ``script`` and return what the world saw. ``workdir`` holds the run's database and policy file;
    ``progress`` gets a line every ten simulated days."""
    workdir.mkdir(parents=True, exist_ok=True)
    settings_fields: dict[str, Any] = {
        "_env_file": None,
        "task_queue": f"sim-{script.seed}-{uuid.uuid4().hex[:6]}",
        "database_url": f"sqlite:///{workdir / 'kindly.db'}",
        "sms_provider": "webhook",
        "http_timeout_seconds": HTTP_TIMEOUT_SECONDS,
        **ENCRYPTION_SETTINGS,
    }
    keyring = load_keyring(Settings(**settings_fields))
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=bundled_binary("temporal-test-server"),
        data_converter=data_converter(keyring),
    )
    try:
        await ensure_search_attributes(env.client, env.client.namespace)
        started_at = await env.get_current_time()
        policy_file = workdir / "policies.json"
        policy_file.write_text(json.dumps({**TEST_POLICIES, **simulation_policies(started_at.date())}))
        with SimulatedWorld(
            script.seed, script.faults, started_at=started_at, hang_seconds=HTTP_TIMEOUT_SECONDS * 4
        ) as world:
            world.clock = loop_clock(asyncio.get_running_loop(), env.get_current_time)
            settings = Settings(
                **settings_fields,
                sms_webhook_url=f"{world.url}/sms",
                phone_webhook_url=f"{world.url}/phone",
                specialist_webhook_url=f"{world.url}/specialist",
                policy_file=policy_file,
            )
            accounts = {a.account_id: realize_account(a.account, started_at) for a in script.accounts}
            async with (
                build_worker(env.client, settings) as worker,
                worker,
                serving(env, env.client, settings, api_settings()) as api,
            ):
                for account in accounts.values():
                    response = await api.http.post("/accounts", json=account, headers={"X-API-Key": API_KEY})
                    if response.status_code != 201:
                        raise RuntimeError(f"could not start {account['account_id']}: {response.text}")
                simulation = _Run(script, env, api, world, progress)
                await simulation.drive()
                ends = {account_id: await simulation.end_of(account_id) for account_id in accounts}
            policies = load_policies(policy_file)
            return Observations(
                started_at=started_at,
                ended_at=await env.get_current_time(),
                accounts=accounts,
                policies={
                    segment: policy_for(segment, policies).model_dump(mode="json")
                    for segment in {a["segment"] for a in accounts.values()}
                },
                sms=list(world.sms),
                handoffs=list(world.handoffs),
                deliveries=simulation.deliveries,
                ends=ends,
            )
    finally:
        await env.shutdown()
