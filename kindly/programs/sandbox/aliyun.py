"""The sandbox's side of Alibaba Cloud SMS (dysmsapi 2017-05-25), for the official SDK pointed at it
(``endpoint="127.0.0.1:<port>"``, ``protocol="http"``).

The SDK sends ``SendSms`` as an RPC-style ``POST /`` whose parameters are all in the query string
(``PhoneNumbers``, ``SignName``, ``TemplateCode``, ``TemplateParam``, ``OutId``) and whose body is empty;
``x-acs-action: SendSms`` and ``x-acs-version: 2017-05-25`` name the call. Its ``Authorization`` header is
Alibaba Cloud's V3 signature, which the sandbox checks as the gateway does::

    ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<a;b;...>,Signature=<hex>

    canonical = METHOD \\n path \\n sorted query, each key=value percent-encoded (RFC 3986)
                \\n each signed header "name:value\\n" \\n signed header names \\n x-acs-content-sha256
    signature = hex HMAC-SHA256(AccessKey secret, "ACS3-HMAC-SHA256\\n" + hex SHA-256(canonical))

``host`` and every ``x-acs-*`` header must be signed, ``x-acs-content-sha256`` must be the body's SHA-256,
``x-acs-date`` within 15 minutes, and a nonce is good once. A refusal is Alibaba Cloud's error JSON
(``RequestId``, ``HostId``, ``Code``, ``Message``, ``Recommend``) with its status: 400
``IncompleteSignature``, ``SignatureDoesNotMatch``, ``InvalidTimeStamp.Expired``, ``SignatureNonceUsed``;
404 ``InvalidAccessKeyId.NotFound``; so the SDK raises what it raises against the real service.

A signed call is then answered as ``SendSms`` answers, HTTP 200 with ``Code`` ``OK`` (and the ``BizId``)
or a business code. With ``registered_templates_file``, a sign name other than its ``aliyun.sign_name``
is ``isv.SMS_SIGNATURE_ILLEGAL``, an unknown template code ``isv.SMS_TEMPLATE_ILLEGAL``, a missing
placeholder ``isv.TEMPLATE_MISSING_PARAMETERS``, a value over ``max_param_length``
``isv.PARAM_LENGTH_LIMIT``; and the inbox shows the text the customer reads (``【签名】`` and the registered
text filled in), under the Kindly template's name. More than the per-number frequency limits
(``COLLECTIONS_SANDBOX_FREQUENCY_PER_*``) is ``isv.BUSINESS_LIMIT_CONTROL`` ("触发分钟级流控Permits:1").

Numbers whose last five digits are magic get one refusal each, for tests: ``99001``
``isv.MOBILE_NUMBER_ILLEGAL`` and ``99002`` ``isv.AMOUNT_NOT_ENOUGH`` (HTTP 200), ``99003``
``isp.SYSTEM_ERROR`` (HTTP 500), ``99004`` ``Throttling.User`` (HTTP 400); ``undeliverable_suffix``
(``0000``) is accepted, then gets a failed delivery receipt (``MK:0001``, no such subscriber).

Alibaba Cloud does NOT deduplicate on ``OutId`` (its SendSms "does not support idempotence"); the sandbox
does, as for every other shape it speaks, because Kindly's idempotency key model assumes the gateway
drops a repeated key: the same ``OutId`` twice is one message, answered with the same ``BizId``. The
``BizId`` is the mailbox id's number plus 9×10¹⁷, and ``^0``, as Alibaba Cloud's look
(``900000000000000012^0`` for ``SB000012``).

With ``push_format="aliyun"`` receipts and replies go to Kindly as Alibaba Cloud's HTTP batch pushes,
JSON arrays answered ``{"code": 0, "msg": "..."}``: ``SmsReport`` to ``<callback_base_url>/SmsReport``
and ``SmsUp`` to ``<callback_base_url>/SmsUp``, numbers as Alibaba Cloud writes them (a mainland
number's 11 digits) and times in Beijing time (``2026-01-02 09:30:00``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote
from zoneinfo import ZoneInfo

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from kindly.domain.messages.registered import (
    RegisteredTemplate,
    load_registered_templates,
    placeholders,
    registered_body,
)
from kindly.programs.sandbox.config import SandboxSettings
from kindly.programs.sandbox.limits import FrequencyLimiter
from kindly.programs.sandbox.store import Mailbox, StoredMessage

ALGORITHM = "ACS3-HMAC-SHA256"
MAX_SKEW_SECONDS = 15 * 60
PUSH_ATTEMPTS = 20
BEIJING = ZoneInfo("Asia/Shanghai")
DEST_CODE = "1234"
"""The reply's extension number (上行扩展码), which Alibaba Cloud assigns to the signature."""
NO_OUT_ID = "aliyun-nonce:"
"""The mailbox key of a send without ``OutId``: its nonce, so that nothing deduplicates it."""
MAGIC: dict[str, tuple[int, str, str]] = {
    "99001": (200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"),
    "99002": (200, "isv.AMOUNT_NOT_ENOUGH", "账户余额不足"),
    "99003": (500, "isp.SYSTEM_ERROR", "The request processing has failed due to some unknown error."),
    "99004": (400, "Throttling.User", "Request was denied due to user flow control."),
}
_WINDOW_NAMES = {"minute": "分钟级", "hour": "小时级", "day": "天级"}
_AUTHORIZATION = re.compile(r"(\S+) Credential=([^,]*),SignedHeaders=([^,]*),Signature=([0-9a-fA-F]*)")
ReceiptLater = Callable[[SandboxSettings, Mailbox, StoredMessage], None]


class _AcsRoute(APIRoute):
    """A route for Alibaba Cloud's signed calls only: ``POST /`` is also where other clouds' SDKs send,
    so a request without ``x-acs-action`` (or an ``ACS3-`` signature) is left to the routes after it."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if b"x-acs-action" not in headers and not headers.get(b"authorization", b"").startswith(b"ACS3-"):
                return Match.NONE, {}
        return super().matches(scope)


def biz_id(message_id: str) -> str:
    """The ``BizId`` of a mailbox message (``SB000012`` → ``900000000000000012^0``)."""
    digits = "".join(ch for ch in message_id if ch.isdigit()) or "0"
    return f"{900_000_000_000_000_000 + int(digits)}^0"


def alibaba_number(phone: str) -> str:
    """A number as Alibaba Cloud writes it: a mainland number's 11 digits, others without ``+``."""
    return phone[3:] if phone.startswith("+86") else phone.removeprefix("+")


def inbox_number(raw: str) -> str | None:
    """``PhoneNumbers`` as the inbox keys it (E.164, like the other shapes), or None if not a number;
    mainland numbers may come bare (11 digits) or with ``+86``, ``0086`` or ``86``."""
    digits = raw.strip().removeprefix("+").removeprefix("00")
    if not (digits.isascii() and digits.isdecimal()):
        return None
    if len(digits) == 11 and digits.startswith("1"):
        return f"+86{digits}"
    return f"+{digits}" if 8 <= len(digits) <= 15 else None


def router(
    settings: SandboxSettings, box: Mailbox, limiter: FrequencyLimiter, receipt_later: ReceiptLater
) -> APIRouter:
    """``POST /`` for the SDK's ``SendSms``; see the module docstring."""
    file = settings.registered_templates_file
    registered = load_registered_templates(file).aliyun if file is not None else None
    by_code: dict[str, tuple[str, RegisteredTemplate]] = {
        template.code: (name, template)
        for by_template in (registered.by_label().values() if registered else [])
        for name, locales in by_template.items()
        for template in locales.values()
    }
    nonces: dict[str, float] = {}
    api = APIRouter(route_class=_AcsRoute)

    @api.post("/", include_in_schema=False)
    async def send_sms(request: Request) -> JSONResponse:
        body = await request.body()
        refusal = _check_signature(request, body, settings, nonces)
        if refusal is not None:
            return refusal
        if request.headers.get("x-acs-action") != "SendSms":
            return _error(404, "InvalidAction.NotFound", "Specified api is not found, please check your url.")
        if request.headers.get("x-acs-version") != "2017-05-25":
            return _error(400, "InvalidVersion", "Specified parameter Version is not valid.")
        params = dict(parse_qsl(request.url.query, keep_blank_values=True))
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode(), keep_blank_values=True))  # RPC also takes a form body
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                return _error(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if "," in params["PhoneNumbers"]:
            return _refuse("isv.INVALID_PARAMETERS", "沙箱每次只接受一个号码 (the sandbox takes one number)")
        phone = inbox_number(params["PhoneNumbers"])
        if phone is None:
            return _refuse("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if phone[-5:] in MAGIC:
            status, magic, said = MAGIC[phone[-5:]]
            return _refuse(magic, said) if status == 200 else _error(status, magic, said)
        sign, code = params["SignName"], params["TemplateCode"]
        try:
            values = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            values = None
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            return _refuse("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        label, text = code, f"【{sign}】{code} {json.dumps(values, ensure_ascii=False)}"
        if registered is not None:
            if sign != registered.sign_name:
                return _refuse("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
            if code not in by_code:
                return _refuse("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
            label, template = by_code[code]
            if any(name not in values for name in placeholders("aliyun", template.text)):
                return _refuse("isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
            if any(len(value) > registered.max_param_length for value in values.values()):
                return _refuse("isv.PARAM_LENGTH_LIMIT", "参数超出长度限制")
            text = registered_body("aliyun", sign, template, values)
        out_id = params.get("OutId") or ""
        known = _sent_with(box, out_id) if out_id else None
        if known is not None:  # a retry: the first send's answer
            return _sent(known)
        window = limiter.take(phone)
        if window is not None:
            return _refuse(
                "isv.BUSINESS_LIMIT_CONTROL",
                f"触发{_WINDOW_NAMES[window]}流控Permits:{getattr(settings, f'frequency_per_{window}')}",
            )
        key = out_id or NO_OUT_ID + request.headers.get("x-acs-signature-nonce", uuid.uuid4().hex)
        message, new = box.accept(phone, text, key, label)
        if new:
            receipt_later(settings, box, message)
        return _sent(message)

    return api


def _check_signature(
    request: Request, body: bytes, settings: SandboxSettings, nonces: dict[str, float]
) -> JSONResponse | None:
    """None when the request carries a good V3 signature by the sandbox's AccessKey, else the refusal."""
    found = _AUTHORIZATION.fullmatch(request.headers.get("authorization", ""))
    if found is None or found.group(1) != ALGORITHM:
        return _error(
            400, "IncompleteSignature", "The request signature does not conform to Aliyun standards."
        )
    _, key_id, signed, signature = found.groups()
    if key_id != settings.aliyun_access_key_id:
        return _error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    names = signed.split(";")
    unsigned = [h for h in request.headers if (h == "host" or h.startswith("x-acs-")) and h not in names]
    if unsigned:
        return _error(400, "IncompleteSignature", f"Header(s) {', '.join(sorted(unsigned))} must be signed.")
    payload_hash = request.headers.get("x-acs-content-sha256", "")
    if not hmac.compare_digest(payload_hash, hashlib.sha256(body).hexdigest()):
        return _error(400, "SignatureDoesNotMatch", "x-acs-content-sha256 is not the SHA-256 of the body.")
    try:
        signed_at = datetime.strptime(request.headers.get("x-acs-date", ""), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return _error(
            400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
        )
    if abs(signed_at.replace(tzinfo=UTC).timestamp() - time.time()) > MAX_SKEW_SECONDS:
        return _error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
    query = sorted((quote(k, safe="~"), quote(v, safe="~")) for k, v in parse_qsl(request.url.query, True))
    headers = "".join(
        f"{name}:{','.join(sorted(v.strip() for v in request.headers.getlist(name)))}\n"
        for name in sorted(names)
    )
    canonical = "\n".join(
        [
            request.method,
            quote(request.url.path or "/", safe="/~"),
            "&".join(f"{k}={v}" for k, v in query),
            headers,
            signed,
            payload_hash,
        ]
    )
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac.new(
        settings.aliyun_access_key_secret.get_secret_value().encode(), to_sign.encode(), "sha256"
    )
    if not hmac.compare_digest(expected.hexdigest(), signature.lower()):
        return _error(
            400,
            "SignatureDoesNotMatch",
            f"Specified signature does not match our calculation. server string to sign is:{to_sign}",
        )
    now = time.monotonic()
    for old in [n for n, at in nonces.items() if now - at > MAX_SKEW_SECONDS]:
        del nonces[old]
    nonce = request.headers.get("x-acs-signature-nonce", "")
    if not nonce or nonce in nonces:
        return _error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
    nonces[nonce] = now
    return None


def _sent_with(box: Mailbox, out_id: str) -> StoredMessage | None:
    """The message already accepted under ``out_id``, if any (read before the frequency limit counts a
    retry as a second message)."""
    return next((m for m in reversed(box.messages) if m.idempotency_key == out_id), None)


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _sent(message: StoredMessage) -> JSONResponse:
    return JSONResponse(
        {"RequestId": _request_id(), "Code": "OK", "Message": "OK", "BizId": biz_id(message.id)}
    )


def _refuse(code: str, message: str) -> JSONResponse:
    """A business refusal: HTTP 200 and the code in the body, as ``SendSms`` answers one."""
    return JSONResponse({"RequestId": _request_id(), "Code": code, "Message": message})


def _error(status: int, code: str, message: str) -> JSONResponse:
    """A refusal by the API gateway, in Alibaba Cloud's error shape."""
    return JSONResponse(
        {
            "RequestId": _request_id(),
            "HostId": "dysmsapi.aliyuncs.com",
            "Code": code,
            "Message": message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=Dysmsapi",
        },
        status_code=status,
    )


def _beijing(at: datetime) -> str:
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _parts(body: str) -> int:
    """Billed parts as Alibaba Cloud counts them: 70 characters in one, 67 a part beyond."""
    return 1 if len(body) <= 70 else math.ceil(len(body) / 67)


def _answer(response: httpx.Response) -> tuple[bool, str]:
    """Whether Kindly took a push, and what it said. Alibaba Cloud pushes again when the answer is not HTTP
    200; the sandbox also when it names a ``code`` other than 0, so that Kindly may say "not yet" (a
    receipt that came before its send was recorded) either way."""
    try:
        said: Any = response.json()
    except ValueError:
        said = None
    code = said.get("code") if isinstance(said, dict) else None
    if code is None:
        return response.status_code == 200, f"HTTP {response.status_code}"
    msg = said.get("msg")
    return response.status_code == 200 and code == 0, f"code {code}" + (f" {msg}" if msg else "")


async def push_receipt(settings: SandboxSettings, box: Mailbox, message: StoredMessage) -> None:
    """POST the message's ``SmsReport`` to ``<callback_base_url>/SmsReport`` until Kindly takes it (its
    send may not be recorded yet when the first push arrives), as Alibaba Cloud retries a push."""
    if settings.callback_base_url is None:
        return
    dead = message.phone.endswith(settings.undeliverable_suffix)
    error_code, error_message = ("MK:0001", "用户不存在") if dead else ("DELIVERED", "用户接收成功")
    box.set_status(message.id, "failed" if dead else "delivered", error_code if dead else None)
    key = message.idempotency_key or ""
    report = {
        "phone_number": alibaba_number(message.phone),
        "send_time": _beijing(message.at),
        "report_time": _beijing(datetime.now(UTC)),
        "success": not dead,
        "err_code": error_code,
        "err_msg": error_message,
        "sms_size": str(_parts(message.body)),
        "biz_id": biz_id(message.id),
        "out_id": "" if key.startswith(NO_OUT_ID) else key,
    }
    url = settings.callback_base_url.rstrip("/") + "/SmsReport"
    async with httpx.AsyncClient(timeout=10) as client:
        for attempt in range(PUSH_ATTEMPTS):
            try:
                response = await client.post(url, json=[report])
            except httpx.HTTPError as err:
                box.set_kindly_answer(message.id, f"unreachable ({type(err).__name__}), retrying")
            else:
                taken, said = _answer(response)
                if taken:
                    box.set_kindly_answer(message.id, said)
                    return
                box.set_kindly_answer(message.id, f"{said}, retrying")
            await asyncio.sleep(min(0.1 * 2**attempt, 5.0))
    box.set_kindly_answer(message.id, f"no answer after {PUSH_ATTEMPTS} attempts")


async def push_reply(settings: SandboxSettings, box: Mailbox, message: StoredMessage) -> None:
    """POST a typed reply as ``SmsUp`` to ``<callback_base_url>/SmsUp``; a 502 when Kindly does not take
    it. Its ``sign_name`` is the signature of the last message the number was sent."""
    if settings.callback_base_url is None:
        return
    sent = [m.body for m in box.for_phone(message.phone) if m.direction == "out" and m.body.startswith("【")]
    sign = sent[-1][1:].split("】", 1)[0] if sent else ""
    reply = {
        "phone_number": alibaba_number(message.phone),
        "send_time": _beijing(message.at),
        "content": message.body,
        "sign_name": sign,
        "dest_code": DEST_CODE,
        "sequence_id": int("".join(ch for ch in message.id if ch.isdigit()) or 0),
    }
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(settings.callback_base_url.rstrip("/") + "/SmsUp", json=[reply])
    except httpx.HTTPError as err:
        box.set_status(message.id, "unreachable")
        raise HTTPException(502, f"Kindly's SmsUp callback is unreachable ({type(err).__name__})") from err
    taken, said = _answer(response)
    box.set_kindly_answer(message.id, said)
    if not taken:
        box.set_status(message.id, "refused")
        raise HTTPException(502, f"Kindly's SmsUp callback answered {said}")
    box.set_status(message.id, "forwarded")
