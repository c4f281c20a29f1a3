"""Tencent Cloud SMS's callbacks: status reports (短信下发状态通知, a JSON array of up to 100) to
``/callbacks/tencent/{secret}/status`` and replies (短信回复, one JSON object) to ``.../reply``.

Tencent Cloud signs no callback (it publishes the addresses it calls from instead): the secret in the
path authenticates it (``callback_batches``). It reads ``result`` 0 as taken and pushes a failed
callback twice more, so every answer but 200 ``{"result": 0, "errmsg": "OK"}`` asks for it again.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

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

PROVIDER = "tencent"
ANSWER = AnswerShape(code_key="result", message_key="errmsg", ok_message="OK")

router = APIRouter(
    prefix="/callbacks/tencent/{secret}",
    tags=["provider callbacks"],
    dependencies=[Depends(secret_checked(PROVIDER))],
)


class TencentReport(BaseModel):
    """One status report; only the fields Kindly reads are checked."""

    model_config = ConfigDict(extra="ignore")

    sid: ProviderText = Field(min_length=1, max_length=128, description="SerialNo the send returned")
    report_status: Literal["SUCCESS", "FAIL"]
    errmsg: ProviderText | None = Field(
        default=None, description="the report's code: DELIVRD or the failure's"
    )
    ext: Any = Field(default=None, description="the send's SessionContext: Kindly's idempotency key")
    mobile: Any = Field(default=None, description="not read: the report is matched by sid")


class TencentReply(BaseModel):
    """One reply."""

    model_config = ConfigDict(extra="ignore")

    nationcode: ProviderText | None = Field(default=None, description="country code, 86 by default")
    mobile: ProviderText = Field(description="the sender's national number")
    text: str = Field(max_length=1600)
    time: int = Field(ge=0, description="unix seconds")

    @field_validator("mobile")
    @classmethod
    def _e164(cls, value: str, info: ValidationInfo) -> str:
        return to_e164(value, info.data.get("nationcode") or "86")


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


REPLY_SCHEMA = TencentReply.model_json_schema()
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": '`{"result": 0, "errmsg": "OK"}`: every item taken'},
    404: {"description": "Wrong or unset secret: answered as a path that does not exist"},
    409: {"description": "An item must wait (its send is not recorded yet): push it again"},
    422: {"description": "Malformed items, each named in `detail`; the others were taken"},
}


@router.post(
    "/status",
    response_class=JSONResponse,
    responses=RESPONSES,
    openapi_extra=_body({"type": "array", "items": TencentReport.model_json_schema()}),
)
async def status_report(request: Request, ctx: Context) -> JSONResponse:
    """Status reports: ``SUCCESS`` is delivered, ``FAIL`` a failure (permanent for a vacant or invalid
    number, which stops SMS to it). Matched by ``sid``, else by ``ext``."""
    batch = await read_batch(request, TencentReport)
    results = list(batch.results)
    for index, item in batch.items:
        code = item.errmsg.strip() if item.errmsg else None
        report = Report(
            index=index,
            id_field="sid",
            message_id=item.sid,
            delivered=item.report_status == "SUCCESS",
            error_code=code,
            permanent=code in VACANT_NUMBER_CODES,
            reference=optional_text(item.ext),
        )
        results.append(await record_report(ctx, report))
    return answer(ANSWER, "tencent status", results)


@router.post(
    "/reply",
    response_class=JSONResponse,
    responses=RESPONSES,
    openapi_extra=_body({"oneOf": [REPLY_SCHEMA, {"type": "array", "items": REPLY_SCHEMA}]}),
)
async def reply(request: Request, ctx: Context) -> JSONResponse:
    """A customer's reply (an array of them is taken too), routed like every inbound SMS. Tencent gives
    it no id: one per sender, ``time`` and text."""
    batch = await read_batch(request, TencentReply, single_object=True)
    results = list(batch.results)
    replies = [Reply(index, item.mobile, item.text, f"{item.time:012d}", None) for index, item in batch.items]
    for one in in_time_order(replies):
        results.append(await route_reply(request, ctx, PROVIDER, one))
    return answer(ANSWER, "tencent reply", results)
