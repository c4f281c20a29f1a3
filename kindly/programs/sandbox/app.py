"""The SMS sandbox: a gateway that accepts sends, keeps them, and lets a person reply.

It speaks the webhook provider's JSON (``POST /sms``) and the shape of Twilio's Messages API, honours
the idempotency key (the same key twice is one message, as a real gateway's deduplication would be),
shows an inbox per phone number at ``/``, and posts a typed reply to Kindly's inbound webhook signed
like any other caller must sign it: ``X-Kindly-Timestamp`` (unix seconds) and ``X-Kindly-Signature``
(``sha256=`` and the hex HMAC-SHA256 of ``"<timestamp>.<body>"``), fresh for every request. This is
an implementation of its own, not Kindly's, so the tests check the documented scheme.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Form, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COLLECTIONS_SANDBOX_", extra="ignore")

    inbound_url: str | None = None
    """Kindly's JSON inbound-SMS webhook that typed replies are posted to."""
    webhook_secret: SecretStr | None = None
    """Shared secret of the ``X-Kindly-Signature`` HMAC-SHA256 over ``"<timestamp>.<body>"``."""
    receipts_url: str | None = None
    """Kindly's JSON delivery-receipt webhook; each accepted send gets a receipt there."""
    undeliverable_suffix: str = "0000"
    """Numbers ending so behave like dead numbers: their receipt is a permanent failure."""
    host: str = "127.0.0.1"
    port: int = 8025


class SandboxSms(BaseModel):
    to: str
    body: str
    idempotency_key: str
    account_id: str | None = None
    template: str | None = None


@dataclass
class StoredMessage:
    id: str
    direction: str  # "out" (to the customer) or "in" (the customer's reply)
    phone: str
    body: str
    at: datetime
    template: str | None = None
    idempotency_key: str | None = None


@dataclass
class Mailbox:
    """Every message the sandbox saw, by phone number; safe to use from several requests."""

    messages: list[StoredMessage] = field(default_factory=list)
    by_key: dict[str, StoredMessage] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, phone: str, body: str, key: str, template: str | None) -> tuple[StoredMessage, bool]:
        """Store an outgoing message once per idempotency key; returns it and whether it was new."""
        with self.lock:
            if key in self.by_key:
                return self.by_key[key], False
            message = StoredMessage(
                id=f"SB{len(self.messages) + 1:06d}",
                direction="out",
                phone=phone,
                body=body,
                at=datetime.now(UTC),
                template=template,
                idempotency_key=key,
            )
            self.messages.append(message)
            self.by_key[key] = message
            return message, True

    def record_reply(self, phone: str, body: str) -> StoredMessage:
        with self.lock:
            message = StoredMessage(
                id=f"SB{len(self.messages) + 1:06d}",
                direction="in",
                phone=phone,
                body=body,
                at=datetime.now(UTC),
            )
            self.messages.append(message)
            return message

    def for_phone(self, phone: str) -> list[StoredMessage]:
        with self.lock:
            return [m for m in self.messages if m.phone == phone]

    def phones(self) -> list[str]:
        with self.lock:
            return sorted({m.phone for m in self.messages})


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Kindly-Signature`` header value for a body sent at ``timestamp`` (unix seconds)."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signed_headers(settings: SandboxSettings, body: bytes) -> dict[str, str]:
    """JSON content type and, with a secret, the timestamp and signature headers, signed now."""
    headers = {"Content-Type": "application/json"}
    if settings.webhook_secret is not None:
        now = int(time.time())
        headers["X-Kindly-Timestamp"] = str(now)
        headers["X-Kindly-Signature"] = sign(settings.webhook_secret.get_secret_value(), body, now)
    return headers


