"""A workflow's cancellation reaching a sending activity, against a real gateway and a real database.

The gateway is a threaded HTTP server on 127.0.0.1 that records each request and holds its answer until
the test releases it, so a cancellation can be delivered at a known moment: before the attempt makes
its request (from the answer to the attempt's first heartbeat), or while the request is on the wire.
A request on the wire is finished: if the gateway takes it, the activity completes as usual (the
message went out); if not, the cancellation stands and Temporal makes no other attempt. A touchpoint
whose outbox row was closed as ``cancelled`` is never sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.composition import FreeTextComposer
from activities.handoffs import HandoffActivities
from activities.inputs import (
    AuditRecord,
    CallTaskInput,
    HandoffResult,
    SendSmsInput,
    SpecialistHandoffInput,
)
from activities.messaging import MessagingActivities
from activities.sms_providers import WebhookSmsProvider
from kindly.domain.contract import TemplateName
from kindly.domain.messages.context import MessageContext
from kindly.domain.messages.rendering import MessageRenderer, build_template_environment
from kindly.keyring import KeyRing
from kindly.store import AuditStore, OutboxEntry, SelfServiceLinks, SpecialistCases, WorkQueue, make_engine

ACCOUNT = "LN-1"
KEY = "wf-1/run-1/tp-1"
WAIT = 30.0
"""Seconds a test waits for the gateway to receive a request (a deadline, not a synchronisation)."""
KEYRING = KeyRing(keys={"k1": b"k" * 32}, current_id="k1", hash_key=b"h" * 32)


# --- a gateway that holds its answer -------------------------------------------------------------


@dataclass(frozen=True)
class GatewayRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _HoldingHandler(BaseHTTPRequestHandler):
    server: _HoldingServer

    def do_POST(self) -> None:
        gateway = self.server.gateway
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        number = gateway._record(
            GatewayRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        # The request is recorded (the gateway has it); the answer waits for the test.
        status = gateway._status if gateway._released.wait(WAIT) else 504
        payload = {"id": f"gw-{number}"} if 200 <= status < 300 else {"error": f"status {status}"}
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _HoldingServer(ThreadingHTTPServer):
    daemon_threads = True
    gateway: HoldingGateway


class HoldingGateway:
    """Records every request, sets ``received`` once it has one, and answers every request with the
    status given to :meth:`answer` only once the test calls it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[GatewayRequest] = []
        self._status = 200
        self._released = threading.Event()
        self.received = threading.Event()
        self._server = _HoldingServer(("127.0.0.1", 0), _HoldingHandler)
        self._server.gateway = self
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def requests(self) -> list[GatewayRequest]:
        with self._lock:
            return list(self._requests)

    def answer(self, status: int) -> None:
        """Answer the held request, and any later one, with ``status``."""
        self._status = status
        self._released.set()

    async def wait_for_request(self) -> None:
        assert await asyncio.to_thread(self.received.wait, WAIT), "the gateway received no request"

    def _record(self, request: GatewayRequest) -> int:
        with self._lock:
            self._requests.append(request)
            number = len(self._requests)
        self.received.set()
        return number

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._released.set()  # no handler thread stays blocked
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()


@pytest.fixture
def gateway() -> Iterator[HoldingGateway]:
    server = HoldingGateway()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=WAIT + 10) as http:
        yield http


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'kindly.db'}")


@pytest.fixture
def store(engine: Engine) -> AuditStore:
    return AuditStore(engine)


# --- activities and their inputs -----------------------------------------------------------------


def messaging(engine: Engine, client: httpx.AsyncClient, gateway: HoldingGateway) -> MessagingActivities:
    renderer = MessageRenderer(
        build_template_environment(),
        brand="Kindly Finance",
        hotline="400-000-0000",
        repayment_channels=["the app"],
    )
    return MessagingActivities(
        WebhookSmsProvider(client, f"{gateway.url}/sms"),
        FreeTextComposer(renderer),
        AuditStore(engine),
        SelfServiceLinks(engine, KEYRING),
        public_base_url="https://pay.lender.example",
        link_lifetime=timedelta(days=30),
    )


def handoffs(engine: Engine, client: httpx.AsyncClient, gateway: HoldingGateway) -> HandoffActivities:
    return HandoffActivities(
        client,
        AuditStore(engine),
        phone_url=f"{gateway.url}/calls",
        specialist_url=f"{gateway.url}/specialists",
        work_queue=WorkQueue(engine, KEYRING),
        cases=SpecialistCases(engine, KEYRING),
    )


def decision(name: str) -> AuditRecord:
    return AuditRecord(
        event_key=f"{KEY}/{name}", account_id=ACCOUNT, at=datetime.now(UTC), kind="scheduled", detail=name
    )


