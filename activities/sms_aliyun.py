"""Alibaba Cloud SMS (阿里云短信服务, dysmsapi 2017-05-25) through its official SDK.

Mainland SMS go out only as an approved template (``TemplateCode``) under an approved signature
(``SignName``): the composer (``activities.composition.RegisteredComposer``) gives each message its code
and its placeholders' values, and ``COLLECTIONS_REGISTERED_TEMPLATES_FILE`` gives the signature.

``SendSms`` takes the number as Alibaba Cloud documents it: a mainland number as its 11 digits (``+86``
dropped), any other with its country code and without ``+``. ``OutId`` carries the idempotency key so
that delivery receipts name it; Alibaba Cloud does NOT deduplicate on it (SendSms "does not support
idempotence"), so a retry after a lost answer can text twice: the outbox, not the gateway, is what keeps
that rare.

Alibaba Cloud answers in two ways, and both map onto :mod:`kindly.errors` through one table
(:func:`delivery_error`): a gateway refusal (signature, credentials, throttling, 5xx) is an HTTP error the
SDK raises as an ``AlibabaCloudException`` with ``code`` and ``status_code``; a business refusal is an
HTTP 200 whose body's ``Code`` is not ``OK``. Messages name the code and Alibaba Cloud's explanation,
never the number or the parameters.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Literal, Protocol, cast

from alibabacloud_dysmsapi20170525.client import Client  # type: ignore[import-untyped]
from alibabacloud_dysmsapi20170525.models import SendSmsRequest  # type: ignore[import-untyped]
from alibabacloud_tea_openapi.models import Config  # type: ignore[import-untyped]
from Tea.exceptions import TeaException, UnretryableException  # type: ignore[import-untyped]

from activities.sms_providers import OutgoingSms, ProviderReceipt
from kindly.domain.messages.registered import load_registered_templates
from kindly.errors import (
    ConfigurationError,
    DeliveryError,
    FrequencyLimitedError,
    PermanentDeliveryError,
    ProviderAccountError,
    TransientDeliveryError,
)
from kindly.settings import Settings

Kind = Literal["permanent", "transient", "refused_for_now", "frequency", "account"]

PERMANENT: frozenset[str] = frozenset(
    {
        "isv.MOBILE_NUMBER_ILLEGAL",
        "isv.DOMESTIC_NUMBER_NOT_SUPPORTED",
        "isv.MOBILE_COUNT_OVER_LIMIT",
        "isv.SMS_TEMPLATE_ILLEGAL",
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.TEMPLATE_PARAMS_ILLEGAL",
        "isv.INVALID_PARAMETERS",
        "isv.INVALID_JSON_PARAM",
        "isv.PARAM_LENGTH_LIMIT",
        "isv.PARAM_NOT_SUPPORT_URL",
        "isv.BLACK_KEY_CONTROL_LIMIT",
        "isv.SMS_CONTENT_ILLEGAL",
        "isv.EXTEND_CODE_ERROR",
        "MissingPhoneNumbers",
        "MissingSignName",
        "MissingTemplateCode",
    }
)
"""This message can never go as it is: the number is not a mobile number, the template code is unknown
or unapproved, a parameter is missing, too long, not a string, carries a URL or a blacklisted keyword
(``isv.BLACK_KEY_CONTROL_LIMIT`` is about keywords in the parameters, not a blacklisted number). The
next message, to another number or with another template, may well go: so it is this touch's failure
(``PermanentDeliveryError``), recorded as rejected, not the account's."""

TRANSIENT: frozenset[str] = frozenset(
    {"isp.SYSTEM_ERROR", "isp.GATEWAY_ERROR", "InternalError", "ServiceTimeout", "UnknownError"}
)
"""Alibaba Cloud failed on its side: the same request may succeed in a moment, so Temporal retries it
with backoff. The message may have gone out before the failure (a 500 can hide a send), so the outbox
claim is kept (``not_taken`` false)."""

REFUSED_FOR_NOW: frozenset[str] = frozenset(
    {"Throttling", "Throttling.User", "Throttling.Api", "ServiceUnavailable", "SignatureNonceUsed"}
)
"""The API itself refused the call before looking at it: too many calls per second for the account or the
API (not the per-number limit), the service briefly unavailable, or a nonce seen twice (a retry signs
with a fresh one). Retrying helps, and nothing went out (``not_taken``)."""

