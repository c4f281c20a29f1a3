"""Hostile webhooks against the API on a real server (127.0.0.1), with a real worker and Temporal.

Tampered bodies, wrong secrets, missing headers, stale or future timestamps and replays are answered
403 and oversize bodies 413, declared or chunked, on every webhook. Each test sends the hostile
variants first and the genuine request with the same content last: that one is accepted *as new*
(so no variant stored anything) and its signal reaches the workflow after theirs would have (so
none of them signalled anything).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlencode

import httpx

from activities.audit_rows import action_row
from kindly.api.security import kindly_headers, twilio_signature
from kindly.db import AuditStore, OutboxEntry
from tests import test_api
from tests.conftest import eventually
from tests.test_api import (
    MAX_BODY,
    PUBLIC_BASE,
    TWILIO_TOKEN,
    WEBHOOK_SECRET,
    Api,
    fresh_timestamp,
    start_account,
    timeline_kinds,
)

api = test_api.api  # the fixture: the API on a real server, with a worker and Temporal

TOLERANCE = 300  # ApiSettings' default, which the ``api`` fixture keeps
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Refusal:
    """A hostile request: what to send and what the 403 must say."""

    name: str
    body: bytes
    headers: dict[str, str]
    reason: str


def json_refusals(payload: dict[str, Any]) -> list[Refusal]:
    raw = json.dumps(payload).encode()
    now = int(time.time())
    genuine = kindly_headers(WEBHOOK_SECRET, raw, now)
    tampered = json.dumps({**payload, "tampered": True}).encode()
    stale, future = now - TOLERANCE - 60, now + TOLERANCE + 60
    secret = WEBHOOK_SECRET.encode()
    return [
        Refusal("tampered body", tampered, genuine, "invalid X-Kindly-Signature"),
        Refusal(
            "wrong secret", raw, kindly_headers("not-the-secret", raw, now), "invalid X-Kindly-Signature"
        ),
        Refusal(
            "signature of another timestamp",
            raw,
            {**genuine, "X-Kindly-Timestamp": str(now - 1)},
            "invalid X-Kindly-Signature",
        ),
        Refusal(
            "signature of the body alone (the old scheme)",
            raw,
            {**genuine, "X-Kindly-Signature": "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()},
            "invalid X-Kindly-Signature",
        ),
        Refusal(
            "missing signature",
            raw,
            {"X-Kindly-Timestamp": str(now)},
            "missing X-Kindly-Signature",
        ),
        Refusal(
            "missing timestamp",
            raw,
            {"X-Kindly-Signature": genuine["X-Kindly-Signature"]},
            "missing X-Kindly-Timestamp",
        ),
        Refusal(
            "timestamp not unix seconds",
            raw,
            {**genuine, "X-Kindly-Timestamp": "2026-01-01T00:00:00Z"},
            "invalid X-Kindly-Timestamp",
        ),
        Refusal(
            "stale timestamp", raw, kindly_headers(WEBHOOK_SECRET, raw, stale), "s old, outside the 300 s"
        ),
        Refusal(
            "future timestamp",
            raw,
            kindly_headers(WEBHOOK_SECRET, raw, future),
            "s in the future, outside the 300 s",
        ),
    ]


def twilio_refusals(path: str, form: dict[str, str]) -> list[Refusal]:
    url = PUBLIC_BASE + path
    raw = urlencode(form).encode()
    genuine = twilio_signature(TWILIO_TOKEN, url, form.items())
    tampered = urlencode({**form, "Body": "tampered"}).encode()
    return [
        Refusal("tampered form", tampered, {"X-Twilio-Signature": genuine}, "invalid X-Twilio-Signature"),
        Refusal(
            "wrong auth token",
            raw,
            {"X-Twilio-Signature": twilio_signature("not-the-token", url, form.items())},
            "invalid X-Twilio-Signature",
        ),
        Refusal(
            "signed for another URL",
            raw,
            {
                "X-Twilio-Signature": twilio_signature(
                    TWILIO_TOKEN, "https://evil.example.com" + path, form.items()
                )
            },
            "invalid X-Twilio-Signature",
        ),
        Refusal("missing signature", raw, {}, "missing X-Twilio-Signature"),
    ]


async def refused(api: Api, path: str, refusals: list[Refusal], content_type: dict[str, str]) -> None:
    for refusal in refusals:
        response = await api.http.post(
            path, content=refusal.body, headers={**content_type, **refusal.headers}
        )
        assert response.status_code == 403, (refusal.name, response.text)
        assert refusal.reason in response.json()["detail"], (refusal.name, response.text)


async def too_large(api: Api, path: str, headers: dict[str, str], content_type: dict[str, str]) -> None:
    """413 for a body over the limit, whether it declares its length or streams it in chunks."""
    big = b"x" * (MAX_BODY + 1)
    response = await api.http.post(path, content=big, headers={**content_type, **headers})
    assert response.status_code == 413, response.text

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(3):
            yield b"z" * (MAX_BODY // 2)

    response = await api.http.post(path, content=chunked(), headers={**content_type, **headers})
    assert response.status_code == 413, response.text
    assert "content-length" not in response.request.headers


async def replayed(api: Api, path: str, body: bytes, headers: dict[str, str]) -> list[httpx.Response]:
    """The genuine request, then the very same bytes and headers twice more at once."""
    first = await api.http.post(path, content=body, headers=headers)
    assert first.status_code == 200, first.text
    again = await asyncio.gather(*(api.http.post(path, content=body, headers=headers) for _ in range(2)))
    for response in again:
        assert response.status_code == 403 and "already used" in response.json()["detail"], response.text
    return [first, *again]


# --- Kindly's JSON webhooks -----------------------------------------------------------------------


async def test_hostile_inbound_sms_is_refused_and_leaves_nothing(api: Api) -> None:
    phone = "+8613800000031"
    account_id = await start_account(api, phone=phone)
    payload = {"from": phone, "text": "I will pay", "message_id": "M-SEC-1"}
    await refused(api, "/webhooks/sms", json_refusals(payload), JSON)
    await too_large(api, "/webhooks/sms", kindly_headers(WEBHOOK_SECRET, b"{}"), JSON)
    assert api.phones.inbound_messages(phone) == []

    raw = json.dumps(payload).encode()
    [first, *_] = await replayed(api, "/webhooks/sms", raw, {**JSON, **kindly_headers(WEBHOOK_SECRET, raw)})
    assert first.json() == {"status": "accepted", "matched_accounts": 1}
    kinds = await eventually(partial(timeline_kinds, api, account_id), lambda k: "reply_received" in k)
    assert kinds.count("reply_received") == 1
    assert [m.provider_message_id for m in api.phones.inbound_messages(phone)] == ["M-SEC-1"]


async def test_hostile_payment_is_refused_and_credits_nothing(api: Api) -> None:
    account_id = await start_account(api)
    payload = {"account_id": account_id, "amount": "300.00", "reference": "PAY-SEC-1"}
    await refused(api, "/webhooks/payments", json_refusals(payload), JSON)
    await too_large(api, "/webhooks/payments", kindly_headers(WEBHOOK_SECRET, b"{}"), JSON)
    assert api.phones.payment("PAY-SEC-1") is None

    raw = json.dumps(payload).encode()
    headers = {**JSON, **kindly_headers(WEBHOOK_SECRET, raw, fresh_timestamp())}
    [first, *_] = await replayed(api, "/webhooks/payments", raw, headers)
    assert first.json()["status"] == "accepted"
    kinds = await eventually(partial(timeline_kinds, api, account_id), lambda k: "repayment_received" in k)
    assert kinds.count("repayment_received") == 1 and "signal_rejected" not in kinds


async def test_hostile_receipt_is_refused_and_audits_nothing(api: Api) -> None:
    account_id = await start_account(api)
    audit = AuditStore(api.engine)
    await asyncio.to_thread(sent_message, audit, account_id, "SB-SEC-1")
    payload = {"message_id": "SB-SEC-1", "status": "failed", "error_code": "30005", "permanent": True}
    await refused(api, "/webhooks/receipts", json_refusals(payload), JSON)
    await too_large(api, "/webhooks/receipts", kindly_headers(WEBHOOK_SECRET, b"{}"), JSON)
    assert _receipts(audit, account_id) == [] and api.phones.delivery("SB-SEC-1") is None

    raw = json.dumps(payload).encode()
    headers = {**JSON, **kindly_headers(WEBHOOK_SECRET, raw, fresh_timestamp())}
    [first, *_] = await replayed(api, "/webhooks/receipts", raw, headers)
    assert first.json()["status"] == "recorded"
    kinds = await eventually(partial(timeline_kinds, api, account_id), lambda k: "sms_undeliverable" in k)
    assert kinds.count("sms_undeliverable") == 1
    assert [row.outcome for row in _receipts(audit, account_id)] == ["failed"]


# --- Twilio ---------------------------------------------------------------------------------------


async def test_hostile_twilio_reply_is_refused_and_leaves_nothing(api: Api) -> None:
    phone = "+8613800000032"
    account_id = await start_account(api, phone=phone)
    path = "/webhooks/sms/twilio"
    form = {"From": phone, "Body": "paid", "MessageSid": "SM-SEC-1"}
    await refused(api, path, twilio_refusals(path, form), FORM)
    big_form = {**form, "Body": "x" * MAX_BODY}
    signature = twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + path, big_form.items())
    await too_large(api, path, {"X-Twilio-Signature": signature}, FORM)
    assert api.phones.inbound_messages(phone) == []

    signature = twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + path, form.items())
    raw = urlencode(form).encode()
    [first, *_] = await replayed(api, path, raw, {**FORM, "X-Twilio-Signature": signature})
    assert "<Response/>" in first.text
    kinds = await eventually(partial(timeline_kinds, api, account_id), lambda k: "reply_received" in k)
    assert kinds.count("reply_received") == 1
    assert len(api.phones.inbound_messages(phone)) == 1


async def test_hostile_twilio_status_callback_is_refused_and_audits_nothing(api: Api) -> None:
    account_id = await start_account(api)
    audit = AuditStore(api.engine)
    await asyncio.to_thread(sent_message, audit, account_id, "SM-SEC-2")
    path = "/webhooks/receipts/twilio"
    form = {"MessageSid": "SM-SEC-2", "MessageStatus": "undelivered", "ErrorCode": "30006"}
    await refused(api, path, twilio_refusals(path, form), FORM)
    signature = twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + path, form.items())
    await too_large(api, path, {"X-Twilio-Signature": signature}, FORM)
    assert _receipts(audit, account_id) == [] and api.phones.delivery("SM-SEC-2") is None

    raw = urlencode(form).encode()
    [first, *_] = await replayed(api, path, raw, {**FORM, "X-Twilio-Signature": signature})
    assert first.json()["status"] == "recorded"
    kinds = await eventually(partial(timeline_kinds, api, account_id), lambda k: "sms_undeliverable" in k)
    assert kinds.count("sms_undeliverable") == 1
    assert [row.outcome for row in _receipts(audit, account_id)] == ["undelivered"]


# --- helpers --------------------------------------------------------------------------------------


def sent_message(audit: AuditStore, account_id: str, provider_message_id: str) -> None:
    """The outbox row of an SMS the gateway accepted as ``provider_message_id``, as ``send_sms``
    leaves it: what a receipt is matched against."""
    key = f"overdue-{account_id}/run/tp-1"
    audit.claim(OutboxEntry(idempotency_key=key, account_id=account_id, touchpoint=1, channel="sms"))
    row = action_row(
        idempotency_key=key,
        account_id=account_id,
        kind="sms_sent",
        detail="due_today, 1 segment(s): sent",
        touchpoint=1,
        template="due_today",
        provider="webhook",
        provider_message_id=provider_message_id,
        outcome="sent",
    )
    audit.complete(key, "sent", provider_message_id, row)


def _receipts(audit: AuditStore, account_id: str) -> list[Any]:
    return [row for row in audit.audit_for(account_id) if row.kind == "delivery_receipt"]
