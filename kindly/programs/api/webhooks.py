"""Inbound webhooks: customers' SMS replies (Twilio or JSON) and payment notifications.

No API key here: each request is authenticated by its signature over the raw body, verified before
the body is parsed, and each signature is good for one request (``kindly.programs.api.security``: tampered,
missing, stale or replayed signatures are answered 403 with nothing stored or signalled). Every
inbound SMS is stored, matched or not, then signalled as ``customer_reply`` to each account
registered for the sender's number. A message or payment sent again (same provider message id,
same payment reference, freshly signed) answers 200 "duplicate" without signalling again; while
another request is still signalling it, 409 with ``Retry-After`` (the sender retries, and by then
it is a duplicate, or the other request failed and this one takes over).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kindly.domain.contract import CustomerReply, Money, Repayment, SignalName
from kindly.domain.masking import mask_phone
from kindly.errors import AccountNotFoundError
from kindly.programs.api.deps import ApiContext, Context
from kindly.programs.api.security import (
    KINDLY_SIGNATURE_HEADER,
    KINDLY_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
    single_use,
    verify_kindly,
    verify_twilio,
)
from kindly.programs.operations import signal_account

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
                "name": KINDLY_TIMESTAMP_HEADER,
                "in": "header",
                "required": True,
                "description": "Unix time of the request in seconds; refused outside the tolerance",
                "schema": {"type": "string"},
            },
            {
                "name": KINDLY_SIGNATURE_HEADER,
                "in": "header",
                "required": True,
                "description": (
                    'sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>" with the webhook secret>;'
                    " each signature is good for one request"
                ),
                "schema": {"type": "string"},
            },
        ],
    }


def twilio_form_body(*fields: str, required: tuple[str, ...]) -> dict[str, Any]:
    """OpenAPI of a Twilio webhook: a form of string ``fields`` and the signature header."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": list(required),
                        "properties": {name: {"type": "string"} for name in fields},
                    }
                }
            },
        },
        "parameters": [
            {
                "name": TWILIO_SIGNATURE_HEADER,
                "in": "header",
                "required": True,
                "description": "Twilio's signature of the URL and the form; each is good for one request",
                "schema": {"type": "string"},
            }
        ],
    }


SIGNATURE_REFUSED = "Missing, invalid, stale or replayed signature"
IN_PROGRESS = "Another request is still processing this message or payment: retry later"
RETRY_AFTER_SECONDS = 5


def in_progress(what: str) -> HTTPException:
    return HTTPException(
        status.HTTP_409_CONFLICT,
        f"{what} is being processed by another request; retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def parse_signed_json(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        raise body_error(err) from err


def parse_form(model: type[M], fields: dict[str, Any]) -> M:
    """``model`` from form fields: a bad value is a 422 naming the field, as for JSON bodies."""
    try:
        return model.model_validate(fields)
    except ValidationError as err:
        raise body_error(err) from err


def body_error(err: ValidationError) -> RequestValidationError:
    return RequestValidationError(
        [
            {**item, "loc": ("body", *item["loc"])}
            for item in err.errors(include_url=False, include_input=False, include_context=False)
        ]
    )


async def route_reply(
    ctx: ApiContext, provider: str, message_id: str, sender: str, text: str
) -> tuple[bool, int]:
    """Store the message and signal its accounts once.

    Returns whether this delivery routed it (False for a duplicate) and how many accounts it matched.
    """
    message = await run_in_threadpool(ctx.phones.record_inbound, provider, message_id, sender, text)
    if message.routed_at is not None:
        return False, len(message.matched_account_ids)
    assert message.id is not None
    if not await run_in_threadpool(ctx.phones.claim_inbound, message.id):
        refreshed = await run_in_threadpool(ctx.phones.record_inbound, provider, message_id, sender, text)
        if refreshed.routed_at is not None:  # routed by the request that held it, just now
            return False, len(message.matched_account_ids)
        raise in_progress(f"message {message_id!r}")
    try:
        await _signal_reply(ctx, message.id, message.matched_account_ids, message.signalled_account_ids, text)
    except BaseException:
        await run_in_threadpool(ctx.phones.release_inbound, message.id)
        raise
    await run_in_threadpool(ctx.phones.mark_routed, message.id)
    if not message.matched_account_ids:
        log.info("inbound SMS from unknown number %s stored", mask_phone(sender))
    return True, len(message.matched_account_ids)


async def _signal_reply(
    ctx: ApiContext, row_id: int, matched: list[str], already_signalled: list[str], text: str
) -> None:
    reply = CustomerReply(text=text[:1600])  # the contract's limit; the stored body is whole
    for account_id in matched:
        if account_id in already_signalled:
            continue  # signalled by an earlier, partly failed delivery of this message
        try:
            await signal_account(ctx.client, account_id, SignalName.CUSTOMER_REPLY, reply)
        except AccountNotFoundError:
            # The account's workflow has finished: the message stays stored for an operator.
            log.info("reply for finished account %s not signalled", account_id)
            continue
        await run_in_threadpool(ctx.phones.mark_signalled, row_id, account_id)


@asynccontextmanager
async def twilio_webhook(
    request: Request, ctx: ApiContext, required: tuple[str, ...]
) -> AsyncIterator[dict[str, str]]:
    """The form Twilio posted, once its signature checks out, has not been used before and every
    ``required`` field is there; the signature counts as used only if the work inside succeeds."""
    raw = await request.body()
    try:
        params = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as err:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not UTF-8 form data") from err
    token = ctx.api_settings.twilio_auth_token
    use = verify_twilio(request, params, None if token is None else token.get_secret_value())
    async with single_use(ctx.phones.signatures, use):
        form = dict(params)
        missing = [name for name in required if name not in form]
        if missing:
            raise RequestValidationError(
                [{"type": "missing", "loc": ("body", name), "msg": "Field required"} for name in missing]
            )
        yield form


@asynccontextmanager
async def kindly_webhook(request: Request, ctx: ApiContext, model: type[M]) -> AsyncIterator[M]:
    """The signed JSON body as ``model``, once its signature, timestamp and first use check out."""
    raw = await request.body()
    use = verify_kindly(request, raw)
    async with single_use(ctx.phones.signatures, use):
        yield parse_signed_json(model, raw)


@router.post(
    "/sms/twilio",
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {}}, "description": "Empty TwiML"},
        403: {"description": f"{SIGNATURE_REFUSED} ({TWILIO_SIGNATURE_HEADER})"},
        409: {"description": IN_PROGRESS},
    },
    openapi_extra=twilio_form_body("From", "Body", "MessageSid", required=("From", "Body", "MessageSid")),
)
async def twilio_inbound(request: Request, ctx: Context) -> Response:
    """Twilio's inbound-SMS webhook, verified with ``X-Twilio-Signature``; answers empty TwiML."""
    async with twilio_webhook(request, ctx, ("From", "Body", "MessageSid")) as form:
        await route_reply(ctx, "twilio", form["MessageSid"], form["From"].strip(), form["Body"])
    return Response(content=EMPTY_TWIML, media_type="application/xml")


