"""Alibaba Cloud SMS through its official SDK (``alibabacloud-dysmsapi20170525``), unmocked, against the
sandbox's ``SendSms`` served over HTTP on 127.0.0.1: sends, the inbox's rendered text, deduplication by
``OutId``, each class of refusal mapped onto Kindly's errors, the V3 signature check, and the
``SmsReport`` and ``SmsUp`` pushes in Alibaba Cloud's shapes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_tea_openapi.exceptions import ClientException  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from pydantic import SecretStr

from activities import sms_aliyun
from activities.sms_aliyun import AliyunSmsProvider, classify
from activities.sms_providers import OutgoingSms, build_sms_provider
from kindly.errors import (
    ConfigurationError,
    FrequencyLimitedError,
    PermanentDeliveryError,
    ProviderAccountError,
    TransientDeliveryError,
)
from kindly.programs.sandbox import SandboxSettings, create_sandbox_app
from kindly.programs.sandbox.aliyun import biz_id
from kindly.settings import Settings
from tests.asgi_server import serving
from tests.conftest import eventually
from tests.fault_helpers import free_port
from tests.http_recorder import RecordingHttpServer

SIGN = "金融助手"
CODE = "SMS_400100001"
TEXT = "您的借款（编号${ref}）应还${amount}，将于${due}到期。回复TD退订"
TEMPLATE = {"code": CODE, "text": TEXT, "params": {"ref": "reference", "amount": "amount", "due": "due_date"}}
ALIYUN = {"sign_name": SIGN, "max_param_length": 20, "templates": {"pre_due": {"zh-CN": TEMPLATE}}}
REGISTERED = {"aliyun": ALIYUN}
PARAMS = {"ref": "****1234", "amount": "¥1,500.00", "due": "2026年1月2日"}
RENDERED = f"【{SIGN}】您的借款（编号****1234）应还¥1,500.00，将于2026年1月2日到期。回复TD退订"
PHONE = "+8613800138000"
BEIJING_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
REPORT_FIELDS = {"phone_number", "send_time", "report_time", "success", "err_code", "err_msg", "sms_size"}
REPORT_FIELDS |= {"biz_id", "out_id"}
UP_FIELDS = {"phone_number", "send_time", "content", "sign_name", "dest_code", "sequence_id"}
"""Alibaba Cloud's ``SmsReport`` and ``SmsUp`` items (HTTP batch push), as its documentation names them."""


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK sends plain HTTP through ``HTTP_PROXY`` when set, even to 127.0.0.1."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def _write(path: Path, registered: dict[str, Any]) -> Path:
    path.write_text(json.dumps(registered, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def registered_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "registered.json", REGISTERED)


def _settings(endpoint: str, registered_file: Path, **overrides: Any) -> Settings:
    """The provider's settings for an endpoint, with the sandbox's credentials (its defaults)."""
    values = {
        "sms_provider": "aliyun",
        "aliyun_access_key_id": "sandbox-aliyun-key",
        "aliyun_access_key_secret": SecretStr("sandbox-aliyun-secret"),
        "registered_templates_file": registered_file,
        "aliyun_endpoint": endpoint.removeprefix("http://"),
        "aliyun_protocol": "http",
    }
    return Settings(_env_file=None, **{**values, **overrides})


def _sms(key: str = "wf-1/run-1/tp-1", to: str = PHONE, **overrides: Any) -> OutgoingSms:
    """``pre_due`` as the registered composer makes it for Alibaba Cloud."""
    values = {"template_code": CODE, "params": PARAMS, "locale": "zh-CN", "template": "pre_due", **overrides}
    return OutgoingSms(to=to, body=RENDERED, idempotency_key=key, account_id="LN-1", **values)


@dataclass
class Sandbox:
    url: str
    provider: AliyunSmsProvider
    client: httpx.AsyncClient

    async def messages(self) -> list[dict[str, Any]]:
        return list((await self.client.get(f"{self.url}/api/messages")).json())


@asynccontextmanager
async def sandbox(registered_file: Path, **settings: Any) -> AsyncIterator[Sandbox]:
    """The sandbox with the registered templates, and the provider pointed at it."""
    app = create_sandbox_app(SandboxSettings(registered_templates_file=registered_file, **settings))
    async with serving(app) as url, httpx.AsyncClient() as client:
        yield Sandbox(url, AliyunSmsProvider.from_settings(_settings(url, registered_file)), client)


# --- sends ----------------------------------------------------------------------------------------


async def test_send_answers_the_biz_id_and_the_inbox_shows_the_registered_text(registered_file: Path) -> None:
    async with sandbox(registered_file) as box, httpx.AsyncClient() as client:
        provider = build_sms_provider(_settings(box.url, registered_file), client)
        receipt = await provider.send(_sms())
        messages = await box.messages()
    assert [(m["phone"], m["body"], m["template"], m["idempotency_key"]) for m in messages] == [
        (PHONE, RENDERED, "pre_due", "wf-1/run-1/tp-1")
    ]
    assert receipt.provider == "aliyun"
    assert receipt.provider_message_id == biz_id(messages[0]["id"])
    assert re.fullmatch(r"\d{18}\^0", receipt.provider_message_id)


async def test_the_sdk_sends_send_sms_signed_with_the_number_as_alibaba_cloud_takes_it(
    registered_file: Path,
) -> None:
    """What goes on the wire: ``POST /`` with every parameter in the query string, a mainland number's
    11 digits (an international one without ``+``), the key as ``OutId``, the parameters as JSON."""
    with RecordingHttpServer() as wire:
        provider = AliyunSmsProvider.from_settings(_settings(wire.url, registered_file))
        for to in (PHONE, "+85291234567"):
            with pytest.raises(PermanentDeliveryError, match="NoCode"):  # the recorder is no SendSms
                await provider.send(_sms(to=to))
        sent = wire.requests
    assert [(r.method, r.path.split("?")[0], r.body) for r in sent] == [("POST", "/", b"")] * 2
    query = [dict(httpx.URL(r.path).params) for r in sent]
    assert [q["PhoneNumbers"] for q in query] == ["13800138000", "85291234567"]
    assert query[0]["SignName"] == SIGN and query[0]["TemplateCode"] == CODE
    assert query[0]["OutId"] == "wf-1/run-1/tp-1"
    assert json.loads(query[0]["TemplateParam"]) == PARAMS
    headers = sent[0].headers
    assert headers["x-acs-action"] == "SendSms" and headers["x-acs-version"] == "2017-05-25"
    signature = r"ACS3-HMAC-SHA256 Credential=sandbox-aliyun-key,SignedHeaders=[\w;-]+,Signature=[\da-f]{64}"
    assert re.fullmatch(signature, headers["authorization"]) and "host" in headers["authorization"]


async def test_a_retry_with_the_same_out_id_is_one_message(registered_file: Path) -> None:
    """Alibaba Cloud itself does not deduplicate; the sandbox does, as Kindly's key model assumes, and the
    retry does not count against the number's frequency limit."""
    async with sandbox(registered_file) as box:
        first = await box.provider.send(_sms("k-1"))
        again = await box.provider.send(_sms("k-1"))
        messages = await box.messages()
    assert first.provider_message_id == again.provider_message_id
    assert len(messages) == 1


async def test_free_text_is_refused_before_sending(registered_file: Path) -> None:
    with RecordingHttpServer() as wire:
        provider = AliyunSmsProvider.from_settings(_settings(wire.url, registered_file))
        with pytest.raises(PermanentDeliveryError, match=r"pre_due \(zh-CN\) has no Alibaba Cloud template"):
            await provider.send(_sms(template_code=None, params=None))
        assert wire.requests == []


# --- refusals -------------------------------------------------------------------------------------


def test_each_code_has_one_kind_and_an_unknown_code_goes_by_whom_it_blames() -> None:
    tables = (sms_aliyun.PERMANENT, sms_aliyun.TRANSIENT, sms_aliyun.REFUSED_FOR_NOW, sms_aliyun.FREQUENCY)
    assert sum(len(t) for t in (*tables, sms_aliyun.ACCOUNT)) == len(sms_aliyun.KINDS)  # no code twice
    assert classify("isv.DAY_LIMIT_CONTROL", 200) == "account"  # the lender's own daily total
    assert classify("isv.SOMETHING_NEW", 200) == "permanent"  # isv: the caller's fault
    assert classify("isp.SOMETHING_NEW", 200) == "transient"  # isp: the service's
    assert classify("Throttling.Something", 400) == "refused_for_now"
    assert classify("Unheard", 403) == "permanent" and classify("Unheard", 503) == "transient"
    assert classify("Unheard", 429) == "refused_for_now"


@pytest.mark.parametrize(
    ("to", "error", "code", "status", "not_taken"),
    [
        ("+8613800199001", PermanentDeliveryError, "isv.MOBILE_NUMBER_ILLEGAL", 200, True),
        ("+8613800199002", ProviderAccountError, "isv.AMOUNT_NOT_ENOUGH", None, True),
        ("+8613800199003", TransientDeliveryError, "isp.SYSTEM_ERROR", 500, False),
        ("+8613800199004", TransientDeliveryError, "Throttling.User", 400, True),
    ],
)
async def test_each_kind_of_refusal_maps_to_its_kindly_error(
    registered_file: Path, to: str, error: type[Exception], code: str, status: int | None, not_taken: bool
) -> None:
    async with sandbox(registered_file) as box:
        with pytest.raises(error) as info:
            await box.provider.send(_sms(to=to))
        assert await box.messages() == []
    assert type(info.value) is error and code in str(info.value)
    assert getattr(info.value, "status_code", None) == status
    assert getattr(info.value, "code", code) == code
    assert info.value.not_taken is not_taken  # type: ignore[attr-defined]
    assert "13800130" not in str(info.value)  # the number never goes into an error


@pytest.mark.parametrize(
    ("limits", "sent", "refusal"),
    [
        ({}, 1, "触发分钟级流控Permits:1"),  # Alibaba Cloud's default: one a minute
        ({"frequency_per_minute": None, "frequency_per_hour": 2}, 2, "触发小时级流控Permits:2"),
    ],
)
async def test_the_per_number_frequency_limit_is_a_frequency_limited_error(
    registered_file: Path, limits: dict[str, Any], sent: int, refusal: str
) -> None:
    async with sandbox(registered_file, **limits) as box:
        for n in range(sent):
            await box.provider.send(_sms(f"k-{n}"))
        with pytest.raises(FrequencyLimitedError) as info:
            await box.provider.send(_sms("k-over"))
        other_number = await box.provider.send(_sms("k-other", to="+8613900139000"))
    assert info.value.code == "isv.BUSINESS_LIMIT_CONTROL" and info.value.not_taken
    assert refusal in str(info.value)
    assert other_number.provider_message_id


async def test_template_and_parameter_refusals_are_permanent(registered_file: Path) -> None:
    async with sandbox(registered_file, frequency_per_minute=None) as box:
        with pytest.raises(PermanentDeliveryError, match=r"isv\.SMS_TEMPLATE_ILLEGAL"):
            await box.provider.send(_sms("k-1", template_code="SMS_999"))
        with pytest.raises(PermanentDeliveryError, match=r"isv\.TEMPLATE_MISSING_PARAMETERS"):
            await box.provider.send(_sms("k-2", params={"ref": "****1234"}))
        with pytest.raises(PermanentDeliveryError, match=r"isv\.PARAM_LENGTH_LIMIT"):
            await box.provider.send(_sms("k-3", params={**PARAMS, "ref": "x" * 21}))
        assert await box.messages() == []


async def test_a_signature_the_account_does_not_have_is_an_account_problem(
    registered_file: Path, tmp_path: Path
) -> None:
    ours = _write(tmp_path / "ours.json", {"aliyun": {**ALIYUN, "sign_name": "别的签名"}})
    async with sandbox(registered_file) as box:
        provider = AliyunSmsProvider.from_settings(_settings(box.url, ours))
        with pytest.raises(ProviderAccountError) as info:
            await provider.send(_sms())
    assert info.value.code == "isv.SMS_SIGNATURE_ILLEGAL"


@pytest.mark.parametrize(
    ("override", "code", "status"),
    [
        ({"aliyun_access_key_secret": SecretStr("not-the-secret")}, "SignatureDoesNotMatch", 400),
        ({"aliyun_access_key_id": "someone-else"}, "InvalidAccessKeyId.NotFound", 404),
    ],
)
async def test_wrong_credentials_are_refused_as_alibaba_cloud_does(
    registered_file: Path, override: dict[str, Any], code: str, status: int
) -> None:
    """The SDK raises what it raises against the real gateway, and Kindly stops sending (an account
    problem: no retry helps until an operator fixes the credentials)."""
    async with sandbox(registered_file) as box:
        provider = AliyunSmsProvider.from_settings(_settings(box.url, registered_file, **override))
        with pytest.raises(ProviderAccountError) as info:
            await provider.send(_sms())
        assert await box.messages() == []
    assert info.value.code == code
    assert isinstance(info.value.__cause__, ClientException)
    assert info.value.__cause__.status_code == status


async def test_no_connection_is_transient_and_not_taken(registered_file: Path) -> None:
    provider = AliyunSmsProvider.from_settings(_settings(f"127.0.0.1:{free_port()}", registered_file))
    with pytest.raises(TransientDeliveryError, match="could not connect") as info:
        await provider.send(_sms())
    assert info.value.not_taken


# --- the signature check --------------------------------------------------------------------------


async def test_the_sandbox_checks_every_signed_part_and_takes_a_nonce_once(registered_file: Path) -> None:
    """A request the real SDK signed (captured on its way to a recorder) is replayed to the sandbox: taken
    once, refused when replayed, and refused when its query or its body is changed."""
    with RecordingHttpServer() as wire:
        with pytest.raises(PermanentDeliveryError):
            await AliyunSmsProvider.from_settings(_settings(wire.url, registered_file)).send(_sms())
        signed = wire.requests[0]
    headers = {k: v for k, v in signed.headers.items() if k not in {"content-length", "accept-encoding"}}
    async with sandbox(registered_file) as box:

        async def replay(path: str, body: bytes = b"") -> dict[str, Any]:
            answer = await box.client.post(box.url + path, content=body, headers=headers)
            return {"status": answer.status_code, **answer.json()}

        taken = await replay(signed.path)
        replayed = await replay(signed.path)
        # Changed parts under the same nonce: the signature is checked before the nonce.
        other_number = await replay(signed.path.replace("13800138000", "13900139000"))
        with_body = await replay(signed.path, b"PhoneNumbers=13900139000")
        unsigned = await box.client.post(box.url + "/", headers={"x-acs-action": "SendSms"})
        elsewhere = await box.client.post(box.url + "/")
        messages = await box.messages()
    assert (taken["status"], taken["Code"]) == (200, "OK") and len(messages) == 1
    assert (replayed["status"], replayed["Code"]) == (400, "SignatureNonceUsed")
    assert (other_number["status"], other_number["Code"]) == (400, "SignatureDoesNotMatch")
    assert (with_body["status"], with_body["Code"]) == (400, "SignatureDoesNotMatch")
    assert unsigned.status_code == 400
    assert set(unsigned.json()) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert unsigned.json()["Code"] == "IncompleteSignature"
    assert "HostId" not in elsewhere.text  # a POST / without Alibaba Cloud's headers is another cloud's


# --- pushes ---------------------------------------------------------------------------------------


async def test_delivery_receipts_are_pushed_as_sms_report(registered_file: Path) -> None:
    with RecordingHttpServer() as kindly:
        kindly.respond_with(503)  # Kindly not ready: pushed again, as Alibaba Cloud pushes again
        base = f"{kindly.url}/callbacks/aliyun/s3cret"
        async with sandbox(registered_file, push_format="aliyun", callback_base_url=base) as box:
            alive = await box.provider.send(_sms("k-1"))
            dead = await box.provider.send(_sms("k-2", to="+8613800130000"))
            done = await eventually(box.messages, lambda ms: {m["kindly_answer"] for m in ms} == {"HTTP 200"})
        pushes = kindly.requests_to("/callbacks/aliyun/s3cret/SmsReport")
    assert len(pushes) == 3 and all(isinstance(p.json(), list) and len(p.json()) == 1 for p in pushes)
    assert all(p.headers["content-type"] == "application/json" for p in pushes)
    reports = {p.json()[0]["biz_id"]: p.json()[0] for p in pushes}
    report = reports[alive.provider_message_id]
    assert set(report) == REPORT_FIELDS
    assert report["phone_number"] == "13800138000" and report["out_id"] == "k-1"
    assert (report["success"], report["err_code"], report["sms_size"]) == (True, "DELIVERED", "1")
    assert BEIJING_TIME.fullmatch(report["send_time"]) and BEIJING_TIME.fullmatch(report["report_time"])
    failed = reports[dead.provider_message_id]
    assert (failed["success"], failed["err_code"], failed["out_id"]) == (False, "MK:0001", "k-2")
    assert [(m["status"], m["error_code"]) for m in done] == [("delivered", None), ("failed", "MK:0001")]


async def test_a_receipt_is_pushed_again_until_kindly_answers_code_0(registered_file: Path) -> None:
    answers = [{"code": 1, "msg": "未匹配"}, {"code": 0, "msg": "成功"}]
    received: list[Any] = []
    kindly = FastAPI()

    @kindly.post("/callbacks/aliyun/s3cret/SmsReport")
    async def report(request: Request) -> dict[str, Any]:
        received.append(await request.json())
        return answers[min(len(received), len(answers)) - 1]

    async with serving(kindly) as kindly_url:
        base = f"{kindly_url}/callbacks/aliyun/s3cret"
        async with sandbox(registered_file, push_format="aliyun", callback_base_url=base) as box:
            await box.provider.send(_sms("k-1"))
            done = await eventually(box.messages, lambda ms: ms[0]["kindly_answer"] == "code 0 成功")
    assert len(received) == 2 and received[0] == received[1]
    assert done[0]["status"] == "delivered"


async def test_a_typed_reply_is_pushed_as_sms_up(registered_file: Path) -> None:
    with RecordingHttpServer() as kindly:
        base = f"{kindly.url}/callbacks/aliyun/s3cret"
        async with sandbox(registered_file, push_format="aliyun", callback_base_url=base) as box:
            await box.provider.send(_sms("k-1"))
            # The receipt's push first, so that the refusal queued below is the reply's.
            await eventually(box.messages, lambda ms: ms[0]["kindly_answer"] == "HTTP 200")
            answer = await box.client.post(f"{box.url}/inbox/{PHONE}/reply", data={"text": "TD"})
            kindly.respond_with(500)
            refused = await box.client.post(f"{box.url}/inbox/{PHONE}/reply", data={"text": "HELP"})
            replies = [m for m in await box.messages() if m["direction"] == "in"]
        ups = kindly.requests_to("/callbacks/aliyun/s3cret/SmsUp")
    assert answer.status_code == 303 and refused.status_code == 502
    assert [(m["body"], m["status"]) for m in replies] == [("TD", "forwarded"), ("HELP", "refused")]
    up = ups[0].json()
    assert isinstance(up, list) and len(up) == 1
    assert set(up[0]) == UP_FIELDS
    assert (up[0]["phone_number"], up[0]["content"], up[0]["sign_name"]) == ("13800138000", "TD", SIGN)
    assert BEIJING_TIME.fullmatch(up[0]["send_time"]) and isinstance(up[0]["sequence_id"], int)


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "env"),
    [
        ({"aliyun_access_key_id": None}, "COLLECTIONS_ALIYUN_ACCESS_KEY_ID"),
        ({"aliyun_access_key_secret": None}, "COLLECTIONS_ALIYUN_ACCESS_KEY_SECRET"),
        ({"registered_templates_file": None}, "COLLECTIONS_REGISTERED_TEMPLATES_FILE"),
    ],
)
def test_settings_name_what_is_missing(registered_file: Path, override: dict[str, Any], env: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{env} is required when COLLECTIONS_SMS_PROVIDER=aliyun"):
        AliyunSmsProvider.from_settings(_settings("127.0.0.1:1", registered_file, **override))


def test_registered_templates_need_an_aliyun_section(tmp_path: Path) -> None:
    only_tencent = _write(tmp_path / "t.json", {"tencent": {"sign_name": "金融助手", "templates": {}}})
    with pytest.raises(ConfigurationError, match="no aliyun section"):
        AliyunSmsProvider.from_settings(_settings("127.0.0.1:1", only_tencent))


def test_a_minutes_or_hours_limit_says_when_the_number_may_have_another() -> None:
    from datetime import timedelta

    from activities.sms_aliyun import delivery_error

    minute = delivery_error("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1", 200)
    hour = delivery_error("isv.BUSINESS_LIMIT_CONTROL", "触发小时级流控Permits:5", 200)
    day = delivery_error("isv.BUSINESS_LIMIT_CONTROL", "触发天级流控Permits:10", 200)
    assert isinstance(minute, FrequencyLimitedError) and minute.retry_after == timedelta(minutes=1)
    assert isinstance(hour, FrequencyLimitedError) and hour.retry_after == timedelta(hours=1)
    assert isinstance(day, FrequencyLimitedError) and day.retry_after is None
