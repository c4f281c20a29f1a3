"""The sandbox's side of Tencent Cloud SMS (API 2021-01-11): ``SendSms`` as the official SDK sends it to
``endpoint="127.0.0.1:<port>"`` over http, and Tencent Cloud's status and reply callbacks.

The SDK sends ``POST /`` with a JSON body of the request's parameters and headers ``X-TC-Action:
SendSms``, ``X-TC-Version: 2021-01-11``, ``X-TC-Timestamp`` (unix seconds), ``X-TC-Region`` and
``Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<UTC date>/sms/tc3_request,
SignedHeaders=content-type;host, Signature=<hex>``. Alibaba Cloud's API is also ``POST /``: each
router's route matches its own cloud's requests only (here: :func:`handles`, ``X-TC-Action`` present),
and :func:`answer` serves a request whoever routes it.

Like Tencent Cloud, the sandbox answers HTTP 200 whatever happens: a refused request carries
``Response.Error`` (the SDK raises ``TencentCloudSDKException`` with its code), a refused number a
``SendStatus`` whose ``Code`` is not ``Ok``. It checks, in Tencent Cloud's order: the signature
(:func:`signature_problem`), the SmsSdkAppId, and with ``registered_templates_file`` set the signature
name, the template and its values' count and length (``max_param_length``), storing the text RENDERED,
as the customer reads it; then the number (one per request, as Kindly sends). Numbers ending so get a
refusal, for tests:

* ``99001``: ``InvalidParameterValue.IncorrectPhoneNumber`` (permanent);
* ``99002``: ``FailedOperation.InsufficientBalanceInSmsPackage`` (the account);
* ``99003``: ``InternalError.Timeout`` (transient);
* ``99004``: the whole request refused with ``RequestLimitExceeded`` (transient, the SDK's exception);
* ``99005``: ``FailedOperation.PhoneNumberInBlacklist`` (permanent: the customer unsubscribed);
* ``undeliverable_suffix`` (``0000``): taken, then a ``FAIL`` status callback.

Then the per-number frequency limit (``FrequencyLimiter``): the sandbox's minute, hour and day windows
answer ``LimitExceeded.PhoneNumberThirtySecondLimit`` (Tencent Cloud's shortest window is 30 seconds),
``...OneHourLimit`` and ``...DailyLimit``.

``SessionContext`` (Kindly's idempotency key) deduplicates: the same one twice is one message and the
same ``SerialNo``, and counts once against the limit. Tencent Cloud itself does NOT deduplicate (it
only echoes ``SessionContext``); the sandbox does so that a retried activity shows as one message.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from kindly.domain.messages.registered import ProviderTemplates, load_registered_templates, registered_body
from kindly.errors import ConfigurationError
from kindly.programs.sandbox.config import SandboxSettings
from kindly.programs.sandbox.limits import FrequencyLimiter
from kindly.programs.sandbox.store import Mailbox, StoredMessage

ReceiptLater = Callable[[SandboxSettings, Mailbox, StoredMessage], None]

ACTION_HEADER = "x-tc-action"
VERSION = "2021-01-11"
REFUSED_NUMBERS = {
    "99001": "InvalidParameterValue.IncorrectPhoneNumber",
    "99002": "FailedOperation.InsufficientBalanceInSmsPackage",
    "99003": "InternalError.Timeout",
    "99005": "FailedOperation.PhoneNumberInBlacklist",
}
REFUSED_REQUEST_SUFFIX = "99004"
LIMIT_CODES = {
    "minute": "LimitExceeded.PhoneNumberThirtySecondLimit",
    "hour": "LimitExceeded.PhoneNumberOneHourLimit",
    "day": "LimitExceeded.PhoneNumberDailyLimit",
}
RECEIPT_ATTEMPTS = 20
"""Receipt pushes until Kindly answers ``result`` 0. Tencent Cloud tries three times (once, then twice
more); the sandbox tries longer because its receipt may arrive before Kindly has recorded the send."""
REPLY_ATTEMPTS = 3
"""Reply pushes, as Tencent Cloud makes them: a person waits on the inbox's form meanwhile."""
BEIJING = timezone(timedelta(hours=8))
VACANT = "MK:0001"
"""The carrier's report code of a dead (``undeliverable_suffix``) number: China Mobile's "no such
subscriber", a permanent failure."""