@router.post(
    "/sms",
    response_model=InboundResult,
    responses={403: {"description": SIGNATURE_REFUSED}, 409: {"description": IN_PROGRESS}},
    openapi_extra=signed_json_body(InboundSms),
)
async def json_inbound(request: Request, ctx: Context) -> InboundResult:
    """An inbound SMS as JSON ``{from, text, message_id}``, signed (``X-Kindly-Timestamp``,
    ``X-Kindly-Signature``)."""
    async with kindly_webhook(request, ctx, InboundSms) as sms:
        routed, matched = await route_reply(ctx, "json", sms.message_id, sms.from_.strip(), sms.text)
    return InboundResult(status="accepted" if routed else "duplicate", matched_accounts=matched)


@router.post(
    "/payments",
    response_model=PaymentResult,
    responses={
        403: {"description": SIGNATURE_REFUSED},
        404: {"description": "No workflow exists for this account"},
        409: {
            "description": "The reference was already used for another account or amount; or the account "
            f"is closed (the payment is kept for an operator, not signalled); or: {IN_PROGRESS}"
        },
    },
    openapi_extra=signed_json_body(PaymentNotice),
)
async def payment_notification(request: Request, ctx: Context) -> PaymentResult:
    """A repayment ``{account_id, amount, reference}``, credited once per reference.

    The reference is the notification's primary key, and the request that signals holds a claim on
    it: of two identical notifications arriving together one signals, the other answers "duplicate"
    (or 409 while the first is still at it).
    """
    async with kindly_webhook(request, ctx, PaymentNotice) as notice:
        return await _credit(ctx, notice)


async def _credit(ctx: ApiContext, notice: PaymentNotice) -> PaymentResult:
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
    if not await run_in_threadpool(ctx.phones.claim_payment, notice.reference):
        again = await run_in_threadpool(
            ctx.phones.record_payment, notice.reference, notice.account_id, notice.amount
        )
        if again.signalled_at is not None:
            return PaymentResult(status="duplicate", reference=notice.reference)
        raise in_progress(f"payment {notice.reference!r}")
    payment = Repayment(amount=notice.amount, reference=notice.reference)
    try:
        await signal_account(ctx.client, notice.account_id, SignalName.REPAYMENT, payment)
    except BaseException:
        await run_in_threadpool(ctx.phones.release_payment, notice.reference)
        raise
    await run_in_threadpool(ctx.phones.mark_payment_signalled, notice.reference)
    return PaymentResult(status="accepted", reference=notice.reference)
