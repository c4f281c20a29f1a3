"""The sandbox round trip: an SMS goes out, the customer replies in the sandbox, the workflow sees it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from kindly.api.app import create_app
from kindly.api.settings import ApiSettings
from kindly.db import make_engine
from kindly.sandbox import SandboxSettings, create_sandbox_app
from kindly.search_attributes import ensure_search_attributes
from kindly.settings import Settings
from tests.asgi_server import serving
from tests.conftest import eventually
from tests.lifecycle_helpers import STARTED, kinds, local_today, make_account, start, status, timeline
from worker import build_worker


async def test_reply_typed_in_the_sandbox_reaches_the_workflow(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    secret = SecretStr("round-trip-secret")
    api_settings = ApiSettings(api_key=SecretStr("k"), webhook_secret=secret)
    engine = make_engine(settings.database_url)
    await ensure_search_attributes(env.client, env.client.namespace)
    api = create_app(env.client, settings, api_settings, engine)
    async with serving(api) as api_url:
        sandbox_app = create_sandbox_app(
            SandboxSettings(inbound_url=f"{api_url}/webhooks/sms", webhook_secret=secret)
        )
        async with serving(sandbox_app) as sandbox_url:
            through_sandbox = settings.model_copy(
                update={
                    "sms_webhook_url": f"{sandbox_url}/sms",
                    "task_queue": f"round-trip-{uuid.uuid4().hex[:8]}",
                }
            )
            async with build_worker(env.client, through_sandbox) as worker, worker:
                account = make_account((await local_today(env)) - timedelta(days=1))
                handle = await start(env.client, through_sandbox.task_queue, account)
                await env.sleep(timedelta(days=1))
                await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
                async with httpx.AsyncClient(base_url=sandbox_url) as http:
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
                await handle.terminate("test over")
                STARTED.remove(handle)
