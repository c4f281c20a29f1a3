"""The SMS sandbox as a real HTTP server: sends, deduplication, Twilio shape, inbox, replies."""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
from pydantic import SecretStr

from activities.sms_providers import OutgoingSms, TwilioSmsProvider, WebhookSmsProvider
from kindly.sandbox import SandboxSettings, create_sandbox_app
from tests.asgi_server import serving
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
