"""SMS gateways: one small protocol, its implementations, one factory.

* :class:`ConsoleSmsProvider` prints each message (phone number masked); for development.
* :class:`WebhookSmsProvider` POSTs JSON to an operator-run gateway.
* :class:`TwilioSmsProvider` calls Twilio's Messages API.
* ``AliyunSmsProvider`` and ``TencentSmsProvider`` (``activities.sms_aliyun``, ``activities.sms_tencent``)
  send registered templates through the providers' official SDKs.

Every provider sends the message's idempotency key so a retried activity never texts twice. HTTP
providers raise ``PermanentDeliveryError`` (4xx) or ``TransientDeliveryError`` (5xx, timeout,
connection failure) from :mod:`kindly.errors`; see :mod:`activities.http`.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol, TextIO

import httpx
from pydantic import BaseModel, ConfigDict

from activities.http import post_form, post_json
from kindly.domain.masking import mask_phone
from kindly.errors import ConfigurationError
from kindly.settings import Settings


class OutgoingSms(BaseModel):
    """One rendered message ready for a gateway."""

    model_config = ConfigDict(frozen=True)

    to: str
    body: str
    idempotency_key: str
    account_id: str
    template: str
    locale: str = ""
    template_code: str | None = None
    """The provider's registered template (mainland providers); None for free text."""
    params: dict[str, str] | None = None
    """The registered template's placeholders and their values."""


class ProviderReceipt(BaseModel):
    """What the gateway said: which provider took the message, and its id for it if any."""

    model_config = ConfigDict(frozen=True)

    provider: str
    provider_message_id: str | None


class SmsProvider(Protocol):
    name: str

    async def send(self, sms: OutgoingSms) -> ProviderReceipt: ...


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The response body when it is a JSON object, else ``None``."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _message_id(data: dict[str, Any] | None, *keys: str) -> str | None:
    if data is None:
        return None
    for key in keys:
        value = data.get(key)
        if value is not None and value != "":
            return str(value)
    return None


class ConsoleSmsProvider:
    """Writes one line per message to ``stream`` (default: standard output)."""

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, sms: OutgoingSms) -> ProviderReceipt:
        stream = self._stream if self._stream is not None else sys.stdout
        stream.write(
            f"[sms] to={mask_phone(sms.to)} template={sms.template} key={sms.idempotency_key} | {sms.body}\n"
        )
        stream.flush()
        return ProviderReceipt(provider=self.name, provider_message_id=f"console-{sms.idempotency_key}")


class WebhookSmsProvider:
    """POSTs each message as JSON to an operator-run gateway."""

    name = "webhook"

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._url = url

    async def send(self, sms: OutgoingSms) -> ProviderReceipt:
        payload = {
            "to": sms.to,
            "body": sms.body,
            "idempotency_key": sms.idempotency_key,
            "account_id": sms.account_id,
            "template": sms.template,
        }
        response = await post_json(self._client, self._url, payload, idempotency_key=sms.idempotency_key)
        return ProviderReceipt(
            provider=self.name,
            provider_message_id=_message_id(_json_object(response), "id", "message_id"),
        )


class TwilioSmsProvider:
    """Sends through Twilio's Messages API (form-encoded, HTTP basic auth)."""

    name = "twilio"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_base: str = "https://api.twilio.com",
    ) -> None:
        self._client = client
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._from_number = from_number
        self._url = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"

    async def send(self, sms: OutgoingSms) -> ProviderReceipt:
        response = await post_form(
            self._client,
            self._url,
            {"To": sms.to, "From": self._from_number, "Body": sms.body},
            idempotency_key=sms.idempotency_key,
            auth=(self._account_sid, self._auth_token),
        )
        return ProviderReceipt(
            provider=self.name, provider_message_id=_message_id(_json_object(response), "sid")
        )


def build_sms_provider(settings: Settings, client: httpx.AsyncClient) -> SmsProvider:
    """The provider ``settings.sms_provider`` names, or :class:`ConfigurationError`."""
    kind = settings.sms_provider
    if kind == "console":
        return ConsoleSmsProvider()
    if kind == "webhook":
        if not settings.sms_webhook_url:
            raise ConfigurationError(
                "COLLECTIONS_SMS_WEBHOOK_URL is required when COLLECTIONS_SMS_PROVIDER=webhook"
            )
        return WebhookSmsProvider(client, settings.sms_webhook_url)
    if kind == "twilio":
        sid = settings.twilio_account_sid or ""
        token = (
            settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token is not None else ""
        )
        from_number = settings.twilio_from_number or ""
        required = {
            "COLLECTIONS_TWILIO_ACCOUNT_SID": sid,
            "COLLECTIONS_TWILIO_AUTH_TOKEN": token,
            "COLLECTIONS_TWILIO_FROM_NUMBER": from_number,
        }
        missing = [env for env, value in required.items() if not value]
        if missing:
            raise ConfigurationError(
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required "
                "when COLLECTIONS_SMS_PROVIDER=twilio"
            )
        return TwilioSmsProvider(
            client,
            account_sid=sid,
            auth_token=token,
            from_number=from_number,
            api_base=settings.twilio_api_base,
        )
    if kind == "aliyun":
        from activities.sms_aliyun import AliyunSmsProvider

        return AliyunSmsProvider.from_settings(settings)
    if kind == "tencent":
        from activities.sms_tencent import TencentSmsProvider

        return TencentSmsProvider.from_settings(settings)
    raise ConfigurationError(f"unknown COLLECTIONS_SMS_PROVIDER={kind!r}")