def create_sandbox_app(settings: SandboxSettings, mailbox: Mailbox | None = None) -> FastAPI:
    app = FastAPI(title="Kindly SMS sandbox")
    box = mailbox or Mailbox()
    app.state.mailbox = box

    @app.post("/sms")
    async def send_sms(
        sms: SandboxSms,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        key = idempotency_key or sms.idempotency_key
        message, new = box.accept(sms.to, sms.body, key, sms.template)
        if new:
            _receipt_later(settings, message)
        return {"id": message.id, "duplicate": not new}

    @app.post("/2010-04-01/Accounts/{account_sid}/Messages.json", status_code=201)
    async def twilio_send(
        account_sid: str,
        to: Annotated[str, Form(alias="To")],
        body: Annotated[str, Form(alias="Body")],
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        key = idempotency_key or f"twilio:{to}:{hashlib.sha256(body.encode()).hexdigest()}"
        message, new = box.accept(to, body, key, None)
        if new:
            _receipt_later(settings, message)
        return {"sid": message.id, "account_sid": account_sid, "status": "queued", "to": to}

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        links = "".join(
            f'<li><a href="/inbox/{html.escape(p)}">{html.escape(p)}</a></li>' for p in box.phones()
        )
        return _page("Kindly SMS sandbox", f"<ul>{links or '<li>No messages yet.</li>'}</ul>")

    @app.get("/inbox/{phone}", response_class=HTMLResponse)
    async def inbox(phone: str) -> str:
        rows = "".join(
            f'<div class="{m.direction}"><small>{m.at:%Y-%m-%d %H:%M:%S} UTC'
            f"{' · ' + html.escape(m.template) if m.template else ''}</small>"
            f"<p>{html.escape(m.body)}</p></div>"
            for m in box.for_phone(phone)
        )
        form = (
            f'<form method="post" action="/inbox/{html.escape(phone)}/reply">'
            '<input name="text" placeholder="Reply as the customer (try STOP or HELP)" size="50">'
            "<button>Send reply</button></form>"
        )
        return _page(f"Inbox {html.escape(phone)}", rows + form)

    @app.post("/inbox/{phone}/reply")
    async def reply(phone: str, text: Annotated[str, Form()]) -> RedirectResponse:
        message = box.record_reply(phone, text)
        await _post_reply(settings, phone, text, message.id)
        return RedirectResponse(f"/inbox/{phone}", status_code=303)

    @app.get("/api/messages")
    async def messages(request: Request) -> list[dict[str, Any]]:
        phone = request.query_params.get("phone")
        chosen = box.for_phone(phone) if phone else list(box.messages)
        return [
            {
                "id": m.id,
                "direction": m.direction,
                "phone": m.phone,
                "body": m.body,
                "template": m.template,
                "idempotency_key": m.idempotency_key,
                "at": m.at.isoformat(),
            }
            for m in chosen
        ]

    return app


_background: set[asyncio.Task[None]] = set()


def _receipt_later(settings: SandboxSettings, message: StoredMessage) -> None:
    """Send the delivery receipt after answering, as a carrier does, without blocking the send."""
    if settings.receipts_url is None:
        return
    task = asyncio.create_task(_post_receipt(settings, message))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _post_receipt(settings: SandboxSettings, message: StoredMessage) -> None:
    assert settings.receipts_url is not None
    dead = message.phone.endswith(settings.undeliverable_suffix)
    receipt = {
        "message_id": message.id,
        "status": "failed" if dead else "delivered",
        "error_code": "30005" if dead else None,
        "permanent": dead,
    }
    # Kindly records the provider's id when the send returns: until then the receipt is
    # "unmatched", and a carrier would simply send it again a little later. Each attempt is signed
    # afresh and numbered, so no two attempts carry the same signature (which Kindly would refuse
    # as a replay).
    async with httpx.AsyncClient(timeout=10) as client:
        for attempt in range(20):
            body = json.dumps({**receipt, "attempt": attempt + 1}).encode()
            headers = signed_headers(settings, body)
            try:
                answer = await client.post(settings.receipts_url, content=body, headers=headers)
                if answer.status_code < 300 and answer.json().get("status") != "unmatched":
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(min(0.1 * 2**attempt, 5.0))


async def _post_reply(settings: SandboxSettings, phone: str, text: str, message_id: str) -> None:
    if settings.inbound_url is None:
        return
    body = json.dumps({"from": phone, "text": text, "message_id": message_id}).encode()
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            settings.inbound_url, content=body, headers=signed_headers(settings, body)
        )
    if response.status_code >= 400:
        raise HTTPException(502, f"Kindly's inbound webhook answered {response.status_code}")


def _page(title: str, content: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}"
        ".out{background:#eef;padding:.3em 1em;margin:.5em 0;border-radius:8px}"
        ".in{background:#efe;padding:.3em 1em;margin:.5em 0 .5em 4em;border-radius:8px}</style>"
        f"</head><body><h1>{title}</h1><p><a href='/'>All inboxes</a></p>{content}</body></html>"
    )
