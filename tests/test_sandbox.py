"""The SMS sandbox as a real HTTP server: sends, deduplication, Twilio shape, inbox, replies, messages
kept across a restart with their account and delivery status; and ``python -m kindly.programs.sandbox``
(the compose service's command) as a process of its own."""

from __future__ import annotations

import hashlib
import hmac
import html
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import SecretStr

from activities.sms_providers import OutgoingSms, TwilioSmsProvider, WebhookSmsProvider
from kindly.programs.sandbox import Mailbox, SandboxSettings, create_sandbox_app
from tests.asgi_server import serving
from tests.conftest import eventually
from tests.fault_helpers import REPO_ROOT, free_port, poll_until, stop_process
from tests.http_recorder import RecordingHttpServer


def _sms(
    key: str,
    body: str = "Dear customer, <b>CNY 1,500.00</b> is due.",
    *,
    to: str = "+8613800138000",
    account_id: str = "LN-1",
) -> OutgoingSms:
    return OutgoingSms(to=to, body=body, idempotency_key=key, account_id=account_id, template="due_today")


async def test_webhook_sends_are_kept_once_per_idempotency_key() -> None:
    app = create_sandbox_app(SandboxSettings())
    async with serving(app) as url, httpx.AsyncClient() as client:
        provider = WebhookSmsProvider(client, f"{url}/sms")
        first = await provider.send(_sms("k-1"))
        again = await provider.send(_sms("k-1"))
        other = await provider.send(_sms("k-2"))
        messages = (await client.get(f"{url}/api/messages")).json()
    assert first.provider_message_id == again.provider_message_id != other.provider_message_id
    assert [m["idempotency_key"] for m in messages] == ["k-1", "k-2"]


async def test_twilio_shape_is_accepted() -> None:
    app = create_sandbox_app(SandboxSettings())
    async with serving(app) as url, httpx.AsyncClient() as client:
        provider = TwilioSmsProvider(
            client, account_sid="AC1", auth_token="t", from_number="+15550001111", api_base=url
        )
        receipt = await provider.send(_sms("k-9"))
        messages = (await client.get(f"{url}/api/messages", params={"phone": "+8613800138000"})).json()
    assert receipt.provider_message_id and messages[0]["body"].startswith("Dear customer")


async def test_inbox_page_escapes_and_a_reply_is_posted_signed() -> None:
    inbound = RecordingHttpServer()
    with inbound:
        settings = SandboxSettings(
            inbound_url=f"{inbound.url}/webhooks/sms", webhook_secret=SecretStr("s3cret")
        )
        app = create_sandbox_app(settings)
        async with serving(app) as url, httpx.AsyncClient() as client:
            await WebhookSmsProvider(client, f"{url}/sms").send(_sms("k-1"))
            page = (await client.get(f"{url}/inbox/+8613800138000")).text
            assert "&lt;b&gt;CNY 1,500.00&lt;/b&gt;" in page and "<b>CNY" not in page
            answer = await client.post(
                f"{url}/inbox/+8613800138000/reply", data={"text": "STOP"}, follow_redirects=False
            )
            assert answer.status_code == 303
            inbound.respond_with(403)
            refused = await client.post(f"{url}/inbox/+8613800138000/reply", data={"text": "HELP"})
            assert refused.status_code == 502
            replies = [m for m in (await client.get(f"{url}/api/messages")).json() if m["direction"] == "in"]
            page = (await client.get(f"{url}/inbox/+8613800138000")).text
        assert [(m["body"], m["status"]) for m in replies] == [("STOP", "forwarded"), ("HELP", "refused")]
        assert "forwarded · Kindly: HTTP 200" in page and "refused · Kindly: HTTP 403" in page
        posted = inbound.requests_to("/webhooks/sms")[:1]
    assert len(posted) == 1
    assert posted[0].json()["from"] == "+8613800138000" and posted[0].json()["text"] == "STOP"
    timestamp = posted[0].headers["x-kindly-timestamp"]
    assert timestamp.isdigit() and abs(int(timestamp) - time.time()) < 300
    signed = timestamp.encode() + b"." + posted[0].body
    expected = "sha256=" + hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    assert posted[0].headers["x-kindly-signature"] == expected


