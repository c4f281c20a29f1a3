"""Tencent Cloud SMS through its official SDK against the sandbox served on 127.0.0.1: sends, the
idempotency key as SessionContext, each class of refusal mapped onto Kindly's errors, the TC3-HMAC-SHA256
signature checked on a request the SDK really sent, and the status and reply callbacks in Tencent
Cloud's shapes. No mock of the SDK: every call goes over HTTP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr
from tencentcloud.common.credential import Credential  # type: ignore[import-untyped]
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # type: ignore[import-untyped]
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile  # type: ignore[import-untyped]
from tencentcloud.common.profile.http_profile import HttpProfile  # type: ignore[import-untyped]
from tencentcloud.sms.v20210111 import models, sms_client  # type: ignore[import-untyped]

from activities.sms_providers import OutgoingSms, build_sms_provider
from activities.sms_tencent import Kind, TencentSmsProvider, kind_of
from kindly.errors import (
    ConfigurationError,
    DeliveryError,
    FrequencyLimitedError,
    PermanentDeliveryError,
    ProviderAccountError,
    TransientDeliveryError,
)
from kindly.programs.sandbox import Mailbox, SandboxSettings, create_sandbox_app, tencent
from kindly.programs.sandbox.app import _receipt_later
from kindly.programs.sandbox.limits import FrequencyLimiter
from kindly.settings import Settings
from tests.asgi_server import serving
from tests.conftest import eventually
from tests.http_recorder import RecordingHttpServer

SECRET_ID, SECRET_KEY, APP_ID = "AKIDsandbox", "sandbox-tencent-key", "1400006666"
SIGN = "金融助手"
CODE = "2200001"
TEXT = "您的借款（编号{1}）应还{2}，将于{3}到期。客服{4}。回复TD退订"
PARAMS = {"3": "2026年5月1日", "1": "****1234", "4": "400-800-1234", "2": "¥1,500.00"}
RENDERED = (
    "【金融助手】您的借款（编号****1234）应还¥1,500.00，将于2026年5月1日到期。客服400-800-1234。回复TD退订"
)
PHONE = "+8613800138000"
CALLBACKS = "/callbacks/tencent/s3cret"


@pytest.fixture
def templates_file(tmp_path: Path) -> Path:
    params = {"1": "reference", "2": "amount", "3": "due_date", "4": "hotline"}
    pre_due = {"zh-CN": {"code": CODE, "text": TEXT, "params": params}}
    path = tmp_path / "registered.json"
    registered = {"tencent": {"sign_name": SIGN, "templates": {"pre_due": pre_due}}}
    path.write_text(json.dumps(registered, ensure_ascii=False), encoding="utf-8")
    return path


def _sandbox_settings(templates_file: Path, **overrides: Any) -> SandboxSettings:
    """The sandbox with the test's account, templates and Tencent Cloud's pushes; no frequency limit."""
    values: dict[str, Any] = dict(
        tencent_secret_id=SECRET_ID, tencent_secret_key=SecretStr(SECRET_KEY), tencent_sms_app_id=APP_ID
    )
    values.update(frequency_per_minute=None, frequency_per_hour=None, frequency_per_day=None)
    values.update(registered_templates_file=templates_file, push_format="tencent", **overrides)
    return SandboxSettings(**values)


@asynccontextmanager
async def sandbox(settings: SandboxSettings) -> AsyncIterator[tuple[str, Mailbox]]:
    """The sandbox app as served, and its mailbox."""
    box = Mailbox()
    async with serving(create_sandbox_app(settings, box)) as url:
        yield url, box


def _settings(templates_file: Path, url: str = "http://127.0.0.1:1", **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        tencent_secret_id=SECRET_ID, tencent_secret_key=SecretStr(SECRET_KEY), tencent_sms_app_id=APP_ID
    )
    values.update(tencent_endpoint=url.removeprefix("http://"), tencent_protocol="http")
    values.update(sms_provider="tencent", registered_templates_file=templates_file, http_timeout_seconds=5)
    return Settings(_env_file=None, **{**values, **overrides})


def _provider(url: str, templates_file: Path, **overrides: Any) -> TencentSmsProvider:
    return TencentSmsProvider.from_settings(_settings(templates_file, url, **overrides))


def _sms(key: str = "wf-1/run-1/tp-1", to: str = PHONE, **overrides: Any) -> OutgoingSms:
    values: dict[str, Any] = dict(to=to, body=RENDERED, idempotency_key=key, account_id="LN-1")
    values.update(template="pre_due", locale="zh-CN", template_code=CODE, params=PARAMS)
    return OutgoingSms(**{**values, **overrides})


class CallbackRecorder:
    """Kindly's side of Tencent Cloud's callbacks, for tests: records each push and answers ``result``s
    from a queue (0 once it is used up)."""

    def __init__(self, *results: int) -> None:
        self.pushes: list[tuple[str, Any]] = []
        self._results = list(results)
        self.app = FastAPI()

        @self.app.post(CALLBACKS + "/{kind}")
        async def callback(kind: str, request: Request) -> dict[str, Any]:
            self.pushes.append((kind, await request.json()))
            result = self._results.pop(0) if self._results else 0
            return {"result": result, "errmsg": "OK" if result == 0 else "unmatched"}

    def of(self, kind: str) -> list[Any]:
        return [body for name, body in self.pushes if name == kind]


# --- sends ------------------------------------------------------------------------------------------


async def test_a_send_returns_its_serial_no_and_the_inbox_shows_the_rendered_template(
    templates_file: Path,
) -> None:
    async with sandbox(_sandbox_settings(templates_file)) as (url, box):
        receipt = await _provider(url, templates_file).send(_sms())
    [message] = box.messages
    assert receipt.provider == "tencent"
    assert receipt.provider_message_id == message.id
    assert message.body == RENDERED  # the values went in placeholder order, whatever the dict's order
    assert (message.phone, message.idempotency_key, message.template) == (PHONE, "wf-1/run-1/tp-1", "pre_due")


async def test_the_same_session_context_is_one_message_and_counts_once(templates_file: Path) -> None:
    async with sandbox(_sandbox_settings(templates_file, frequency_per_minute=1)) as (url, box):
        provider = _provider(url, templates_file)
        first = await provider.send(_sms("k-1"))
        again = await provider.send(_sms("k-1"))
        with pytest.raises(FrequencyLimitedError):  # a new message is the number's second this minute
            await provider.send(_sms("k-2"))
    assert first.provider_message_id == again.provider_message_id
    assert [m.idempotency_key for m in box.messages] == ["k-1"]


LIMITS = [("minute", "ThirtySecond"), ("hour", "OneHour"), ("day", "Daily")]


@pytest.mark.parametrize(("window", "code"), [(w, f"LimitExceeded.PhoneNumber{c}Limit") for w, c in LIMITS])
async def test_the_frequency_limit_is_a_frequency_limited_error(
    templates_file: Path, window: str, code: str
) -> None:
    settings = _sandbox_settings(templates_file, **{f"frequency_per_{window}": 2})
    async with sandbox(settings) as (url, box):
        provider = _provider(url, templates_file)
        for key in ("k-1", "k-2"):
            await provider.send(_sms(key))
        with pytest.raises(FrequencyLimitedError) as info:
            await provider.send(_sms("k-3"))
    assert info.value.code == code and info.value.not_taken
    assert len(box.messages) == 2


PERMANENT, ACCOUNT, TRANSIENT = PermanentDeliveryError, ProviderAccountError, TransientDeliveryError
REFUSALS = [
    # What is wrong (a message's field, or a provider's setting ``tencent_*``), the code, Kindly's error.
    ({"to": "+8613800199001"}, "InvalidParameterValue.IncorrectPhoneNumber", PERMANENT),
    ({"to": "+8613800199005"}, "FailedOperation.PhoneNumberInBlacklist", PERMANENT),
    ({"to": "+8613800199002"}, "FailedOperation.InsufficientBalanceInSmsPackage", ACCOUNT),
    ({"to": "+8613800199003"}, "InternalError.Timeout", TRANSIENT),
    ({"to": "+8613800199004"}, "RequestLimitExceeded", TRANSIENT),  # the whole request refused
    ({"template_code": "9999999"}, "FailedOperation.TemplateIncorrectOrUnapproved", PERMANENT),
    ({"params": {"1": "x"}}, "FailedOperation.TemplateParamSetNotMatchApprovedTemplate", PERMANENT),
    ({"params": {**PARAMS, "2": "9" * 40}}, "InvalidParameterValue.TemplateParameterLengthLimit", PERMANENT),
    ({"tencent_sms_app_id": "1400000001"}, "UnauthorizedOperation.SmsSdkAppIdVerifyFail", ACCOUNT),
    ({"tencent_secret_key": SecretStr("not-the-key")}, "AuthFailure.SignatureFailure", ACCOUNT),
    ({"tencent_secret_id": "AKIDother"}, "AuthFailure.SecretIdNotFound", ACCOUNT),
]


@pytest.mark.parametrize(("wrong", "code", "error"), REFUSALS, ids=[code for _, code, _ in REFUSALS])
async def test_each_refusal_maps_onto_its_kindly_error(
    templates_file: Path, wrong: dict[str, Any], code: str, error: type[DeliveryError]
) -> None:
    settings = {name: value for name, value in wrong.items() if name.startswith("tencent_")}
    sms = _sms(**{name: value for name, value in wrong.items() if name not in settings})
    async with sandbox(_sandbox_settings(templates_file)) as (url, box):
        with pytest.raises(error) as info:
            await _provider(url, templates_file, **settings).send(sms)
    assert type(info.value) is error and code in str(info.value)
    assert info.value.not_taken is (code != "InternalError.Timeout")  # that one may have gone out
    if isinstance(info.value, ProviderAccountError):
        assert info.value.code == code
    assert sms.to not in str(info.value) and sms.to.removeprefix("+86") not in str(info.value)
    assert box.messages == []


async def test_a_signature_the_account_never_approved_is_an_account_error(
    templates_file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.json"
    other.write_text(templates_file.read_text(encoding="utf-8").replace(SIGN, "别家金融"), encoding="utf-8")
    async with sandbox(_sandbox_settings(templates_file)) as (url, _box):
        with pytest.raises(ProviderAccountError) as info:
            await _provider(url, other).send(_sms())
    assert info.value.code == "FailedOperation.SignatureIncorrectOrUnapproved"


async def test_no_connection_is_transient_and_not_taken(templates_file: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(TransientDeliveryError) as info:
        await _provider(closed, templates_file).send(_sms())
    assert "ClientNetworkError" in str(info.value) and info.value.not_taken


async def test_no_answer_is_transient_and_maybe_taken(templates_file: Path) -> None:
    # The kernel completes the connection into the backlog; nobody ever reads the request or answers.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        silent = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(TransientDeliveryError) as info:
            await _provider(silent, templates_file, http_timeout_seconds=0.3).send(_sms())
    assert not info.value.not_taken


async def test_an_http_error_answer_is_transient(templates_file: Path) -> None:
    with RecordingHttpServer() as gateway:
        gateway.respond_with(502)
        with pytest.raises(TransientDeliveryError) as info:
            await _provider(gateway.url, templates_file).send(_sms())
    assert "ServerNetworkError" in str(info.value) and not info.value.not_taken


def test_the_code_table_decides_by_code_then_family() -> None:
    assert kind_of("LimitExceeded.PhoneNumberSameContentDailyLimit") is Kind.FREQUENCY_LIMITED
    assert kind_of("LimitExceeded.AppDailyLimit") is Kind.ACCOUNT
    assert kind_of("UnauthorizedOperation.ServiceSuspendDueToArrears") is Kind.ACCOUNT
    assert kind_of("InternalError.SendAndRecvFail") is Kind.RETRY_UNSURE
    assert kind_of("InvalidParameterValue.SomethingNew") is Kind.PERMANENT
    assert kind_of("SomethingNobodyDocumented") is Kind.RETRY_UNSURE


# --- configuration ----------------------------------------------------------------------------------


async def test_the_factory_builds_it(templates_file: Path) -> None:
    async with httpx.AsyncClient() as client:
        assert isinstance(build_sms_provider(_settings(templates_file), client), TencentSmsProvider)


def test_missing_settings_are_named(templates_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        TencentSmsProvider.from_settings(Settings(_env_file=None, sms_provider="tencent"))
    assert str(info.value) == (
        "COLLECTIONS_TENCENT_SECRET_ID, COLLECTIONS_TENCENT_SECRET_KEY, COLLECTIONS_TENCENT_SMS_APP_ID, "
        "COLLECTIONS_REGISTERED_TEMPLATES_FILE are required when COLLECTIONS_SMS_PROVIDER=tencent"
    )
    aliyun_only = tmp_path / "aliyun.json"
    aliyun_only.write_text(json.dumps({"aliyun": {"sign_name": SIGN}}), encoding="utf-8")
    with pytest.raises(ConfigurationError, match="no tencent section"):
        TencentSmsProvider.from_settings(_settings(aliyun_only))
    with pytest.raises(ConfigurationError, match="credentials"):
        TencentSmsProvider.from_settings(_settings(templates_file, tencent_secret_key=SecretStr(" spaced ")))


# --- the signature, on a request the SDK really sent ------------------------------------------------


def test_the_sandbox_verifies_the_sdks_tc3_signature() -> None:
    with RecordingHttpServer() as capture:
        http = HttpProfile(protocol="http", endpoint=capture.url.removeprefix("http://"), reqTimeout=5)
        profile = ClientProfile(httpProfile=http)
        client = sms_client.SmsClient(Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile)
        request = models.SendSmsRequest()
        request.PhoneNumberSet, request.SmsSdkAppId, request.SessionContext = [PHONE], APP_ID, "k-1"
        with pytest.raises(TencentCloudSDKException):  # the recorder's answer is no Tencent Cloud answer
            client.SendSms(request)
        [sent] = capture.requests
    headers, now = sent.headers, int(sent.headers["x-tc-timestamp"])
    assert (sent.method, sent.path) == ("POST", "/") and headers["content-type"] == "application/json"
    assert headers["x-tc-action"] == "SendSms" and headers["x-tc-version"] == "2021-01-11"
    assert headers["authorization"].startswith(f"TC3-HMAC-SHA256 Credential={SECRET_ID}/")
    assert json.loads(sent.body)["SessionContext"] == "k-1"

    def problem(body: bytes = sent.body, at: float = now, key: str = SECRET_KEY, **changed: str) -> Any:
        found = tencent.signature_problem(
            "POST", "/", "", {**headers, **changed}, body, secret_id=SECRET_ID, secret_key=key, now=at
        )
        return None if found is None else found[0]

    assert problem() is None
    assert problem(at=now + 299) is None
    assert problem(at=now + 301) == "AuthFailure.SignatureExpire"
    assert problem(body=sent.body.replace(b"k-1", b"k-2")) == "AuthFailure.SignatureFailure"
    assert problem(key="another-key") == "AuthFailure.SignatureFailure"
    assert problem(host="evil.example") == "AuthFailure.SignatureFailure"
    assert problem(authorization="Basic x") == "AuthFailure.InvalidAuthorization"


def test_handles_only_tencent_requests() -> None:
    assert tencent.handles({"X-TC-Action": "SendSms"})
    assert not tencent.handles({"content-type": "application/json", "x-acs-action": "SendSms"})


async def test_answer_serves_a_request_whoever_routes_it(templates_file: Path) -> None:
    """A single ``POST /`` that dispatches on ``handles`` works as well as the router's own route."""
    settings, box = _sandbox_settings(templates_file), Mailbox()
    limiter = FrequencyLimiter(per_minute=None, per_hour=None, per_day=None)
    front = FastAPI()

    @front.post("/")
    async def dispatch(request: Request) -> Response:
        if not tencent.handles(request.headers):
            return Response(status_code=404)
        return await tencent.answer(request, settings, box, limiter, _receipt_later)

    async with serving(front) as url:
        receipt = await _provider(url, templates_file).send(_sms())
    assert [m.id for m in box.messages] == [receipt.provider_message_id]


