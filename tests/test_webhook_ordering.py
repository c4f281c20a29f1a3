"""Duplicate and out-of-order webhooks through the API on a real server, a worker and Temporal.

A message's delivery status only moves forward, whatever order the carrier's receipts arrive in;
each receipt is audited once; a payment is credited once per reference and an inbound SMS routed
once per message id, also when identical notifications arrive at the same moment (each freshly
signed, as a sender's retries are: these are duplicates, not replays).
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import urlencode

import httpx

from kindly.programs.api.security import kindly_headers, twilio_signature
from kindly.store import AuditStore
from tests import test_api
from tests.conftest import eventually
from tests.test_api import (
    PUBLIC_BASE,
    TWILIO_TOKEN,
    WEBHOOK_SECRET,
    Api,
    fresh_timestamp,
    get_status,
    post_signed,
    start_account,
    timeline_kinds,
)
from tests.test_webhook_security import sent_message

api = test_api.api  # the fixture: the API on a real server, with a worker and Temporal

CONCURRENT = 5


async def receipt(api: Api, message_id: str, status: str, **extra: Any) -> str:
    response = await post_signed(
        api, "/webhooks/receipts", {"message_id": message_id, "status": status, **extra}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def twilio_receipt(api: Api, message_sid: str, status: str) -> str:
    path = "/webhooks/receipts/twilio"
    form = {"MessageSid": message_sid, "MessageStatus": status}
    signature = twilio_signature(TWILIO_TOKEN, PUBLIC_BASE + path, form.items())
    response = await api.http.post(
        path,
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def receipts_audited(audit: AuditStore, account_id: str) -> list[tuple[str | None, str]]:
    return [
        (row.outcome, row.detail) for row in audit.audit_for(account_id) if row.kind == "delivery_receipt"
    ]


async def test_receipts_out_of_order_never_move_the_status_back(api: Api) -> None:
    account_id = await start_account(api)
    audit = AuditStore(api.engine)
    await asyncio.to_thread(sent_message, audit, account_id, "SB-ORD-1")

    assert await receipt(api, "SB-ORD-1", "sent") == "recorded"
    assert await receipt(api, "SB-ORD-1", "delivered") == "recorded"
    assert await receipt(api, "SB-ORD-1", "queued") == "stale"  # late: after delivered
    assert await receipt(api, "SB-ORD-1", "sent") == "duplicate"  # audited already
    assert await receipt(api, "SB-ORD-1", "delivered") == "duplicate"
    current = api.phones.delivery("SB-ORD-1")
    assert current is not None and current.status == "delivered"

    audited = receipts_audited(audit, account_id)
    assert [outcome for outcome, _ in audited] == ["sent", "delivered", "queued"]
    assert audited[2][1].endswith("arrived late, status stays delivered")


async def test_a_late_failure_after_delivery_changes_nothing(api: Api) -> None:
    phone = "+8613800000041"
    account_id = await start_account(api, phone=phone)
    audit = AuditStore(api.engine)
    await asyncio.to_thread(sent_message, audit, account_id, "SB-ORD-2")

    assert await receipt(api, "SB-ORD-2", "delivered") == "recorded"
    failed = await receipt(api, "SB-ORD-2", "failed", error_code="30005", permanent=True)
    assert failed == "stale"
    current = api.phones.delivery("SB-ORD-2")
    assert (
        current is not None and current.status == "delivered" and current.undeliverable_signalled_at is None
    )

    # A reply sent afterwards: once it reached the workflow, an undeliverable signal would have too.
    await post_signed(api, "/webhooks/sms", {"from": phone, "text": "ok", "message_id": "M-ORD-2"})
    kinds = await eventually(partial(timeline_kinds, api, account_id), lambda k: "reply_received" in k)
    assert "sms_undeliverable" not in kinds


async def test_twilio_status_callbacks_out_of_order(api: Api) -> None:
    account_id = await start_account(api)
    audit = AuditStore(api.engine)
    await asyncio.to_thread(sent_message, audit, account_id, "SM-ORD-3")

    assert await twilio_receipt(api, "SM-ORD-3", "queued") == "recorded"
    assert await twilio_receipt(api, "SM-ORD-3", "delivered") == "recorded"
    assert await twilio_receipt(api, "SM-ORD-3", "sent") == "stale"
    assert await twilio_receipt(api, "SM-ORD-3", "read") == "ignored"
    current = api.phones.delivery("SM-ORD-3")
    assert current is not None and current.status == "delivered"
    assert [outcome for outcome, _ in receipts_audited(audit, account_id)] == ["queued", "delivered", "sent"]


async def test_identical_receipts_at_once_are_audited_once(api: Api) -> None:
    account_id = await start_account(api)
    audit = AuditStore(api.engine)
    await asyncio.to_thread(sent_message, audit, account_id, "SB-ORD-4")
    answers = await asyncio.gather(*(receipt(api, "SB-ORD-4", "delivered") for _ in range(CONCURRENT)))
    assert sorted(answers) == ["duplicate"] * (CONCURRENT - 1) + ["recorded"]
    assert [outcome for outcome, _ in receipts_audited(audit, account_id)] == ["delivered"]


async def test_a_repeated_permanent_failure_signals_the_workflow_once(api: Api) -> None:
    account_id = await start_account(api)
    audit = AuditStore(api.engine)
    await asyncio.to_thread(sent_message, audit, account_id, "SB-ORD-5")
    answers = await asyncio.gather(
        *(receipt(api, "SB-ORD-5", "failed", permanent=True, error_code="30005") for _ in range(CONCURRENT))
    )
    assert answers.count("recorded") == 1
    kinds = await eventually(partial(timeline_kinds, api, account_id), lambda k: "sms_undeliverable" in k)
    assert kinds.count("sms_undeliverable") == 1
    current = api.phones.delivery("SB-ORD-5")
    assert current is not None and current.undeliverable_signalled_at is not None


async def test_identical_payments_at_once_credit_once(api: Api) -> None:
    account_id = await start_account(api)
    payment = {"account_id": account_id, "amount": "250.00", "reference": "PAY-ORD-1"}
    raw = json.dumps(payment).encode()

    async def notify() -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            **kindly_headers(WEBHOOK_SECRET, raw, fresh_timestamp()),
        }
        return await api.http.post("/webhooks/payments", content=raw, headers=headers)

    responses = await asyncio.gather(*(notify() for _ in range(CONCURRENT)))
    outcomes = [
        response.json()["status"] if response.status_code == 200 else response.status_code
        for response in responses
    ]
    # One credits; the others find it credited, or (409, Retry-After) still being credited.
    assert outcomes.count("accepted") == 1, outcomes
    assert all(outcome in ("accepted", "duplicate", 409) for outcome in outcomes), outcomes
    for response in responses:
        if response.status_code == 409:
            assert response.headers["retry-after"] and "retry later" in response.json()["detail"]

    later = await notify()  # a sender retrying after a 409 finds it done
    assert later.status_code == 200 and later.json()["status"] == "duplicate"
    await eventually(
        partial(get_status, api, account_id), lambda s: Decimal(s["amount_due"]) == Decimal("1250.00")
    )
    # A second payment, signalled after the duplicates would have been.
    await post_signed(api, "/webhooks/payments", {**payment, "reference": "PAY-ORD-2", "amount": "50"})
    await eventually(
        partial(get_status, api, account_id), lambda s: Decimal(s["amount_due"]) == Decimal("1200.00")
    )
    kinds = await timeline_kinds(api, account_id)
    assert kinds.count("repayment_received") == 2 and "signal_rejected" not in kinds


async def test_identical_inbound_sms_at_once_reach_the_workflow_once(api: Api) -> None:
    phone = "+8613800000042"
    account_id = await start_account(api, phone=phone)
    sms = {"from": phone, "text": "will pay friday", "message_id": "M-ORD-1"}
    responses = await asyncio.gather(*(post_signed(api, "/webhooks/sms", sms) for _ in range(CONCURRENT)))
    outcomes = [
        response.json()["status"] if response.status_code == 200 else response.status_code
        for response in responses
    ]
    assert outcomes.count("accepted") == 1, outcomes
    assert all(outcome in ("accepted", "duplicate", 409) for outcome in outcomes), outcomes

    await post_signed(api, "/webhooks/sms", {**sms, "message_id": "M-ORD-2", "text": "paid"})
    kinds = await eventually(
        partial(timeline_kinds, api, account_id), lambda k: k.count("reply_received") >= 2
    )
    assert kinds.count("reply_received") == 2
    assert [m.provider_message_id for m in api.phones.inbound_messages(phone)] == ["M-ORD-1", "M-ORD-2"]