FREQUENCY: frozenset[str] = frozenset({"isv.BUSINESS_LIMIT_CONTROL"})
"""The per-number frequency limit (by default 1 a minute, 5 an hour, 10 a day to one number under one
signature; Alibaba Cloud's message says which: ``触发分钟级流控Permits:1``). Retrying within the window
is refused again, and each refusal counts: the touch waits for its next allowed moment
(``FrequencyLimitedError``)."""

ACCOUNT: frozenset[str] = frozenset(
    {
        "isv.AMOUNT_NOT_ENOUGH",
        "isv.OUT_OF_SERVICE",
        "isv.ACCOUNT_NOT_EXISTS",
        "isv.ACCOUNT_ABNORMAL",
        "isv.PRODUCT_UN_SUBSCRIPT",
        "isv.PRODUCT_UNSUBSCRIBE",
        "isv.SMS_SIGNATURE_ILLEGAL",
        "isv.SMS_SIGN_ILLEGAL",
        "isv.SIGN_STATE_ILLEGAL",
        "isv.SMS_SIGNATURE_SCENE_ILLEGAL",
        "isv.DAY_LIMIT_CONTROL",
        "isv.MONTH_LIMIT_CONTROL",
        "isv.DENY_IP_RANGE",
        "isp.RAM_PERMISSION_DENY",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "InvalidTimeStamp.Expired",
        "Forbidden.RAM",
        "Forbidden.RiskControl",
    }
)
"""No message from this deployment can go until an operator acts: the balance is exhausted or the
service stopped, the signature is unknown, banned or of the wrong kind, the account's own daily or
monthly cap (``isv.DAY_LIMIT_CONTROL``: a total the lender set, not a per-number limit) is reached, the
calls come from outside the mainland, the AccessKey is wrong, disabled or lacks the RAM permission, or
this host's clock is off by more than 15 minutes. Retrying only repeats the refusal: sending stops and an
alarm is raised (``ProviderAccountError``)."""


_TABLES: tuple[tuple[Kind, frozenset[str]], ...] = (
    ("permanent", PERMANENT),
    ("transient", TRANSIENT),
    ("refused_for_now", REFUSED_FOR_NOW),
    ("frequency", FREQUENCY),
    ("account", ACCOUNT),
)
KINDS: dict[str, Kind] = {code: kind for kind, codes in _TABLES for code in codes}
"""Every code above and its kind: the one place a code is looked up."""


def classify(code: str, status: int) -> Kind:
    """The kind of Alibaba Cloud's ``code`` (answered with HTTP ``status``).

    A code in none of the tables is judged by who it blames, as Alibaba Cloud names them: ``isp.`` (the
    service provider) and HTTP 5xx are transient; ``Throttling...`` and HTTP 429 are refusals for now;
    anything else (``isv.``, the caller, and the gateway's 4xx) is permanent, so that an unknown refusal
    is recorded and looked at instead of retried until the window closes.
    """
    if code in KINDS:
        return KINDS[code]
    if code.startswith("Throttling") or status == 429:
        return "refused_for_now"
    if code.startswith("isp.") or status >= 500:
        return "transient"
    return "permanent"


_LONG_NUMBER = re.compile(r"\d{7,}")


FREQUENCY_WINDOWS = {"分钟级": timedelta(minutes=1), "小时级": timedelta(hours=1)}
"""Alibaba Cloud names the limit a refusal met in its message (``触发分钟级流控Permits:1``): a minute's or
an hour's limit allows the number again that much later; a day's (``天级``) waits for the next window."""


def frequency_window(message: str) -> timedelta | None:
    return next((window for word, window in FREQUENCY_WINDOWS.items() if word in message), None)


def delivery_error(code: str, message: str, status: int, request_id: str | None = None) -> DeliveryError:
    """Kindly's error for Alibaba Cloud's refusal: see the tables above and :func:`classify`."""
    # Alibaba Cloud's explanation, cut short and without anything that looks like a phone number.
    said = _LONG_NUMBER.sub("…", " ".join(message.split()))[:160]
    text = f"Alibaba Cloud SendSms refused: {code}" + (f" ({said})" if said else "")
    if request_id:
        text += f", request {request_id}"
    kind = classify(code, status)
    if kind == "frequency":
        return FrequencyLimitedError(text, code=code, retry_after=frequency_window(message))
    if kind == "account":
        return ProviderAccountError(text, code=code)
    if kind == "permanent":
        return PermanentDeliveryError(text, status_code=status)
    return TransientDeliveryError(text, status_code=status, not_taken=kind == "refused_for_now")