@pytest.mark.parametrize(
    ("body", "link"),
    [
        (
            'Pay <b>now</b> & "soon". Pay, promise or choose a plan: https://pay.lender.example/p/'
            "Ab3_-x9Zq0Wv8Ut7Sr6Qp5",
            "https://pay.lender.example/p/Ab3_-x9Zq0Wv8Ut7Sr6Qp5",
        ),
        (
            "请还款<script>alert(1)</script>。回复TD退订。还款、承诺还款或申请分期：http://127.0.0.1:8000/p/"
            "Ab3_-x9Zq0Wv8Ut7Sr6Qp5",
            "http://127.0.0.1:8000/p/Ab3_-x9Zq0Wv8Ut7Sr6Qp5",
        ),
    ],
)
async def test_inbox_page_makes_the_self_service_link_clickable_and_nothing_else(
    body: str, link: str
) -> None:
    app = create_sandbox_app(SandboxSettings())
    async with serving(app) as url, httpx.AsyncClient() as client:
        await WebhookSmsProvider(client, f"{url}/sms").send(_sms("k-link", body))
        # A message that only looks like markup, or a link to another page, stays text.
        await WebhookSmsProvider(client, f"{url}/sms").send(
            _sms("k-other", 'See <a href="https://evil.example/p/x">here</a> or javascript:alert(1)')
        )
        page = (await client.get(f"{url}/inbox/+8613800138000")).text
    messages = re.findall(r'<div class="out">.*?<p>(.*?)</p>', page)
    assert len(messages) == 2
    linked, other = messages
    assert linked == html.escape(body).replace(link, f'<a href="{link}">{link}</a>')
    assert linked.count("<a ") == 1 and "<b>" not in linked and "<script>" not in linked
    assert "<a " not in other and "&lt;a href=&quot;https://evil.example/p/x&quot;&gt;" in other


async def test_bad_send_gets_422_naming_the_field() -> None:
    app = create_sandbox_app(SandboxSettings())
    async with serving(app) as url, httpx.AsyncClient() as client:
        response = await client.post(f"{url}/sms", json={"to": "+861", "idempotency_key": "k"})
    assert response.status_code == 422 and "body" in response.text


async def test_python_m_kindly_sandbox_serves_on_its_settings_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The process listens where its ``COLLECTIONS_SANDBOX_*`` variables say, serves the real app,
    and on SIGTERM shuts down cleanly (uvicorn finishes, then re-raises the signal) well before
    ``stop_process`` would resort to SIGKILL."""
    prefix = str(SandboxSettings.model_config["env_prefix"])
    port = free_port()
    database = tmp_path / "data" / "sandbox.sqlite3"
    env = {key: value for key, value in os.environ.items() if not key.startswith("COLLECTIONS_")}
    env |= {"PYTHONUNBUFFERED": "1", f"{prefix}HOST": "127.0.0.1", f"{prefix}PORT": str(port)}
    env[f"{prefix}DATABASE"] = str(database)
    log_path = tmp_path / "sandbox.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kindly.programs.sandbox"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def alive() -> None:
        if process.poll() is not None:
            pytest.fail(f"the sandbox exited early with code {process.returncode}\n{log_path.read_text()}")

    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            index = await poll_until(
                lambda: client.get(f"{url}/"),
                lambda response: response.status_code == 200,
                what=f"python -m kindly.programs.sandbox to answer on {url}",
                timeout=30,
                interval=0.1,
                alive=alive,
            )
            assert "Kindly SMS sandbox" in index.text
            sent = await WebhookSmsProvider(client, f"{url}/sms").send(_sms("k-main"))
            messages = (await client.get(f"{url}/api/messages")).json()
        assert [(m["id"], m["idempotency_key"]) for m in messages] == [(sent.provider_message_id, "k-main")]
    finally:
        code = stop_process(process)
    output = log_path.read_text()
    assert code in (0, -signal.SIGTERM), f"exit code {code}\n{output}"
    assert "Finished server process" in output, output
    kept = Mailbox(database)
    assert [(m.id, m.account_id) for m in kept.messages] == [(sent.provider_message_id, "LN-1")]
    kept.close()


async def test_messages_survive_a_restart_on_the_same_file(tmp_path: Path) -> None:
    """A new app on the same file shows what the old one kept, still deduplicates its keys, and
    never gives a new message an id it gave before."""
    database = tmp_path / "sandbox.sqlite3"
    first = Mailbox(database)
    async with serving(create_sandbox_app(SandboxSettings(), first)) as url, httpx.AsyncClient() as client:
        provider = WebhookSmsProvider(client, f"{url}/sms")
        sent = await provider.send(_sms("k-1"))
        await client.post(f"{url}/inbox/+8613800138000/reply", data={"text": "HELP"})
    first.close()

    second = Mailbox(database)
    async with serving(create_sandbox_app(SandboxSettings(), second)) as url, httpx.AsyncClient() as client:
        provider = WebhookSmsProvider(client, f"{url}/sms")
        before = (await client.get(f"{url}/api/messages")).json()
        page = (await client.get(f"{url}/inbox/+8613800138000")).text
        again = await provider.send(_sms("k-1"))
        other = await provider.send(_sms("k-2"))
        after = (await client.get(f"{url}/api/messages")).json()
    second.close()
    assert [(m["id"], m["direction"], m["body"][:4]) for m in before] == [
        (sent.provider_message_id, "out", "Dear"),
        ("SB000002", "in", "HELP"),
    ]
    assert "&lt;b&gt;CNY 1,500.00&lt;/b&gt;" in page and "HELP" in page and "account LN-1" in page
    assert again.provider_message_id == sent.provider_message_id
    assert other.provider_message_id not in {m["id"] for m in before}
    assert [m["idempotency_key"] for m in after] == ["k-1", None, "k-2"]


async def test_inbox_shows_account_time_and_delivery_status() -> None:
    """Each message shows its account and its status: accepted, then delivered or, for a dead
    number, failed with the carrier's error, and what Kindly answered to the receipt."""
    with RecordingHttpServer() as kindly:
        settings = SandboxSettings(receipts_url=f"{kindly.url}/webhooks/receipts")
        async with serving(create_sandbox_app(settings)) as url, httpx.AsyncClient() as client:
            provider = WebhookSmsProvider(client, f"{url}/sms")
            alive = await provider.send(_sms("k-1", account_id="LN-<7>"))
            dead = await provider.send(_sms("k-2", to="+8613800130000", account_id="LN-8"))

            async def messages() -> list[dict[str, Any]]:
                return list((await client.get(f"{url}/api/messages")).json())

            done = await eventually(messages, lambda ms: all(m["kindly_answer"] == "HTTP 200" for m in ms))
            alive_page = (await client.get(f"{url}/inbox/+8613800138000")).text
            dead_page = (await client.get(f"{url}/inbox/+8613800130000")).text
        receipts = {r.json()["message_id"]: r.json() for r in kindly.requests_to("/webhooks/receipts")}
    assert [(m["account_id"], m["status"], m["error_code"]) for m in done] == [
        ("LN-<7>", "delivered", None),
        ("LN-8", "failed", "30005"),
    ]
    assert receipts[alive.provider_message_id or ""]["status"] == "delivered"
    assert receipts[dead.provider_message_id or ""]["permanent"] is True
    assert "account LN-&lt;7&gt;" in alive_page and "LN-<7>" not in alive_page
    assert "delivered · Kindly: HTTP 200" in alive_page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", alive_page)
    assert "account LN-8" in dead_page and "failed (error 30005) · Kindly: HTTP 200" in dead_page