# --- callbacks --------------------------------------------------------------------------------------


async def test_status_callbacks_arrive_in_tencent_shape_until_kindly_takes_them(templates_file: Path) -> None:
    kindly = CallbackRecorder(1)  # the first push is unmatched, as before Kindly records the send
    async with serving(kindly.app) as kindly_url:
        settings = _sandbox_settings(templates_file, callback_base_url=f"{kindly_url}{CALLBACKS}")
        async with sandbox(settings) as (url, box):
            provider = _provider(url, templates_file)
            delivered = await provider.send(_sms("k-1"))
            await provider.send(_sms("k-1"))  # a retry: no second message, no second receipt
            dead = await provider.send(_sms("k-2", to="+8613900000000"))

            async def answered() -> list[str | None]:
                return [m.kindly_answer for m in box.messages]

            await eventually(answered, lambda answers: answers == ["OK", "OK"])
            statuses = {m.id: m.status for m in box.messages}
    reports = [report for pushed in kindly.of("status") for report in pushed]
    assert all(isinstance(pushed, list) for pushed in kindly.of("status"))
    by_sid = {report["sid"]: report for report in reports}
    assert len(reports) == 3 and set(by_sid) == {delivered.provider_message_id, dead.provider_message_id}
    ok, fail = by_sid[delivered.provider_message_id], by_sid[dead.provider_message_id]
    names = ("nationcode", "mobile", "report_status", "errmsg", "ext")
    assert itemgetter(*names)(ok) == ("86", "13800138000", "SUCCESS", "DELIVRD", "k-1")
    assert set(ok) == {*names, "user_receive_time", "description", "sid"}
    time.strptime(ok["user_receive_time"], "%Y-%m-%d %H:%M:%S")
    assert (fail["report_status"], fail["errmsg"], fail["mobile"]) == ("FAIL", "MK:0001", "13900000000")
    assert statuses == {delivered.provider_message_id: "delivered", dead.provider_message_id: "failed"}


