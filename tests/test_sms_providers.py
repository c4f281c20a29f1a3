"""SMS providers against a real HTTP server (webhook) and a mock transport (Twilio)."""

from __future__ import annotations

import base64
import io
import json
import socket

import httpx
import pytest
from pydantic import SecretStr

from activities.http import post_form, post_json
from activities.sms_providers import (
    ConsoleSmsProvider,
    OutgoingSms,
    ProviderReceipt,
    TwilioSmsProvider,
    WebhookSmsProvider,
    build_sms_provider,
)
from kindly.errors import ConfigurationError, PermanentDeliveryError, TransientDeliveryError
from kindly.settings import Settings
from tests.http_recorder import RecordingHttpServer, recording_server  # noqa: F401

PHONE = "+8613800138000"


def _sms(key: str = "acct-1:tp-1") -> OutgoingSms:
    return OutgoingSms(
        to=PHONE,
        body="Your payment of CNY 1,200.00 is due. Reply STOP to opt out.",
        idempotency_key=key,
        account_id="acct-1",
        template="first_overdue",
    )


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _twilio_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "sms_provider": "twilio",
        "twilio_account_sid": "AC123",
        "twilio_auth_token": SecretStr("tok"),
        "twilio_from_number": "+15005550006",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


# --- webhook ---------------------------------------------------------------------------------


async def test_webhook_posts_json_with_idempotency_key(
    recording_server: RecordingHttpServer,  # noqa: F811
) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        provider = WebhookSmsProvider(client, f"{recording_server.url}/sms")
        receipt = await provider.send(_sms())

    assert receipt == ProviderReceipt(provider="webhook", provider_message_id="msg-1")
    [request] = recording_server.requests_to("/sms")
    assert request.method == "POST"
    assert request.headers["idempotency-key"] == "acct-1:tp-1"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "to": PHONE,
        "body": _sms().body,
        "idempotency_key": "acct-1:tp-1",
        "account_id": "acct-1",
        "template": "first_overdue",
    }


async def test_webhook_4xx_is_permanent_and_not_retried() -> None:
    with RecordingHttpServer() as server:
        server.respond_with(422)
        async with httpx.AsyncClient(timeout=5) as client:
            provider = WebhookSmsProvider(client, f"{server.url}/sms")
            with pytest.raises(PermanentDeliveryError) as info:
                await provider.send(_sms())
        assert len(server.requests) == 1

    assert info.value.status_code == 422
    message = str(info.value)
    assert "422" in message
    assert "/sms" in message
    assert PHONE not in message
    assert "payment" not in message


async def test_webhook_5xx_is_transient_and_message_hides_payload() -> None:
    with RecordingHttpServer() as server:
        server.respond_with(503)
        async with httpx.AsyncClient(timeout=5) as client:
            provider = WebhookSmsProvider(client, f"{server.url}/sms")
            with pytest.raises(TransientDeliveryError) as info:
                await provider.send(_sms())
            # The queue is used up: the retry with the same key succeeds.
            receipt = await provider.send(_sms())
        first, second = server.requests_to("/sms")

    assert info.value.status_code == 503
    assert "503" in str(info.value)
    assert PHONE not in str(info.value)
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert receipt.provider_message_id == "msg-2"


async def test_webhook_timeout_is_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        provider = WebhookSmsProvider(client, "https://gateway.example/v1/sms")
        with pytest.raises(TransientDeliveryError) as info:
            await provider.send(_sms())

    assert info.value.status_code is None
    assert "gateway.example/v1/sms" in str(info.value)
    assert PHONE not in str(info.value)


async def test_webhook_connection_refused_is_transient() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/sms"
    async with httpx.AsyncClient(timeout=5) as client:
        provider = WebhookSmsProvider(client, url)
        with pytest.raises(TransientDeliveryError) as info:
            await provider.send(_sms())

    assert info.value.status_code is None
    assert PHONE not in str(info.value)


async def test_webhook_receipt_without_json_object_has_no_id() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(202, text="accepted")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        receipt = await WebhookSmsProvider(client, "https://gateway.example/sms").send(_sms())

    assert receipt == ProviderReceipt(provider="webhook", provider_message_id=None)


async def test_webhook_receipt_reads_message_id() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"message_id": "abc"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        receipt = await WebhookSmsProvider(client, "https://gateway.example/sms").send(_sms())

    assert receipt.provider_message_id == "abc"


# --- http helpers ----------------------------------------------------------------------------


async def test_post_form_shares_status_mapping() -> None:
    with RecordingHttpServer() as server:
        server.respond_with(400, 500)
        async with httpx.AsyncClient(timeout=5) as client:
            with pytest.raises(PermanentDeliveryError):
                await post_form(client, f"{server.url}/f", {"To": PHONE}, idempotency_key="k")
            with pytest.raises(TransientDeliveryError):
                await post_form(client, f"{server.url}/f", {"To": PHONE}, idempotency_key="k")
            response = await post_form(client, f"{server.url}/f", {"To": PHONE}, idempotency_key="k")
        assert [r.form() for r in server.requests] == [{"To": PHONE}] * 3
        assert {r.headers["idempotency-key"] for r in server.requests} == {"k"}

    assert response.status_code == 200


async def test_post_json_error_message_omits_query_and_payload() -> None:
    with RecordingHttpServer() as server:
        server.respond_with(404)
        async with httpx.AsyncClient(timeout=5) as client:
            with pytest.raises(PermanentDeliveryError) as info:
                await post_json(client, f"{server.url}/hook?token=secret", {"to": PHONE}, idempotency_key="k")

    message = str(info.value)
    assert "127.0.0.1" in message
    assert "/hook" in message
    assert "secret" not in message
    assert PHONE not in message