class Refusal(Exception):
    """A whole request refused: Tencent Cloud's ``Response.Error``, its code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code, self.message = code, message


_AUTHORIZATION = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<id>[^/\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z]+)/tc3_request,"
    r"\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)
FRESHNESS_SECONDS = 300
"""How far ``X-TC-Timestamp`` may be from the sandbox's clock, as at Tencent Cloud (five minutes)."""


def signature_problem(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret_id: str,
    secret_key: str,
    now: float,
) -> tuple[str, str] | None:
    """What is wrong with a request's TC3-HMAC-SHA256 signature, as Tencent Cloud's code and message, or
    None. ``headers`` is looked up by lower-case name. The canonical request is the method, the path, the
    query string, each signed header as ``name:value`` (value trimmed and lower-cased), the signed
    headers' names and the body's SHA-256; the key is derived from ``"TC3" + secret_key`` by HMAC-SHA256
    over the UTC date, ``sms`` and ``tc3_request`` in turn."""
    match = _AUTHORIZATION.fullmatch(headers.get("authorization", "").strip())
    if match is None:
        return "AuthFailure.InvalidAuthorization", "Authorization is not a TC3-HMAC-SHA256 signature"
    if not hmac.compare_digest(match["id"].encode(), secret_id.encode()):
        return "AuthFailure.SecretIdNotFound", "the SecretId is not known"
    stamp = headers.get("x-tc-timestamp", "")
    if not stamp.isdigit():
        return "MissingParameter", "X-TC-Timestamp is missing or not unix seconds"
    if abs(now - int(stamp)) > FRESHNESS_SECONDS:
        return "AuthFailure.SignatureExpire", "X-TC-Timestamp is more than five minutes from now"
    date = datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%d")
    signed = match["headers"].split(";")
    if match["date"] != date or match["service"] != "sms" or not {"content-type", "host"} <= set(signed):
        return "AuthFailure.SignatureFailure", "the credential scope or the signed headers are wrong"
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip().lower()}\n" for name in signed)
    unsigned = headers.get("x-tc-content-sha256") == "UNSIGNED-PAYLOAD"
    payload_hash = hashlib.sha256(b"UNSIGNED-PAYLOAD" if unsigned else body).hexdigest()
    canonical = "\n".join([method, path, query, canonical_headers, match["headers"], payload_hash])
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"TC3-HMAC-SHA256\n{stamp}\n{date}/sms/tc3_request\n{digest}"
    key = ("TC3" + secret_key).encode()
    for part in (date, "sms", "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        return "AuthFailure.SignatureFailure", "the signature does not match the request"
    return None


def handles(request_headers: Mapping[str, str]) -> bool:
    """Whether a ``POST /`` is Tencent Cloud's (it carries ``X-TC-Action``), not Alibaba Cloud's."""
    return any(name.lower() == ACTION_HEADER for name in request_headers)


class _TencentRoute(APIRoute):
    """A route for Tencent Cloud's calls only: others (Alibaba Cloud's) fall through to the next route."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and not handles({name.decode(): "" for name, _ in scope["headers"]}):
            return Match.NONE, {}
        return super().matches(scope)


def router(
    settings: SandboxSettings, box: Mailbox, limiter: FrequencyLimiter, receipt_later: ReceiptLater
) -> APIRouter:
    """``POST /`` for requests that carry ``X-TC-Action``, served by :func:`answer`."""
    api = APIRouter(route_class=_TencentRoute)

    @api.post("/", include_in_schema=False)
    async def send_sms(request: Request) -> Response:
        return await answer(request, settings, box, limiter, receipt_later)

    return api


async def answer(
    request: Request,
    settings: SandboxSettings,
    box: Mailbox,
    limiter: FrequencyLimiter,
    receipt_later: ReceiptLater,
) -> Response:
    """Tencent Cloud's answer to one API request (see the module docstring)."""
    request_id = str(uuid.uuid4())
    body = await request.body()
    try:
        problem = signature_problem(
            request.method,
            request.url.path,
            request.url.query,
            request.headers,
            body,
            secret_id=settings.tencent_secret_id,
            secret_key=settings.tencent_secret_key.get_secret_value(),
            now=time.time(),
        )
        if problem is not None:
            raise Refusal(*problem)
        statuses = _send(settings, box, limiter, receipt_later, request.headers, body)
    except Refusal as refusal:
        error = {"Code": refusal.code, "Message": refusal.message}
        return JSONResponse({"Response": {"Error": error, "RequestId": request_id}})
    return JSONResponse({"Response": {"SendStatusSet": statuses, "RequestId": request_id}})


def _send(
    settings: SandboxSettings,
    box: Mailbox,
    limiter: FrequencyLimiter,
    receipt_later: ReceiptLater,
    headers: Mapping[str, str],
    body: bytes,
) -> list[dict[str, Any]]:
    """``SendSms`` of an authenticated request: its number's ``SendStatus``, or a ``Refusal``."""
    action, version = headers.get("x-tc-action", ""), headers.get("x-tc-version", "")
    if action != "SendSms" or version != VERSION:
        raise Refusal(
            "InvalidAction", f"the sandbox answers SendSms of {VERSION} only, not {action} {version}"
        )
    try:
        params = json.loads(body)
    except ValueError:
        params = None
    if not isinstance(params, dict):
        raise Refusal("FailedOperation.JsonParseFail", "the body is not a JSON object")
    if str(params.get("SmsSdkAppId", "")) != settings.tencent_sms_app_id:
        raise Refusal("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId is not this account's")
    phones = [str(phone) for phone in params.get("PhoneNumberSet") or []]
    if len(phones) != 1:
        raise Refusal("MissingParameter.EmptyPhoneNumberSet", "the sandbox takes one number per request")
    phone, context = phones[0], str(params.get("SessionContext") or "")
    text, template = _rendered(settings, params)
    if phone.endswith(REFUSED_REQUEST_SUFFIX):
        raise Refusal("RequestLimitExceeded", "request frequency limit exceeded (sandbox number ...99004)")
    key = context or str(uuid.uuid4())  # without a SessionContext nothing is deduplicated
    known = next((m for m in box.for_phone(phone) if m.idempotency_key == key), None)
    if known is not None:
        return [_status(phone, context, "Ok", "send success", known)]
    code = REFUSED_NUMBERS.get(phone[-5:])
    if code is not None:
        return [_status(phone, context, code, f"refused by the sandbox (number ending {phone[-5:]})")]
    window = limiter.take(phone)
    if window is not None:
        return [_status(phone, context, LIMIT_CODES[window], f"the number's per-{window} limit is reached")]
    message, new = box.accept(phone, text, key, template)
    if new:
        receipt_later(settings, box, message)
    return [_status(phone, context, "Ok", "send success", message)]


def _status(
    phone: str, context: str, code: str, said: str, message: StoredMessage | None = None
) -> dict[str, Any]:
    """A ``SendStatus``; ``Fee`` by Tencent Cloud's rule: 70 characters in one part, else 67 a part."""
    length = len(message.body) if message is not None else 0
    return {
        "SerialNo": message.id if message is not None else "",
        "PhoneNumber": phone,
        "Fee": 0 if message is None else 1 if length <= 70 else -(-length // 67),
        "SessionContext": context,
        "Code": code,
        "Message": said,
        "IsoCode": "CN" if phone.startswith("+86") else "DEF",
    }


def _rendered(settings: SandboxSettings, params: Mapping[str, Any]) -> tuple[str, str]:
    """The text the customer reads and the template's name for the inbox; without registered templates
    any template is taken and shown as its id and values."""
    sign = str(params.get("SignName") or "")
    code = str(params.get("TemplateId") or "")
    values = [str(value) for value in params.get("TemplateParamSet") or []]
    path = settings.registered_templates_file
    if path is None:
        return f"【{sign}】[template {code}] {' | '.join(values)}".rstrip(), f"tencent:{code}"
    templates = _templates(path)
    if templates is None or sign != templates.sign_name:
        raise Refusal("FailedOperation.SignatureIncorrectOrUnapproved", f"signature {sign!r} is not approved")
    found = next(
        (
            (str(name), one)
            for by_template in templates.by_label().values()
            for name, by in by_template.items()
            for one in by.values()
            if one.code == code
        ),
        None,
    )
    if found is None:
        raise Refusal("FailedOperation.TemplateIncorrectOrUnapproved", f"template {code!r} is not approved")
    name, registered = found
    if len(values) != len(registered.params):
        raise Refusal(
            "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
            f"template {code} takes {len(registered.params)} parameter(s), not {len(values)}",
        )
    if any(len(value) > templates.max_param_length for value in values):
        raise Refusal("InvalidParameterValue.TemplateParameterLengthLimit", "a parameter is too long")
    filled = {str(number): value for number, value in enumerate(values, start=1)}
    return registered_body("tencent", sign, registered, filled), name


def _templates(path: Path) -> ProviderTemplates | None:
    """The file's Tencent Cloud section, read for each request so that an edit shows at once."""
    try:
        return load_registered_templates(path).tencent
    except ConfigurationError as err:
        raise Refusal("InternalError.OtherError", f"the sandbox's registered templates: {err}") from None


# --- callbacks ------------------------------------------------------------------------------------


async def push_receipt(settings: SandboxSettings, box: Mailbox, message: StoredMessage) -> None:
    """Tencent Cloud's status callback for ``message``: a JSON array of reports to
    ``<callback_base_url>/status``, pushed until Kindly answers ``{"result": 0}``."""
    dead = message.phone.endswith(settings.undeliverable_suffix)
    box.set_status(message.id, "failed" if dead else "delivered", VACANT if dead else None)
    if settings.callback_base_url is None:
        return
    nationcode, mobile = _split(message.phone)
    report = {
        "user_receive_time": datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
        "nationcode": nationcode,
        "mobile": mobile,
        "report_status": "FAIL" if dead else "SUCCESS",
        "errmsg": VACANT if dead else "DELIVRD",
        "description": "空号" if dead else "用户短信送达成功",
        "sid": message.id,
        "ext": message.idempotency_key or "",  # SessionContext, when Tencent Cloud has it enabled
    }
    taken, said = await _push(f"{settings.callback_base_url.rstrip('/')}/status", [report], RECEIPT_ATTEMPTS)
    box.set_kindly_answer(message.id, said if taken else f"{said} after {RECEIPT_ATTEMPTS} attempts")


async def push_reply(settings: SandboxSettings, box: Mailbox, message: StoredMessage) -> None:
    """Tencent Cloud's reply callback for a reply typed in the inbox, to ``<callback_base_url>/reply``;
    a 502 when Kindly does not take it."""
    if settings.callback_base_url is None:
        return
    nationcode, mobile = _split(message.phone)
    reply = {
        "extend": "",
        "mobile": mobile,
        "nationcode": nationcode,
        "sign": _last_sign(box, message.phone),
        "text": message.body,
        "time": int(message.at.timestamp()),
    }
    taken, said = await _push(f"{settings.callback_base_url.rstrip('/')}/reply", reply, REPLY_ATTEMPTS)
    box.set_kindly_answer(message.id, said)
    if not taken:
        box.set_status(message.id, "refused")
        raise HTTPException(502, f"Kindly's Tencent Cloud reply callback answered: {said}")
    box.set_status(message.id, "forwarded")


async def _push(url: str, payload: Any, attempts: int) -> tuple[bool, str]:
    """POST ``payload`` until Kindly answers ``{"result": 0}``: whether it did, and what it said last."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    said = "no answer"
    async with httpx.AsyncClient(timeout=10) as client:
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(min(0.1 * 2 ** (attempt - 1), 5.0))
            try:
                response = await client.post(url, content=body, headers={"Content-Type": "application/json"})
            except httpx.HTTPError as err:
                said = f"unreachable ({type(err).__name__})"
                continue
            try:
                answer = response.json()
            except ValueError:
                answer = None
            result, errmsg = (
                (answer.get("result"), answer.get("errmsg")) if isinstance(answer, dict) else (None, None)
            )
            if response.status_code < 300 and result == 0:
                return True, str(errmsg or "OK")
            said = f"HTTP {response.status_code}, result {result!r}: {errmsg or ''}".strip()
    return False, said


def _split(phone: str) -> tuple[str, str]:
    """E.164 ``+8613800138000`` as Tencent Cloud's ``nationcode`` ``86`` and ``mobile``; the sandbox
    knows no country codes but China's, and splits any other number after two digits."""
    digits = phone.lstrip("+")
    return digits[:2], digits[2:]


def _last_sign(box: Mailbox, phone: str) -> str:
    """The signature of the last message the number was sent: the one its reply answers."""
    for message in reversed(box.for_phone(phone)):
        if message.direction == "out" and message.body.startswith("【") and "】" in message.body:
            return message.body[1 : message.body.index("】")]
    return ""
