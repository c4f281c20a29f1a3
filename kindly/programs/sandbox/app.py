"""The SMS sandbox: a gateway that accepts sends, keeps them, and lets a person reply.

It speaks the webhook provider's JSON (``POST /sms``) and the shape of Twilio's Messages API, honours
the idempotency key (the same key twice is one message, as a real gateway's deduplication would be),
keeps every message in SQLite (``store.py``) so a restart loses none, shows an inbox per phone
number at ``/`` (each message with its account, time and delivery status, and its self-service link to
click), sends each accepted message's delivery receipt to Kindly, and posts a typed reply to Kindly's
inbound webhook signed like any other caller must sign it: ``X-Kindly-Timestamp`` (unix seconds) and
``X-Kindly-Signature`` (``sha256=`` and the hex HMAC-SHA256 of ``"<timestamp>.<body>"``), fresh for
every request. This is an implementation of its own, not Kindly's, so the tests check the documented
scheme.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import re
import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Form, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel

from kindly.programs.sandbox import aliyun, tencent
from kindly.programs.sandbox.config import SandboxSettings
from kindly.programs.sandbox.limits import FrequencyLimiter
from kindly.programs.sandbox.store import Inbox, Mailbox, StoredMessage

__all__ = ["Mailbox", "SandboxSettings", "StoredMessage", "create_sandbox_app", "sign", "signed_headers"]

ReceiptLater = Callable[[SandboxSettings, Mailbox, StoredMessage], None]


class SandboxSms(BaseModel):
    to: str
    body: str
    idempotency_key: str
    account_id: str | None = None
    template: str | None = None


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
    """The sandbox's web app. ``mailbox`` keeps the messages: the programs that serve the sandbox open
    the file ``settings.database`` names; without one they live in memory for this app's life, as
    tests and the bench want."""
    app = FastAPI(title="Kindly SMS sandbox")
    box = mailbox if mailbox is not None else Mailbox()
    app.state.mailbox = box
    limiter = FrequencyLimiter(
        per_minute=settings.frequency_per_minute,
        per_hour=settings.frequency_per_hour,
        per_day=settings.frequency_per_day,
    )
    app.include_router(aliyun.router(settings, box, limiter, _receipt_later))
    app.include_router(tencent.router(settings, box, limiter, _receipt_later))

    @app.post("/sms")
    async def send_sms(
        sms: SandboxSms,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        key = idempotency_key or sms.idempotency_key
        message, new = box.accept(sms.to, sms.body, key, sms.template, sms.account_id)
        if new:
            _receipt_later(settings, box, message)
        return {"id": message.id, "duplicate": not new}

    @app.post("/2010-04-01/Accounts/{account_sid}/Messages.json", status_code=201)
    async def twilio_send(
        account_sid: str,
        to: Annotated[str, Form(alias="To")],
        body: Annotated[str, Form(alias="Body")],
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        # Twilio's shape names no account: Kindly's answer to the delivery receipt does.
        key = idempotency_key or f"twilio:{to}:{hashlib.sha256(body.encode()).hexdigest()}"
        message, new = box.accept(to, body, key, None)
        if new:
            _receipt_later(settings, box, message)
        return {"sid": message.id, "account_sid": account_sid, "status": "queued", "to": to}

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        rows = "".join(_inbox_row(inbox) for inbox in box.inboxes())
        table = (
            "<table><tr><th>Phone number</th><th>Accounts</th><th>Messages</th><th>Last (UTC)</th></tr>"
            f"{rows}</table>"
            if rows
            else "<p>No messages yet.</p>"
        )
        return _page("Kindly SMS sandbox", table)

    @app.get("/inbox/{phone}", response_class=HTMLResponse)
    async def inbox(phone: str) -> str:
        rows = "".join(_message_box(m) for m in box.for_phone(phone))
        form = (
            f'<form method="post" action="{html.escape(_inbox_path(phone))}/reply">'
            '<input name="text" placeholder="Reply as the customer (try STOP or HELP)" size="50">'
            "<button>Send reply</button></form>"
        )
        return _page(f"Inbox {html.escape(phone)}", rows + form)

    @app.post("/inbox/{phone}/reply")
    async def reply(phone: str, text: Annotated[str, Form()]) -> RedirectResponse:
        message = box.record_reply(phone, text)
        await _post_reply(settings, box, message)
        return RedirectResponse(_inbox_path(phone), status_code=303)

    @app.get("/api/messages")
    async def messages(request: Request) -> list[dict[str, Any]]:
        phone = request.query_params.get("phone")
        chosen = box.for_phone(phone) if phone else box.messages
        return [
            {
                "id": m.id,
                "direction": m.direction,
                "phone": m.phone,
                "body": m.body,
                "template": m.template,
                "idempotency_key": m.idempotency_key,
                "account_id": m.account_id,
                "status": m.status,
                "error_code": m.error_code,
                "kindly_answer": m.kindly_answer,
                "at": m.at.isoformat(),
            }
            for m in chosen
        ]

    return app


_background: set[asyncio.Task[None]] = set()
RECEIPT_ATTEMPTS = 20


def _receipt_later(settings: SandboxSettings, box: Mailbox, message: StoredMessage) -> None:
    """Send the delivery receipt after answering, as a carrier does, without blocking the send: to
    Kindly's JSON receipt webhook, or in the provider's own shape to its callback."""
    if settings.push_format == "aliyun":
        push = aliyun.push_receipt(settings, box, message)
    elif settings.push_format == "tencent":
        push = tencent.push_receipt(settings, box, message)
    elif settings.receipts_url is not None:
        push = _post_receipt(settings, box, message)
    else:
        return
    task = asyncio.create_task(push)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _post_receipt(settings: SandboxSettings, box: Mailbox, message: StoredMessage) -> None:
    assert settings.receipts_url is not None
    dead = message.phone.endswith(settings.undeliverable_suffix)
    status, error_code = ("failed", "30005") if dead else ("delivered", None)
    box.set_status(message.id, status, error_code)
    receipt = {"message_id": message.id, "status": status, "error_code": error_code, "permanent": dead}
    # Kindly records the provider's id when the send returns: until then the receipt is
    # "unmatched", and a carrier would simply send it again a little later. Each attempt is signed
    # afresh and numbered, so no two attempts carry the same signature (which Kindly would refuse
    # as a replay).
    async with httpx.AsyncClient(timeout=10) as client:
        for attempt in range(RECEIPT_ATTEMPTS):
            body = json.dumps({**receipt, "attempt": attempt + 1}).encode()
            headers = signed_headers(settings, body)
            try:
                answer = await client.post(settings.receipts_url, content=body, headers=headers)
            except httpx.HTTPError as err:
                box.set_kindly_answer(message.id, f"unreachable ({type(err).__name__}), retrying")
            else:
                said = _json_object(answer)
                what = str(said.get("status") or f"HTTP {answer.status_code}")
                if answer.status_code < 300 and what != "unmatched":
                    account = said.get("account_id")  # Kindly names the message's account
                    box.set_kindly_answer(message.id, what, account if isinstance(account, str) else None)
                    return
                box.set_kindly_answer(message.id, f"{what}, retrying")
            await asyncio.sleep(min(0.1 * 2**attempt, 5.0))
    box.set_kindly_answer(message.id, f"no answer after {RECEIPT_ATTEMPTS} attempts")


async def _post_reply(settings: SandboxSettings, box: Mailbox, message: StoredMessage) -> None:
    """Forward a typed reply to Kindly's inbound webhook (or, in a provider's shape, to its callback);
    a 502 when Kindly cannot take it."""
    if settings.push_format == "aliyun":
        await aliyun.push_reply(settings, box, message)
        return
    if settings.push_format == "tencent":
        await tencent.push_reply(settings, box, message)
        return
    if settings.inbound_url is None:
        return
    body = json.dumps({"from": message.phone, "text": message.body, "message_id": message.id}).encode()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                settings.inbound_url, content=body, headers=signed_headers(settings, body)
            )
    except httpx.HTTPError as err:
        box.set_status(message.id, "unreachable")
        raise HTTPException(502, f"Kindly's inbound webhook is unreachable ({type(err).__name__})") from err
    status = _json_object(response).get("status")
    box.set_kindly_answer(message.id, str(status or f"HTTP {response.status_code}"))
    if response.status_code >= 400:
        box.set_status(message.id, "refused")
        raise HTTPException(502, f"Kindly's inbound webhook answered {response.status_code}")
    box.set_status(message.id, "forwarded")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body when it is a JSON object, else an empty one."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _inbox_path(phone: str) -> str:
    """The inbox's URL path (the number is text from a send: escape it for HTML)."""
    return f"/inbox/{quote(phone, safe='+')}"