async def test_without_a_receipts_webhook_a_send_stays_accepted() -> None:
    app = create_sandbox_app(SandboxSettings())
    async with serving(app) as url, httpx.AsyncClient() as client:
        await WebhookSmsProvider(client, f"{url}/sms").send(_sms("k-1"))
        page = (await client.get(f"{url}/inbox/+8613800138000")).text
    assert '<small class="status accepted">accepted</small>' in page


async def test_twilio_send_gets_its_account_from_kindlys_answer_to_the_receipt() -> None:
    """Twilio's shape carries no account id; Kindly's receipts webhook names it once it matches the
    message (``unmatched`` first, as before Kindly recorded the send: the sandbox sends it again)."""
    answers = [{"status": "unmatched"}, {"status": "recorded", "account_id": "LN-9"}]
    attempts: list[dict[str, Any]] = []
    kindly = FastAPI()

    @kindly.post("/webhooks/receipts")
    async def receipt(request: Request) -> dict[str, Any]:
        attempts.append(await request.json())
        return answers[min(len(attempts), len(answers)) - 1]

    async with serving(kindly) as kindly_url:
        settings = SandboxSettings(receipts_url=f"{kindly_url}/webhooks/receipts")
        async with serving(create_sandbox_app(settings)) as url, httpx.AsyncClient() as client:
            provider = TwilioSmsProvider(
                client, account_sid="AC1", auth_token="t", from_number="+15550001111", api_base=url
            )
            await provider.send(_sms("k-9"))

            async def messages() -> list[dict[str, Any]]:
                return list((await client.get(f"{url}/api/messages")).json())

            done = await eventually(messages, lambda ms: ms[0]["kindly_answer"] == "recorded")
            index = (await client.get(f"{url}/")).text
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert done[0]["account_id"] == "LN-9" and done[0]["status"] == "delivered"
    assert re.search(r"\+8613800138000</a></td><td class=\"accounts\">LN-9</td>", index), index


async def test_inbox_list_shows_the_accounts_seen_for_each_number(tmp_path: Path) -> None:
    app = create_sandbox_app(SandboxSettings(), Mailbox(tmp_path / "sandbox.sqlite3"))
    async with serving(app) as url, httpx.AsyncClient() as client:
        provider = WebhookSmsProvider(client, f"{url}/sms")
        await provider.send(_sms("k-1", account_id="LN-1"))
        await provider.send(_sms("k-2", account_id="LN-2"))
        await provider.send(_sms("k-3", account_id="LN-1"))
        await provider.send(_sms("k-4", to="+15551234567", account_id="US-<1>"))
        index = (await client.get(f"{url}/")).text
    rows = dict(re.findall(r'<tr><td><a href="/inbox/([^"]+)">.*?<td class="accounts">([^<]*)</td>', index))
    assert rows == {"+15551234567": "US-&lt;1&gt;", "+8613800138000": "LN-1, LN-2"}
    assert "US-<1>" not in index