# --- twilio ----------------------------------------------------------------------------------


async def test_twilio_posts_form_with_basic_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"sid": "SM42", "status": "queued"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        provider = TwilioSmsProvider(
            client,
            account_sid="AC123",
            auth_token="tok",
            from_number="+15005550006",
            api_base="https://twilio.test",
        )
        receipt = await provider.send(_sms())

    assert receipt == ProviderReceipt(provider="twilio", provider_message_id="SM42")
    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == "https://twilio.test/2010-04-01/Accounts/AC123/Messages.json"
    expected_auth = base64.b64encode(b"AC123:tok").decode()
    assert request.headers["authorization"] == f"Basic {expected_auth}"
    assert request.headers["idempotency-key"] == "acct-1:tp-1"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = httpx.QueryParams(request.content.decode())
    assert dict(form) == {"To": PHONE, "From": "+15005550006", "Body": _sms().body}


async def test_twilio_against_real_server() -> None:
    with RecordingHttpServer() as server:
        async with httpx.AsyncClient(timeout=5) as client:
            provider = TwilioSmsProvider(
                client, account_sid="AC9", auth_token="t", from_number="+1555", api_base=server.url
            )
            receipt = await provider.send(_sms())
        [request] = server.requests_to("/2010-04-01/Accounts/AC9/Messages.json")

    assert receipt.provider_message_id == "SM1"
    assert request.form()["To"] == PHONE


async def test_twilio_4xx_is_permanent() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"code": 21211, "message": f"Invalid 'To' {PHONE}"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        provider = TwilioSmsProvider(
            client, account_sid="AC123", auth_token="tok", from_number="+15005550006"
        )
        with pytest.raises(PermanentDeliveryError) as info:
            await provider.send(_sms())

    assert info.value.status_code == 400
    assert "api.twilio.com/2010-04-01/Accounts/AC123/Messages.json" in str(info.value)
    assert PHONE not in str(info.value)
    assert "tok" not in str(info.value)


# --- console ---------------------------------------------------------------------------------


async def test_console_masks_phone_and_prints_body() -> None:
    stream = io.StringIO()
    receipt = await ConsoleSmsProvider(stream).send(_sms())

    line = stream.getvalue()
    assert line == ("[sms] to=+86*******8000 template=first_overdue key=acct-1:tp-1 | " + _sms().body + "\n")
    assert PHONE not in line
    assert receipt == ProviderReceipt(provider="console", provider_message_id="console-acct-1:tp-1")


async def test_console_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    await ConsoleSmsProvider().send(_sms())
    out = capsys.readouterr().out
    assert "+86*******8000" in out
    assert PHONE not in out


# --- factory ---------------------------------------------------------------------------------


async def test_build_console_provider() -> None:
    async with httpx.AsyncClient() as client:
        provider = build_sms_provider(Settings(_env_file=None, sms_provider="console"), client)
    assert isinstance(provider, ConsoleSmsProvider)
    assert provider.name == "console"


async def test_build_webhook_provider() -> None:
    settings = Settings(_env_file=None, sms_provider="webhook", sms_webhook_url="https://gw.example/sms")
    async with httpx.AsyncClient() as client:
        provider = build_sms_provider(settings, client)
    assert isinstance(provider, WebhookSmsProvider)
    assert provider.name == "webhook"


async def test_build_webhook_provider_requires_url() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ConfigurationError, match="COLLECTIONS_SMS_WEBHOOK_URL is required"):
            build_sms_provider(Settings(_env_file=None, sms_provider="webhook"), client)


async def test_build_twilio_provider() -> None:
    async with httpx.AsyncClient() as client:
        provider = build_sms_provider(_twilio_settings(), client)
    assert isinstance(provider, TwilioSmsProvider)
    assert provider.name == "twilio"


@pytest.mark.parametrize(
    ("field", "env"),
    [
        ("twilio_account_sid", "COLLECTIONS_TWILIO_ACCOUNT_SID"),
        ("twilio_auth_token", "COLLECTIONS_TWILIO_AUTH_TOKEN"),
        ("twilio_from_number", "COLLECTIONS_TWILIO_FROM_NUMBER"),
    ],
)
async def test_build_twilio_provider_requires_settings(field: str, env: str) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ConfigurationError) as info:
            build_sms_provider(_twilio_settings(**{field: None}), client)
    assert env in str(info.value)
    assert "COLLECTIONS_SMS_PROVIDER=twilio" in str(info.value)


def test_recorded_request_helpers() -> None:
    with RecordingHttpServer() as server:
        httpx.post(f"{server.url}/a", json={"x": 1}, timeout=5)
        httpx.post(f"{server.url}/b?q=1", data={"y": "2"}, timeout=5)
        server.respond_with(500)
        failed = httpx.post(f"{server.url}/a", content=b"", timeout=5)
        assert [r.path for r in server.requests] == ["/a", "/b?q=1", "/a"]
        assert server.requests_to("/a")[0].json() == {"x": 1}
        assert server.requests_to("/b")[0].form() == {"y": "2"}
        assert failed.status_code == 500
        server.clear()
        assert server.requests == []
        ok = httpx.post(f"{server.url}/c", timeout=5)
    assert json.loads(ok.content) == {"id": "msg-4", "sid": "SM4"}