def phone_numbers(to: str) -> str:
    """``SendSms``'s ``PhoneNumbers`` for an E.164 number: a mainland number's 11 digits, any other
    number's country code and digits without ``+``."""
    if to.startswith("+86"):
        return to[3:]
    return to.removeprefix("+")


class _SendSmsBody(Protocol):
    code: str | None
    message: str | None
    biz_id: str | None
    request_id: str | None


class _SendSmsResponse(Protocol):
    status_code: int | None
    body: _SendSmsBody | None


class AliyunSmsProvider:
    """Sends each message's registered template through ``dysmsapi``'s ``SendSms``."""

    name = "aliyun"

    def __init__(self, client: Client, *, sign_name: str) -> None:
        self._client = client
        self._sign_name = sign_name

    @classmethod
    def from_settings(cls, settings: Settings) -> AliyunSmsProvider:
        """The provider the settings describe; ``ConfigurationError`` names what is missing."""
        key_id = settings.aliyun_access_key_id or ""
        secret = (
            settings.aliyun_access_key_secret.get_secret_value()
            if settings.aliyun_access_key_secret is not None
            else ""
        )
        required = {
            "COLLECTIONS_ALIYUN_ACCESS_KEY_ID": key_id,
            "COLLECTIONS_ALIYUN_ACCESS_KEY_SECRET": secret,
            "COLLECTIONS_REGISTERED_TEMPLATES_FILE": str(settings.registered_templates_file or ""),
        }
        missing = [env for env, value in required.items() if not value]
        if missing:
            raise ConfigurationError(
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required "
                "when COLLECTIONS_SMS_PROVIDER=aliyun"
            )
        assert settings.registered_templates_file is not None
        registered = load_registered_templates(settings.registered_templates_file)
        if registered.aliyun is None:
            raise ConfigurationError(
                f"registered templates {settings.registered_templates_file} have no aliyun section "
                "(its sign_name and templates), required when COLLECTIONS_SMS_PROVIDER=aliyun"
            )
        config = Config(
            access_key_id=key_id,
            access_key_secret=secret,
            endpoint=settings.aliyun_endpoint,
            protocol=settings.aliyun_protocol,
        )
        return cls(Client(config), sign_name=registered.aliyun.sign_name)

    async def send(self, sms: OutgoingSms) -> ProviderReceipt:
        if not sms.template_code:
            # A composer bug, not the gateway's answer: Alibaba Cloud sends no free text.
            raise PermanentDeliveryError(
                f"template {sms.template} ({sms.locale or 'no locale'}) has no Alibaba Cloud template code: "
                "COLLECTIONS_SMS_PROVIDER=aliyun needs registered templates"
            )
        request = SendSmsRequest(
            phone_numbers=phone_numbers(sms.to),
            sign_name=self._sign_name,
            template_code=sms.template_code,
            template_param=json.dumps(sms.params, ensure_ascii=False) if sms.params else None,
            out_id=sms.idempotency_key,
        )
        try:
            response = cast(_SendSmsResponse, await self._client.send_sms_async(request))
        except UnretryableException as err:  # the SDK's wrapper of a failed exchange
            raise _exchange_failed(err) from err
        except TeaException as err:  # the gateway's HTTP 4xx and 5xx (``AlibabaCloudException``)
            data = err.data if isinstance(err.data, dict) else {}
            status = getattr(err, "status_code", None) or data.get("statusCode") or 0
            raise delivery_error(
                str(err.code),
                str(data.get("Message") or err.message or ""),
                int(status),
                data.get("RequestId"),
            ) from err
        body = response.body
        if body is None or body.code != "OK":  # a business refusal, answered with HTTP 200
            raise delivery_error(
                (body.code if body is not None else None) or "NoCode",
                (body.message if body is not None else None) or "",
                response.status_code or 200,
                body.request_id if body is not None else None,
            )
        return ProviderReceipt(provider=self.name, provider_message_id=body.biz_id or None)


def _exchange_failed(err: UnretryableException) -> TransientDeliveryError:
    """No answer came (no connection, a timeout, a reset) or none that could be read: retry. The SDK
    reduces the connection error to its text, so only a refused connection (aiohttp's ``Cannot connect to
    host``) is known not to have reached Alibaba Cloud; its text is not repeated (it may hold the URL)."""
    inner = getattr(err, "inner_exception", None)
    refused = str(getattr(inner, "message", inner)).startswith("Cannot connect to host")
    what = "could not connect" if refused else f"no usable answer ({type(inner).__name__})"
    return TransientDeliveryError(f"Alibaba Cloud SendSms failed: {what}", not_taken=refused)
