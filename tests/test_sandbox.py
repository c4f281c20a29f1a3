"""The SMS sandbox as a real HTTP server: sends, deduplication, Twilio shape, inbox, replies; and
``python -m kindly.programs.sandbox`` (the compose service's command) as a process of its own."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from activities.sms_providers import OutgoingSms, TwilioSmsProvider, WebhookSmsProvider
from kindly.programs.sandbox import SandboxSettings, create_sandbox_app
from tests.asgi_server import serving
from tests.fault_helpers import REPO_ROOT, free_port, poll_until, stop_process
from tests.http_recorder import RecordingHttpServer


def _sms(key: str, body: str = "Dear customer, <b>CNY 1,500.00</b> is due.") -> OutgoingSms:
    return OutgoingSms(
        to="+8613800138000", body=body, idempotency_key=key, account_id="LN-1", template="due_today"
    )


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
        posted = inbound.requests_to("/webhooks/sms")
    assert len(posted) == 1
    assert posted[0].json()["from"] == "+8613800138000" and posted[0].json()["text"] == "STOP"
    timestamp = posted[0].headers["x-kindly-timestamp"]
    assert timestamp.isdigit() and abs(int(timestamp) - time.time()) < 300
    signed = timestamp.encode() + b"." + posted[0].body
    expected = "sha256=" + hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    assert posted[0].headers["x-kindly-signature"] == expected


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
    env = {key: value for key, value in os.environ.items() if not key.startswith("COLLECTIONS_")}
    env |= {"PYTHONUNBUFFERED": "1", f"{prefix}HOST": "127.0.0.1", f"{prefix}PORT": str(port)}
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