def _inbox_row(inbox: Inbox) -> str:
    accounts = ", ".join(html.escape(a) for a in inbox.account_ids) or "—"
    return (
        f'<tr><td><a href="{html.escape(_inbox_path(inbox.phone))}">{html.escape(inbox.phone)}</a></td>'
        f'<td class="accounts">{accounts}</td><td>{inbox.messages}</td>'
        f"<td>{inbox.last_at:%Y-%m-%d %H:%M:%S}</td></tr>"
    )


# A reminder's self-service link, ``<base URL>/p/<token>`` (22 characters of URL-safe base64), looked for
# in the escaped text: none of its characters is one that escaping writes (``&``, ``;``) or one that
# could end the attribute it goes in.
_SELF_SERVICE_LINK = re.compile(r"https?://[A-Za-z0-9.:/%~_+\[\]-]+/p/[A-Za-z0-9_-]{22}(?![A-Za-z0-9_-])")


def _message_text(body: str) -> str:
    """A message as HTML: its text escaped, then its self-service link made something to click, as a
    phone shows it; nothing else of the message becomes markup."""
    return _SELF_SERVICE_LINK.sub(
        lambda link: f'<a href="{link.group(0)}">{link.group(0)}</a>', html.escape(body)
    )


def _message_box(m: StoredMessage) -> str:
    status = m.status + (f" (error {m.error_code})" if m.error_code else "")
    if m.kindly_answer:
        status += f" · Kindly: {m.kindly_answer}"
    details = [
        f"{m.at:%Y-%m-%d %H:%M:%S} UTC",
        f"account {m.account_id}" if m.account_id else "",
        m.template or "",
    ]
    meta = " · ".join(html.escape(d) for d in details if d)
    return (
        f'<div class="{m.direction}"><small>{meta}</small><p>{_message_text(m.body)}</p>'
        f'<small class="status {html.escape(m.status)}">{html.escape(status)}</small></div>'
    )


def _page(title: str, content: str) -> str:
    """A whole page; ``title`` and ``content`` are HTML, escaped by their makers."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title>"
        "<style>body{font-family:sans-serif;max-width:44em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{text-align:left;padding:.2em .8em}"
        ".out{background:#eef;padding:.3em 1em;margin:.5em 0;border-radius:8px}"
        ".in{background:#efe;padding:.3em 1em;margin:.5em 0 .5em 4em;border-radius:8px}"
        ".status{color:#555}.status.failed,.status.refused,.status.unreachable{color:#b00}</style>"
        f"</head><body><h1>{title}</h1><p><a href='/'>All inboxes</a></p>{content}</body></html>"
    )