def sms_request(*decisions: AuditRecord) -> SendSmsInput:
    return SendSmsInput(
        account_id=ACCOUNT,
        idempotency_key=KEY,
        touchpoint=1,
        template=TemplateName.FIRST_OVERDUE,
        locale="en-US",
        to="+8613800138000",
        context=MessageContext(
            amount_due=Decimal("1200.00"),
            currency="CNY",
            due_date=dt.date(2026, 12, 15),
            reference_masked="****0001",
            days_past_due=3,
        ),
        decisions=list(decisions),
    )


HandoffCall = tuple[Callable[[Any], Coroutine[Any, Any, HandoffResult]], Any]
Handoff = Callable[[HandoffActivities], HandoffCall]
"""An activity method bound to its activities, and its input (``ActivityEnvironment.run`` must be given
the coroutine function itself to run it as an async activity)."""


def call_task(activities: HandoffActivities) -> HandoffCall:
    request = CallTaskInput(
        account_id=ACCOUNT,
        attempt=1,
        phone="+8613800138000",
        amount_due=Decimal("1200.00"),
        currency="CNY",
        reason="no answer to two reminders",
        idempotency_key=KEY,
        decisions=[decision("d1")],
    )
    return activities.create_call_task, request


def specialist(activities: HandoffActivities) -> HandoffCall:
    request = SpecialistHandoffInput(
        account_id=ACCOUNT,
        amount_due=Decimal("1200.00"),
        currency="CNY",
        reason="hardship reported",
        idempotency_key=KEY,
        decisions=[decision("d1")],
    )
    return activities.hand_off_to_specialist, request


HANDOFFS = [
    pytest.param(call_task, "/calls", "escalated_phone", id="call_task"),
    pytest.param(specialist, "/specialists", "escalated_specialist", id="specialist"),
]


def run_handoff(
    env: ActivityEnvironment, handoff: Handoff, activities: HandoffActivities
) -> Coroutine[Any, Any, HandoffResult]:
    method, argument = handoff(activities)
    return env.run(method, argument)


def environment(
    *, attempt: int = 2, cancel_on_first_heartbeat: bool = False
) -> tuple[ActivityEnvironment, list[Any]]:
    """An activity environment for a retry (by default) and the heartbeats it saw; optionally the answer
    to the attempt's first heartbeat carries the workflow's cancellation (as a real server's would)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    heartbeats: list[Any] = []

    def on_heartbeat(*details: Any) -> None:
        heartbeats.append(details)
        if cancel_on_first_heartbeat and len(heartbeats) == 1:
            env.cancel()

    env.on_heartbeat = on_heartbeat
    return env, heartbeats


def kinds(store: AuditStore) -> list[str]:
    return [row.kind for row in store.audit_for(ACCOUNT)]


# --- send_sms --------------------------------------------------------------------------------------


async def test_sms_cancelled_on_the_wire_then_accepted_counts_as_sent(
    store: AuditStore, engine: Engine, client: httpx.AsyncClient, gateway: HoldingGateway
) -> None:
    env, heartbeats = environment()
    attempt = asyncio.create_task(
        env.run(messaging(engine, client, gateway).send_sms, sms_request(decision("d1")))
    )
    await gateway.wait_for_request()
    env.cancel()
    # The cancellation is delivered to the attempt's task at the loop's next turn, before the
    # gateway's answer (socket I/O, several turns later) can reach it.
    gateway.answer(200)
    result = await attempt
    assert (result.status, result.provider_message_id) == ("sent", "gw-1")
    assert heartbeats == [()]  # the attempt announced itself, once
    [sent] = gateway.requests
    assert sent.path == "/sms" and sent.headers["idempotency-key"] == KEY
    [row] = store.outbox_for(ACCOUNT)
    assert (row.status, row.provider_message_id, row.attempts) == ("sent", "gw-1", 1)
    assert kinds(store) == ["scheduled", "sms_sent"]


@pytest.mark.parametrize("status", [503, 400])
async def test_sms_cancelled_on_the_wire_then_refused_stays_cancelled(
    store: AuditStore, engine: Engine, client: httpx.AsyncClient, gateway: HoldingGateway, status: int
) -> None:
    """Not taken (5xx, or 4xx): the cancellation is raised, not a retryable failure (Temporal would
    try again) nor a rejection; the row is left for ``cancel_send`` to close."""
    env, _ = environment()
    attempt = asyncio.create_task(env.run(messaging(engine, client, gateway).send_sms, sms_request()))
    await gateway.wait_for_request()
    env.cancel()
    gateway.answer(status)
    with pytest.raises(asyncio.CancelledError):
        await attempt
    assert len(gateway.requests) == 1
    [row] = store.outbox_for(ACCOUNT)
    assert (row.status, row.provider_message_id, row.attempts) == ("pending", None, 1)
    assert kinds(store) == []  # neither sms_sent nor sms_failed


async def test_sms_cancelled_before_its_request_sends_nothing(
    store: AuditStore, engine: Engine, client: httpx.AsyncClient, gateway: HoldingGateway
) -> None:
    env, heartbeats = environment(cancel_on_first_heartbeat=True)
    gateway.answer(200)  # were a request made, it would be taken at once
    with pytest.raises(asyncio.CancelledError):
        await env.run(messaging(engine, client, gateway).send_sms, sms_request(decision("d1")))
    assert heartbeats == [()]
    assert gateway.requests == []
    assert all(row.status == "pending" for row in store.outbox_for(ACCOUNT))
    assert "sms_sent" not in kinds(store)


async def test_a_first_attempt_does_not_heartbeat(
    store: AuditStore, engine: Engine, client: httpx.AsyncClient, gateway: HoldingGateway
) -> None:
    """A heartbeat is a billed action: a touchpoint's normal path (its first attempt) makes none."""
    env, heartbeats = environment(attempt=1)
    gateway.answer(200)
    result = await env.run(messaging(engine, client, gateway).send_sms, sms_request())
    assert result.status == "sent" and heartbeats == []


