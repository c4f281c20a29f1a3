"""Delivery receipts from the SMS gateway: audited, and a permanently dead number told to its workflow.

A receipt names the provider's message id; the outbox maps it to the account and touchpoint.
Carriers send receipts more than once and out of order (``delivered``, then a late ``sent``), so:

* each message's delivery status (``sms_delivery``) only moves forward: queued → sending → sent →
  one final state (delivered, undelivered or failed); a late or conflicting receipt changes nothing
  and is answered ``stale``;
* each (message, status) pair is audited once, so a duplicate is answered ``duplicate`` and changes
  nothing; a late receipt is still audited once, marked as late (it is the carrier's evidence);
* only a permanent failure that became the message's final status moves the account (to phone
  contact), signalled until one signal got through.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from kindly.domain.contract import SignalName, SmsUndeliverable
from kindly.errors import AccountNotFoundError
from kindly.programs.api.deps import ApiContext, Context
from kindly.programs.api.webhooks import (
    SIGNATURE_REFUSED,
    kindly_webhook,
    parse_form,
    signed_json_body,
    twilio_form_body,
    twilio_webhook,
)
from kindly.programs.operations import signal_account
from kindly.store import DELIVERY_RECEIPT, FAILED_STATES, AuditEntry

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

# Twilio error codes that mean the number will never take an SMS: invalid, not mobile, unknown.
PERMANENT_TWILIO_ERRORS = frozenset({"21211", "21614", "30005", "30006"})

DeliveryState = Literal["queued", "sending", "sent", "delivered", "undelivered", "failed"]

# Twilio's MessageStatus values that are delivery states, mapped onto ours.
TWILIO_STATES: dict[str, DeliveryState] = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
}


class DeliveryReceipt(BaseModel):
    """The JSON receipt format: ``permanent`` when the carrier says the number cannot take SMS."""

    model_config = ConfigDict(extra="ignore")

    message_id: str = Field(min_length=1, max_length=128)
    status: DeliveryState
    error_code: str | None = Field(default=None, max_length=32)
    permanent: bool = False


class ReceiptResult(BaseModel):
    """``recorded`` (the status moved), ``stale`` (a late receipt: audited, status unchanged),
    ``duplicate`` (seen before), ``unmatched`` (no such message yet: send it again later),
    ``ignored`` (a Twilio status that is no delivery state)."""

    status: Literal["recorded", "stale", "duplicate", "unmatched", "ignored"]
    account_id: str | None = None


async def record_receipt(ctx: ApiContext, receipt: DeliveryReceipt) -> ReceiptResult:
    sent = await run_in_threadpool(ctx.audit.outbox_by_provider_id, receipt.message_id)
    if sent is None:
        log.info("receipt for unknown message %s ignored", receipt.message_id)
        return ReceiptResult(status="unmatched")
    permanent = receipt.permanent and receipt.status in FAILED_STATES
    update = await run_in_threadpool(
        ctx.phones.advance_delivery, receipt.message_id, sent.account_id, receipt.status, permanent=permanent
    )
    current = update.current
    code = f" (error {receipt.error_code})" if receipt.error_code else ""
    # A receipt for a status the message has passed (or for another final state) is late; one for
    # the status it is in is this receipt's first delivery (advanced) or a duplicate.
    late = current.status != receipt.status
    note = f"; arrived late, status stays {current.status}" if late else ""
    entry = AuditEntry(
        event_key=f"receipt/{receipt.message_id}/{receipt.status}",
        account_id=sent.account_id,
        at=_now(),
        kind=DELIVERY_RECEIPT,
        detail=f"{sent.template} touchpoint {sent.touchpoint}: {receipt.status}{code}{note}",
        touchpoint=sent.touchpoint,
        template=sent.template,
        provider_message_id=receipt.message_id,
        outcome=receipt.status,
    )
    new = await run_in_threadpool(_append_once, ctx, entry)
    if current.permanent and current.status in FAILED_STATES and current.undeliverable_signalled_at is None:
        # Also on a duplicate: the first delivery of this receipt may have failed to signal.
        notice = SmsUndeliverable(reason=f"carrier reports the number undeliverable{code}")
        try:
            await signal_account(ctx.client, sent.account_id, SignalName.SMS_UNDELIVERABLE, notice)
        except AccountNotFoundError:
            log.info("undeliverable receipt for finished account %s", sent.account_id)
        await run_in_threadpool(ctx.phones.mark_undeliverable_signalled, receipt.message_id)
    if update.advanced:
        return ReceiptResult(status="recorded", account_id=sent.account_id)
    return ReceiptResult(status="stale" if late and new else "duplicate", account_id=sent.account_id)


def _append_once(ctx: ApiContext, entry: AuditEntry) -> bool:
    """Whether the audit row is new; a concurrent twin's insert fails on the unique event key."""
    try:
        return ctx.audit.append([entry]) == 1
    except IntegrityError:
        return False


def _now() -> datetime:
    return datetime.now(UTC)


@router.post(
    "/receipts",
    response_model=ReceiptResult,
    responses={403: {"description": SIGNATURE_REFUSED}},
    openapi_extra=signed_json_body(DeliveryReceipt),
)
async def json_receipt(request: Request, ctx: Context) -> ReceiptResult:
    """A delivery receipt ``{message_id, status, error_code?, permanent?}``, signed like the SMS webhook."""
    async with kindly_webhook(request, ctx, DeliveryReceipt) as receipt:
        return await record_receipt(ctx, receipt)


@router.post(
    "/receipts/twilio",
    response_model=ReceiptResult,
    responses={403: {"description": SIGNATURE_REFUSED}},
    openapi_extra=twilio_form_body(
        "MessageSid", "MessageStatus", "ErrorCode", required=("MessageSid", "MessageStatus")
    ),
)
async def twilio_receipt(request: Request, ctx: Context) -> ReceiptResult:
    """Twilio's status callback (``MessageSid``, ``MessageStatus``, ``ErrorCode``), signature-verified."""
    async with twilio_webhook(request, ctx, ("MessageSid", "MessageStatus")) as form:
        state = TWILIO_STATES.get(form["MessageStatus"])
        if state is None:
            return ReceiptResult(status="ignored")  # e.g. "read", "canceled": no delivery state
        error_code = form.get("ErrorCode") or None
        fields = {
            "message_id": form["MessageSid"],
            "status": state,
            "error_code": error_code,
            "permanent": error_code in PERMANENT_TWILIO_ERRORS,
        }
        receipt = parse_form(DeliveryReceipt, fields)
        return await record_receipt(ctx, receipt)