async def test_a_reply_arrives_in_tencent_shape(templates_file: Path) -> None:
    kindly = CallbackRecorder()
    async with serving(kindly.app) as kindly_url:
        settings = _sandbox_settings(templates_file, callback_base_url=f"{kindly_url}{CALLBACKS}")
        async with sandbox(settings) as (url, box), httpx.AsyncClient() as client:
            await _provider(url, templates_file).send(_sms())
            before = int(time.time())
            answer = await client.post(f"{url}/inbox/{PHONE}/reply", data={"text": "TD"})
            reply = box.messages[-1]
    assert answer.status_code == 303
    [pushed] = kindly.of("reply")
    names = ("extend", "mobile", "nationcode", "sign", "text")
    assert itemgetter(*names)(pushed) == ("", "13800138000", "86", SIGN, "TD")
    assert set(pushed) == {*names, "time"}
    assert before - 1 <= pushed["time"] <= int(time.time())
    assert (reply.direction, reply.status, reply.kindly_answer) == ("in", "forwarded", "OK")


async def test_a_reply_kindly_does_not_take_is_pushed_three_times_then_refused(templates_file: Path) -> None:
    with RecordingHttpServer() as kindly:  # answers HTTP 200 without Tencent Cloud's ``result`` 0
        settings = _sandbox_settings(templates_file, callback_base_url=f"{kindly.url}{CALLBACKS}")
        async with sandbox(settings) as (url, box), httpx.AsyncClient() as client:
            answer = await client.post(f"{url}/inbox/{PHONE}/reply", data={"text": "STOP"})
        pushes = kindly.requests_to(f"{CALLBACKS}/reply")
    assert answer.status_code == 502
    assert len(pushes) == tencent.REPLY_ATTEMPTS
    assert pushes[0].headers["content-type"] == "application/json" and pushes[0].json()["text"] == "STOP"
    assert box.messages[-1].status == "refused"
