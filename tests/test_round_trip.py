"""Round trips through the sandbox and the API: replies and delivery receipts reach the workflow."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from kindly.programs.api.app import create_app
from kindly.programs.api.security import kindly_headers, twilio_signature
from kindly.programs.api.settings import ApiSettings
from kindly.programs.sandbox import SandboxSettings, create_sandbox_app
from kindly.programs.temporal import ensure_search_attributes
from kindly.programs.worker import build_worker
from kindly.settings import Settings
from kindly.store import AuditStore, make_engine
from tests.asgi_server import serving
from tests.conftest import eventually
from tests.lifecycle_helpers import STARTED, kinds, local_today, make_account, start, status, timeline
from tests.test_api import assert_no_phone_in

SECRET = "round-trip-secret"


@dataclass
class Stack:
    api_url: str
    sandbox_url: str
    task_queue: str
    audit: AuditStore


@asynccontextmanager
async def stack(
    env: WorkflowEnvironment, settings: Settings, *, receipts: bool = True
) -> AsyncIterator[Stack]:
    """API, sandbox (as gateway, replying and, unless ``receipts`` is False, sending receipts to the
    API) and a worker."""
    api_settings = ApiSettings(
        api_key=SecretStr("k"), webhook_secret=SecretStr(SECRET), twilio_auth_token=SecretStr(SECRET)
    )
    engine = make_engine(settings.database_url)
    await ensure_search_attributes(env.client, env.client.namespace)
    async with serving(create_app(env.client, settings, api_settings, engine)) as api_url:
        sandbox_settings = SandboxSettings(
            inbound_url=f"{api_url}/webhooks/sms",
            receipts_url=f"{api_url}/webhooks/receipts" if receipts else None,
            webhook_secret=SecretStr(SECRET),
        )
        async with serving(create_sandbox_app(sandbox_settings)) as sandbox_url:
            through_sandbox = settings.model_copy(
                update={
                    "sms_webhook_url": f"{sandbox_url}/sms",
                    "task_queue": f"round-trip-{uuid.uuid4().hex[:8]}",
                }
            )
            async with build_worker(env.client, through_sandbox) as worker, worker:
                yield Stack(api_url, sandbox_url, through_sandbox.task_queue, AuditStore(engine))


async def test_reply_typed_in_the_sandbox_reaches_the_workflow(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    async with stack(env, settings) as parts, httpx.AsyncClient(base_url=parts.sandbox_url) as http:
        account = make_account((await local_today(env)) - timedelta(days=1))
        handle = await start(env.client, parts.task_queue, account)
        await env.sleep(timedelta(days=1))
        await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
        inbox = (await http.get("/api/messages", params={"phone": account.phone})).json()
        assert [m["template"] for m in inbox] == ["first_overdue"]
        answer = await http.post(
            f"/inbox/{account.phone}/reply", data={"text": "HELP"}, follow_redirects=False
        )
        assert answer.status_code == 303
        await eventually(lambda: timeline(handle), lambda t: "reply_received" in kinds(t))
        await env.sleep(timedelta(hours=14))
        await eventually(lambda: status(handle), lambda s: s.sms_sent == 2)
        inbox = (await http.get("/api/messages", params={"phone": account.phone})).json()
        assert [(m["direction"], m["template"]) for m in inbox] == [
            ("out", "first_overdue"),
            ("in", None),
            ("out", "help"),
        ]
        receipts = await eventually(lambda: _receipts(parts, account.account_id), lambda rows: len(rows) == 2)
        assert {row.outcome for row in receipts} == {"delivered"}
        # Sent, replied to, receipts in: the database (outbox, audit log, index) has no number in clear.
        assert_no_phone_in(Path(settings.database_url.removeprefix("sqlite:///")), [account.phone])
        await handle.terminate("test over")
        STARTED.remove(handle)


async def _receipts(parts: Stack, account_id: str) -> list[Any]:
    return [row for row in parts.audit.audit_for(account_id) if row.kind == "delivery_receipt"]


async def test_undeliverable_number_stops_sms_and_escalates_by_phone(
    env: WorkflowEnvironment, settings: Settings, gateway: Any
) -> None:
    async with stack(env, settings) as parts:
        account = make_account((await local_today(env)) - timedelta(days=1), phone="+8613800130000")
        handle = await start(env.client, parts.task_queue, account)
        await env.sleep(timedelta(days=1))
        entries = await eventually(lambda: timeline(handle), lambda t: "sms_undeliverable" in kinds(t))
        assert kinds(entries).count("sms_sent") == 1
        await env.sleep(timedelta(days=7))
        current = await eventually(lambda: status(handle), lambda s: s.stage == "phone")
        assert current.sms_sent == 1, "no SMS after the carrier said the number is dead"
        assert len(gateway.requests_to("/phone")) == 1

        sent = parts.audit.outbox_for(account.account_id)[0]
        receipt = json.dumps({"message_id": sent.provider_message_id, "status": "failed", "permanent": True})
        async with httpx.AsyncClient(base_url=parts.api_url) as http:
            signed = kindly_headers(SECRET, receipt.encode())
            again = await http.post("/webhooks/receipts", content=receipt, headers=signed)
            assert again.json()["status"] == "duplicate"
            replayed = await http.post("/webhooks/receipts", content=receipt, headers=signed)
            assert replayed.status_code == 403 and "already used" in replayed.text
            forged = await http.post(
                "/webhooks/receipts",
                content=receipt,
                headers={**signed, "X-Kindly-Signature": "sha256=00"},
            )
            assert forged.status_code == 403
            unknown = json.dumps({"message_id": "nope", "status": "delivered"})
            answer = await http.post(
                "/webhooks/receipts", content=unknown, headers=kindly_headers(SECRET, unknown.encode())
            )
            assert answer.json()["status"] == "unmatched"
            bad = json.dumps({"message_id": "x", "status": "lost"})
            answer = await http.post(
                "/webhooks/receipts", content=bad, headers=kindly_headers(SECRET, bad.encode())
            )
            assert answer.status_code == 422 and "status" in answer.text
        assert kinds(await timeline(handle)).count("sms_undeliverable") == 1
        await handle.terminate("test over")
        STARTED.remove(handle)


async def test_twilio_status_callback_for_a_dead_number_stops_sms(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    # Twilio's callback is the only receipt here: a sandbox "delivered" first would be final.
    async with stack(env, settings, receipts=False) as parts:
        account = make_account((await local_today(env)) - timedelta(days=1), phone="+8613800130001")
        handle = await start(env.client, parts.task_queue, account)
        await env.sleep(timedelta(days=1))
        await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
        sent = parts.audit.outbox_for(account.account_id)[0]
        assert sent.provider_message_id is not None
        url = f"{parts.api_url}/webhooks/receipts/twilio"
        form = {"MessageSid": sent.provider_message_id, "MessageStatus": "undelivered", "ErrorCode": "30006"}
        async with httpx.AsyncClient() as http:
            forged = await http.post(url, data=form, headers={"X-Twilio-Signature": "bogus"})
            assert forged.status_code == 403
            signature = twilio_signature(SECRET, url, form.items())
            answer = await http.post(url, data=form, headers={"X-Twilio-Signature": signature})
            assert answer.status_code == 200 and answer.json()["status"] == "recorded"
        await eventually(lambda: timeline(handle), lambda t: "sms_undeliverable" in kinds(t))
        await handle.terminate("test over")
        STARTED.remove(handle)