async def test_sms_for_a_cancelled_touchpoint_is_refused_for_good(
    store: AuditStore, engine: Engine, client: httpx.AsyncClient, gateway: HoldingGateway
) -> None:
    entry = OutboxEntry(
        idempotency_key=KEY, account_id=ACCOUNT, touchpoint=1, channel="sms", template="first_overdue"
    )
    assert store.cancel(entry, "repaid") == "cancelled"
    gateway.answer(200)
    env, _ = environment()
    with pytest.raises(ApplicationError) as raised:
        await env.run(messaging(engine, client, gateway).send_sms, sms_request(decision("d1")))
    assert (raised.value.type, raised.value.non_retryable) == ("TouchpointCancelled", True)
    assert "repaid" in str(raised.value)
    assert gateway.requests == []
    [row] = store.outbox_for(ACCOUNT)
    assert (row.status, row.detail, row.provider_message_id) == ("cancelled", "repaid", None)
    assert kinds(store) == ["scheduled"]  # the attempt's decisions are still written


# --- hand-offs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("handoff", "path", "kind"), HANDOFFS)
async def test_handoff_cancelled_on_the_wire_then_accepted_counts_as_accepted(
    engine: Engine,
    store: AuditStore,
    client: httpx.AsyncClient,
    gateway: HoldingGateway,
    handoff: Handoff,
    path: str,
    kind: str,
) -> None:
    env, heartbeats = environment()
    attempt = asyncio.create_task(run_handoff(env, handoff, handoffs(engine, client, gateway)))
    await gateway.wait_for_request()
    env.cancel()
    gateway.answer(200)
    result = await attempt
    assert result.status == "accepted"
    assert heartbeats == [()]
    [sent] = gateway.requests
    assert sent.path == path and sent.json()["idempotency_key"] == KEY
    [action] = [row for row in store.audit_for(ACCOUNT) if row.kind == kind]
    assert action.outcome == "accepted"


@pytest.mark.parametrize(("handoff", "path", "kind"), HANDOFFS)
async def test_handoff_cancelled_on_the_wire_then_refused_stays_cancelled(
    engine: Engine,
    store: AuditStore,
    client: httpx.AsyncClient,
    gateway: HoldingGateway,
    handoff: Handoff,
    path: str,
    kind: str,
) -> None:
    env, _ = environment()
    attempt = asyncio.create_task(run_handoff(env, handoff, handoffs(engine, client, gateway)))
    await gateway.wait_for_request()
    env.cancel()
    gateway.answer(503)
    with pytest.raises(asyncio.CancelledError):
        await attempt
    assert [request.path for request in gateway.requests] == [path]
    assert kinds(store) == ["scheduled"]  # the decisions, and no action row


@pytest.mark.parametrize(("handoff", "path", "kind"), HANDOFFS)
async def test_handoff_cancelled_before_its_request_sends_nothing(
    engine: Engine,
    store: AuditStore,
    client: httpx.AsyncClient,
    gateway: HoldingGateway,
    handoff: Handoff,
    path: str,
    kind: str,
) -> None:
    env, heartbeats = environment(cancel_on_first_heartbeat=True)
    gateway.answer(200)
    with pytest.raises(asyncio.CancelledError):
        await run_handoff(env, handoff, handoffs(engine, client, gateway))
    assert heartbeats == [()]
    assert gateway.requests == []
    assert kind not in kinds(store)
