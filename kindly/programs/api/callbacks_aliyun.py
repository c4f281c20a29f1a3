"""Alibaba Cloud SMS's HTTP batch pushes (HTTP批量推送模式): delivery reports (``SmsReport``) and replies
(``SmsUp``), each a JSON array, to ``/callbacks/aliyun/{secret}/SmsReport`` and ``.../SmsUp``.

Alibaba Cloud signs no push: the secret in the path authenticates it (``callback_batches``). It takes a
push as delivered when the answer is HTTP 200 with a numeric ``code``, and pushes it again (after 1, 5
and 10 minutes) otherwise, so every answer but 200 ``{"code": 0, "msg": "成功"}`` asks for the batch again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from kindly.programs.api.callback_batches import (
    AnswerShape,
    ProviderText,
    answer,
    optional_text,
    read_batch,
    secret_checked,
    to_e164,
)
from kindly.programs.api.callback_routing import (
    VACANT_NUMBER_CODES,
    Reply,
    Report,
    in_time_order,
    record_report,
    route_reply,
)
from kindly.programs.api.deps import Context

PROVIDER = "aliyun"
ANSWER = AnswerShape(code_key="code", message_key="msg", ok_message="成功")

router = APIRouter(
    prefix="/callbacks/aliyun/{secret}",
    tags=["provider callbacks"],
    dependencies=[Depends(secret_checked(PROVIDER))],
)


class AliyunReport(BaseModel):
    """One item of an ``SmsReport`` push; only the fields Kindly reads are checked."""

    model_config = ConfigDict(extra="ignore")

    biz_id: ProviderText = Field(min_length=1, max_length=128, description="BizId the send returned")
    success: StrictBool = Field(description="whether the handset received the message")
    err_code: ProviderText | None = Field(
        default=None, description="the report's code, DELIVERED or the failure's"
    )
    out_id: Any = Field(default=None, description="the OutId of the send: Kindly's idempotency key")
    phone_number: Any = Field(default=None, description="not read: the report is matched by biz_id")


class AliyunReply(BaseModel):
    """One item of an ``SmsUp`` push."""

    model_config = ConfigDict(extra="ignore")

    phone_number: ProviderText = Field(description="the sender: 13800138000, or with its country code")
    content: str = Field(max_length=1600)
    send_time: ProviderText | None = None
    sequence_id: ProviderText | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("phone_number")
    @classmethod
    def _e164(cls, value: str) -> str:
        return to_e164(value)


def _array_of(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": model.model_json_schema()}}
            },
        }
    }


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": '`{"code": 0, "msg": "成功"}`: every item taken'},
    404: {"description": "Wrong or unset secret: answered as a path that does not exist"},
    409: {"description": "An item must wait (its send is not recorded yet): push the batch again"},
    422: {"description": "Malformed items, each named in `detail`; the others were taken"},
}


@router.post(
    "/SmsReport", response_class=JSONResponse, responses=RESPONSES, openapi_extra=_array_of(AliyunReport)
)
async def sms_report(request: Request, ctx: Context) -> JSONResponse:
    """Delivery reports: ``success`` true is delivered, false a failure (permanent for a vacant or
    invalid number, which stops SMS to it). Matched by ``biz_id``, else by ``out_id``."""
    batch = await read_batch(request, AliyunReport)
    results = list(batch.results)
    for index, item in batch.items:
        code = item.err_code.strip() if item.err_code else None
        report = Report(
            index=index,
            id_field="biz_id",
            message_id=item.biz_id,
            delivered=item.success,
            error_code=code,
            permanent=code in VACANT_NUMBER_CODES,
            reference=optional_text(item.out_id),
        )
        results.append(await record_report(ctx, report))
    return answer(ANSWER, "aliyun SmsReport", results)


@router.post("/SmsUp", response_class=JSONResponse, responses=RESPONSES, openapi_extra=_array_of(AliyunReply))
async def sms_up(request: Request, ctx: Context) -> JSONResponse:
    """Customers' replies, routed like every inbound SMS; one per ``sequence_id``."""
    batch = await read_batch(request, AliyunReply)
    results = list(batch.results)
    replies = [
        Reply(index, item.phone_number, item.content, item.send_time or "", item.sequence_id)
        for index, item in batch.items
    ]
    for reply in in_time_order(replies):
        results.append(await route_reply(request, ctx, PROVIDER, reply))
    return answer(ANSWER, "aliyun SmsUp", results)
