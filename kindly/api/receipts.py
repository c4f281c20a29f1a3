"""Delivery receipts from the SMS gateway: audited, and a permanently dead number told to its workflow.

A receipt names the provider's message id; the outbox maps it to the account and touchpoint. Each
(message, status) pair is audited once, so replays and duplicates change nothing; out-of-order
receipts are all kept, and only a permanent failure moves the account (to phone contact).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from kindly.api.deps import ApiContext, Context
from kindly.api.security import KINDLY_SIGNATURE_HEADER, verify_kindly
from kindly.api.webhooks import parse_signed_json, signed_json_body, verified_twilio_form
from kindly.contract import SignalName, SmsUndeliverable
from kindly.db import AuditEntry
from kindly.operations import AccountNotFoundError, signal_account

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

# Twilio error codes that mean the number will never take an SMS: invalid, not mobile, unknown.
PERMANENT_TWILIO_ERRORS = frozenset({"21211", "21614", "30005", "30006"})


class DeliveryReceipt(BaseModel):
    """The JSON receipt format: ``permanent`` when the carrier says the number cannot take SMS."""

    model_config = ConfigDict(extra="ignore")

    message_id: str = Field(min_length=1, max_length=128)
    status: Literal["delivered", "undelivered", "failed"]
    error_code: str | None = Field(default=None, max_length=32)
    permanent: bool = False


class ReceiptResult(BaseModel):
    status: Literal["recorded", "duplicate", "unmatched"]
    account_id: str | None = None


async def _record(ctx: ApiContext, receipt: DeliveryReceipt) -> ReceiptResult:
    sent = await run_in_threadpool(ctx.audit.outbox_by_provider_id, receipt.message_id)
    if sent is None:
        log.info("receipt for unknown message %s ignored", receipt.message_id)
        return ReceiptResult(status="unmatched")
    code = f" (error {receipt.error_code})" if receipt.error_code else ""
    entry = AuditEntry(
        event_key=f"receipt/{receipt.message_id}/{receipt.status}",
        account_id=sent.account_id,
        at=_now(),
        kind="delivery_receipt",
        detail=f"{sent.template} touchpoint {sent.touchpoint}: {receipt.status}{code}",
        touchpoint=sent.touchpoint,
        template=sent.template,
        provider_message_id=receipt.message_id,
        outcome=receipt.status,
    )
    if await run_in_threadpool(ctx.audit.append, [entry]) == 0:
        return ReceiptResult(status="duplicate", account_id=sent.account_id)
    if receipt.permanent and receipt.status != "delivered":
        notice = SmsUndeliverable(reason=f"carrier reports the number undeliverable{code}")
        try:
            await signal_account(ctx.client, sent.account_id, SignalName.SMS_UNDELIVERABLE, notice)
        except AccountNotFoundError:
            log.info("undeliverable receipt for finished account %s", sent.account_id)
    return ReceiptResult(status="recorded", account_id=sent.account_id)


def _now() -> datetime:
    return datetime.now(UTC)


@router.post(
    "/receipts",
    response_model=ReceiptResult,
    responses={403: {"description": f"Missing or invalid {KINDLY_SIGNATURE_HEADER}"}},
    openapi_extra=signed_json_body(DeliveryReceipt),
)
async def json_receipt(request: Request, ctx: Context) -> ReceiptResult:
    """A delivery receipt ``{message_id, status, error_code?, permanent?}``, signed like the SMS webhook."""
    raw = await request.body()
    verify_kindly(request, raw)
    return await _record(ctx, parse_signed_json(DeliveryReceipt, raw))


@router.post("/receipts/twilio", response_model=ReceiptResult)
async def twilio_receipt(request: Request, ctx: Context) -> ReceiptResult:
    """Twilio's status callback (``MessageSid``, ``MessageStatus``, ``ErrorCode``), signature-verified."""
    form = await verified_twilio_form(request, ctx, ("MessageSid", "MessageStatus"))
    if form["MessageStatus"] not in ("delivered", "undelivered", "failed"):
        return ReceiptResult(status="duplicate")  # interim states (queued, sent) carry no decision
    error_code = form.get("ErrorCode") or None
    receipt = DeliveryReceipt(
        message_id=form["MessageSid"],
        status=form["MessageStatus"],
        error_code=error_code,
        permanent=error_code in PERMANENT_TWILIO_ERRORS,
    )
    return await _record(ctx, receipt)
