"""Inbound webhooks: customers' SMS replies (Twilio or JSON) and payment notifications.

No API key here: each request is authenticated by its signature over the raw body, verified before
the body is parsed. Every inbound SMS is stored, matched or not, then signalled as
``customer_reply`` to each account registered for the sender's number. Replays (same provider
message id, same payment reference) answer 200 without signalling again.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kindly.api.deps import ApiContext, Context
from kindly.api.security import KINDLY_SIGNATURE_HEADER, TWILIO_SIGNATURE_HEADER, verify_kindly, verify_twilio
from kindly.contract import CustomerReply, Money, Repayment, SignalName
from kindly.masking import mask_phone
from kindly.operations import AccountNotFoundError, signal_account

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


class InboundSms(BaseModel):
    """The JSON inbound-SMS format."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, max_length=32)
    text: str = Field(max_length=1600)
    message_id: str = Field(min_length=1, max_length=128)


class PaymentNotice(BaseModel):
    """A payment notification from the payment system."""

    model_config = ConfigDict(extra="ignore")

    account_id: str = Field(min_length=1, max_length=64)
    amount: Money = Field(gt=0)
    reference: str = Field(min_length=1, max_length=128)


class InboundResult(BaseModel):
    status: str  # "accepted" or "duplicate"
    matched_accounts: int


class PaymentResult(BaseModel):
    status: str  # "accepted" or "duplicate"
    reference: str


def signed_json_body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema(by_alias=True)}},
        },
        "parameters": [
            {
                "name": KINDLY_SIGNATURE_HEADER,
                "in": "header",
                "required": True,
                "description": "sha256=<hex HMAC-SHA256 of the raw body with the webhook secret>",
                "schema": {"type": "string"},
            }
        ],
    }


def parse_signed_json(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        errors = [
            {**item, "loc": ("body", *item["loc"])}
            for item in err.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise RequestValidationError(errors) from err


async def _route_reply(
    ctx: ApiContext, provider: str, message_id: str, sender: str, text: str
) -> tuple[bool, int]:
    """Store the message and signal its accounts once.

    Returns whether this delivery routed it (False for a replay) and how many accounts it matched.
    """
    message = await run_in_threadpool(ctx.phones.record_inbound, provider, message_id, sender, text)
    if message.routed_at is not None:
        return False, len(message.matched_account_ids)
    assert message.id is not None
    reply = CustomerReply(text=text[:1600])  # the contract's limit; the stored body is whole
    for account_id in message.matched_account_ids:
        if account_id in message.signalled_account_ids:
            continue  # signalled by an earlier, partly failed delivery of this message
        try:
            await signal_account(ctx.client, account_id, SignalName.CUSTOMER_REPLY, reply)
        except AccountNotFoundError:
            # The account's workflow has finished: the message stays stored for an operator.
            log.info("reply for finished account %s not signalled", account_id)
            continue
        await run_in_threadpool(ctx.phones.mark_signalled, message.id, account_id)
    await run_in_threadpool(ctx.phones.mark_routed, message.id)
    if not message.matched_account_ids:
        log.info("inbound SMS from unknown number %s stored", mask_phone(sender))
    return True, len(message.matched_account_ids)


async def verified_twilio_form(
    request: Request, ctx: ApiContext, required: tuple[str, ...]
) -> dict[str, str]:
    """The form Twilio posted, once its signature checks out and every ``required`` field is there."""
    raw = await request.body()
    try:
        params = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as err:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not UTF-8 form data") from err
    token = ctx.api_settings.twilio_auth_token
    verify_twilio(request, params, None if token is None else token.get_secret_value())
    form = dict(params)
    missing = [name for name in required if name not in form]
    if missing:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body", name), "msg": "Field required"} for name in missing]
        )
    return form


@router.post(
    "/sms/twilio",
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {}}, "description": "Empty TwiML"},
        403: {"description": f"Missing or invalid {TWILIO_SIGNATURE_HEADER}"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["From", "Body", "MessageSid"],
                        "properties": {
                            "From": {"type": "string"},
                            "Body": {"type": "string"},
                            "MessageSid": {"type": "string"},
                        },
                    }
                }
            },
        }
    },
)
async def twilio_inbound(request: Request, ctx: Context) -> Response:
    """Twilio's inbound-SMS webhook, verified with ``X-Twilio-Signature``; answers empty TwiML."""
    form = await verified_twilio_form(request, ctx, ("From", "Body", "MessageSid"))
    await _route_reply(ctx, "twilio", form["MessageSid"], form["From"].strip(), form["Body"])
    return Response(content=EMPTY_TWIML, media_type="application/xml")


@router.post(
    "/sms",
    response_model=InboundResult,
    responses={403: {"description": f"Missing or invalid {KINDLY_SIGNATURE_HEADER}"}},
    openapi_extra=signed_json_body(InboundSms),
)
async def json_inbound(request: Request, ctx: Context) -> InboundResult:
    """An inbound SMS as JSON ``{from, text, message_id}``, signed with ``X-Kindly-Signature``."""
    raw = await request.body()
    verify_kindly(request, raw)
    sms = parse_signed_json(InboundSms, raw)
    routed, matched = await _route_reply(ctx, "json", sms.message_id, sms.from_.strip(), sms.text)
    return InboundResult(status="accepted" if routed else "duplicate", matched_accounts=matched)


@router.post(
    "/payments",
    response_model=PaymentResult,
    responses={
        403: {"description": f"Missing or invalid {KINDLY_SIGNATURE_HEADER}"},
        404: {"description": "No workflow exists for this account"},
        409: {"description": "The reference was already used for another account or amount"},
    },
    openapi_extra=signed_json_body(PaymentNotice),
)
async def payment_notification(request: Request, ctx: Context) -> PaymentResult:
    """A repayment ``{account_id, amount, reference}``, credited once per reference."""
    raw = await request.body()
    verify_kindly(request, raw)
    notice = parse_signed_json(PaymentNotice, raw)
    row = await run_in_threadpool(
        ctx.phones.record_payment, notice.reference, notice.account_id, notice.amount
    )
    if row.account_id != notice.account_id or Decimal(row.amount) != notice.amount:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"reference {notice.reference!r} was already notified for another account or amount",
        )
    if row.signalled_at is not None:
        return PaymentResult(status="duplicate", reference=notice.reference)
    payment = Repayment(amount=notice.amount, reference=notice.reference)
    await signal_account(ctx.client, notice.account_id, SignalName.REPAYMENT, payment)
    await run_in_threadpool(ctx.phones.mark_payment_signalled, notice.reference)
    return PaymentResult(status="accepted", reference=notice.reference)
