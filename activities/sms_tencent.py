"""Tencent Cloud SMS (腾讯云短信, API 2021-01-11) through its official SDK, ``tencentcloud-sdk-python-sms``.

Tencent Cloud sends only registered templates: ``SendSms`` carries the template's id (``TemplateId``), its
values in placeholder order (``TemplateParamSet``: ``{1}``, ``{2}``, ...) and the approved signature
(``SignName``); Tencent Cloud renders the text. Kindly's idempotency key goes as ``SessionContext``, which
Tencent Cloud echoes back (in the answer and, when enabled, as ``ext`` in the status callback) but does
**not** deduplicate on: a retry after an answer that never arrived (a timeout, ``InternalError.Timeout``)
may text the customer twice. Kindly's outbox keeps a recorded send from going again; nothing can do more
for a send whose outcome is unknown.

The SDK is synchronous (``requests``): each send runs in a worker thread with one client per thread
(``requests`` sessions are not meant to be shared between threads). Its own retries are off; Temporal
retries the activity. ``HttpProfile(reqTimeout=...)`` bounds the connection and each read; the thread is
also given a deadline of twice that, after which the send counts as a timeout (the thread cannot be
stopped and finishes on its own).

Answers map onto Kindly's errors through one table, ``CODES`` (exact codes) and ``FAMILIES`` (the part of
a code before its first dot), read by :func:`kind_of`; :class:`Kind` says why each class is what it is.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any

import requests
from tencentcloud.common.credential import Credential  # type: ignore[import-untyped]
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # type: ignore[import-untyped]
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile  # type: ignore[import-untyped]
from tencentcloud.common.profile.http_profile import HttpProfile  # type: ignore[import-untyped]
from tencentcloud.sms.v20210111 import models, sms_client  # type: ignore[import-untyped]
from urllib3.exceptions import NewConnectionError

from activities.sms_providers import OutgoingSms, ProviderReceipt
from kindly.domain.masking import mask_phone
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

OK = "Ok"
"""A number's ``SendStatus.Code`` when Tencent Cloud took the message."""


class Kind(Enum):
    """What a Tencent Cloud code means for Kindly, and why."""

    PERMANENT = "permanent"
    """The request is wrong for this message or this number (a malformed or blocklisted number, a
    template refused or filled wrongly, forbidden content): the same request gets the same answer, so it
    is recorded as rejected (``PermanentDeliveryError``) and the account goes on. A template problem
    stays per message: other templates still send."""

    RETRY_REFUSED = "retry, refused"
    """Tencent Cloud refused the request for now (API rate limit, marketing hours) and sent nothing:
    retrying later can succeed (``TransientDeliveryError``, ``not_taken``)."""

    RETRY_UNSURE = "retry, outcome unknown"
    """Tencent Cloud's side failed (``InternalError.*``: timeouts, system busy), the network failed, or
    the answer was garbled: retrying can succeed, but the message may have gone out
    (``TransientDeliveryError``). Codes Kindly does not know also land here: they are retried and
    logged rather than dropped, so a customer does not silently miss a message over a new code, and
    Temporal's backoff bounds the cost until the table learns it."""

    FREQUENCY_LIMITED = "frequency limited"
    """The number reached a per-number frequency limit (30 seconds, one hour, one day, the same content
    in a day): nothing went out and retrying soon cannot help, so the touch waits for its next allowed
    moment (``FrequencyLimitedError``)."""

    ACCOUNT = "account"
    """The lender's Tencent Cloud account cannot send at all (package balance exhausted, signature
    unapproved, SmsSdkAppId not the account's, service suspended, credentials or clock refused,
    application-wide quotas): no message can go until an operator acts, so sending stops and an alarm
    is raised (``ProviderAccountError``)."""


CODES: dict[str, Kind] = {
    # The number and the customer.
    "InvalidParameterValue.IncorrectPhoneNumber": Kind.PERMANENT,
    "FailedOperation.PhoneNumberParseFail": Kind.PERMANENT,
    "FailedOperation.PhoneNumberInBlacklist": Kind.PERMANENT,
    # The template and its values.
    "FailedOperation.TemplateIncorrectOrUnapproved": Kind.PERMANENT,
    "FailedOperation.TemplateUnapprovedOrNotExist": Kind.PERMANENT,
    "FailedOperation.TemplateIdNotExist": Kind.PERMANENT,
    "FailedOperation.MissingTemplateList": Kind.PERMANENT,
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": Kind.PERMANENT,
    "InvalidParameterValue.TemplateParameterFormatError": Kind.PERMANENT,
    "InvalidParameterValue.TemplateParameterLengthLimit": Kind.PERMANENT,
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter": Kind.PERMANENT,
    "InvalidParameterValue.ContentLengthLimit": Kind.PERMANENT,
    "FailedOperation.ContainSensitiveWord": Kind.PERMANENT,
    "InvalidParameter.DirtyWordFound": Kind.PERMANENT,
    # The request itself (Kindly sends one number per request).
    "FailedOperation.FailResolvePacket": Kind.PERMANENT,
    "FailedOperation.JsonParseFail": Kind.PERMANENT,
    "InternalError.JsonParseFail": Kind.PERMANENT,
    "InternalError.RestApiInterfaceNotExist": Kind.PERMANENT,
    "LimitExceeded.PhoneNumberCountLimit": Kind.PERMANENT,
    # Not now.
    "RequestLimitExceeded": Kind.RETRY_REFUSED,
    "LimitExceeded.GlobalSmsSendingRateLimit": Kind.RETRY_REFUSED,
    "FailedOperation.MarketingSendTimeConstraint": Kind.RETRY_REFUSED,
    # The SDK's own codes: an answer other than HTTP 200, no answer at all (see _never_reached).
    "ServerNetworkError": Kind.RETRY_UNSURE,
    "ClientNetworkError": Kind.RETRY_UNSURE,
    # Per-number frequency limits.
    "LimitExceeded.PhoneNumberThirtySecondLimit": Kind.FREQUENCY_LIMITED,
    "LimitExceeded.PhoneNumberOneHourLimit": Kind.FREQUENCY_LIMITED,
    "LimitExceeded.PhoneNumberDailyLimit": Kind.FREQUENCY_LIMITED,
    "LimitExceeded.PhoneNumberSameContentDailyLimit": Kind.FREQUENCY_LIMITED,
    "LimitExceeded.DeliveryFrequencyLimit": Kind.FREQUENCY_LIMITED,
    # The account, its signature, its application and its quotas.
    "FailedOperation.InsufficientBalanceInSmsPackage": Kind.ACCOUNT,
    "FailedOperation.SignatureIncorrectOrUnapproved": Kind.ACCOUNT,
    "FailedOperation.MissingSignatureList": Kind.ACCOUNT,
    "InvalidParameterValue.SdkAppIdNotExist": Kind.ACCOUNT,
    "InvalidParameter.AppidAndBizId": Kind.ACCOUNT,
    "InternalError.RequestTimeException": Kind.ACCOUNT,  # the worker's clock is off by > 10 minutes
    "LimitExceeded.AppDailyLimit": Kind.ACCOUNT,
    "LimitExceeded.AppMainlandChinaDailyLimit": Kind.ACCOUNT,
    "LimitExceeded.AppGlobalDailyLimit": Kind.ACCOUNT,
    "LimitExceeded.AppCountryOrRegionDailyLimit": Kind.ACCOUNT,
    "LimitExceeded.AppCountryOrRegionInBlacklist": Kind.ACCOUNT,
    "LimitExceeded.DailyLimit": Kind.ACCOUNT,
    "InvalidCredential": Kind.ACCOUNT,
}
"""Tencent Cloud's codes (``SendStatus.Code`` per number, ``Response.Error.Code`` per request; both use
the same names), from the SDK's ``sms/v20210111/errorcodes.py`` and the API 3.0 common error codes."""

FAMILIES: dict[str, Kind] = {
    "AuthFailure": Kind.ACCOUNT,  # SignatureFailure, SecretIdNotFound, SignatureExpire (clock) ...
    "UnauthorizedOperation": Kind.ACCOUNT,  # SmsSdkAppIdVerifyFail, ServiceSuspendDueToArrears ...
    "LimitExceeded": Kind.ACCOUNT,  # an application quota: per-number ones are listed in CODES
    "IpNotInWhitelist": Kind.ACCOUNT,
    "IpInBlacklist": Kind.ACCOUNT,
    "UnsupportedRegion": Kind.ACCOUNT,  # COLLECTIONS_TENCENT_REGION
    "NoSuchVersion": Kind.ACCOUNT,
    "InvalidAction": Kind.ACCOUNT,
    "ActionOffline": Kind.ACCOUNT,
    "InvalidParameter": Kind.PERMANENT,
    "InvalidParameterValue": Kind.PERMANENT,
    "MissingParameter": Kind.PERMANENT,
    "UnknownParameter": Kind.PERMANENT,
    "UnsupportedOperation": Kind.PERMANENT,  # a mainland template to a foreign number, and kin
    "FailedOperation": Kind.PERMANENT,  # OtherError, ParametersOtherError: "usually the parameters"
    "RequestLimitExceeded": Kind.RETRY_REFUSED,
    "ServiceUnavailable": Kind.RETRY_REFUSED,
    "InternalError": Kind.RETRY_UNSURE,  # Timeout, SendAndRecvFail, OtherError, UnknownError ...
}
"""Codes not in ``CODES``, by family. A code of no known family is ``Kind.RETRY_UNSURE``."""


def kind_of(code: str) -> Kind:
    """What ``code`` means for Kindly: ``CODES``, else its family in ``FAMILIES``, else a retry."""
    known = CODES.get(code)
    if known is not None:
        return known
    return FAMILIES.get(code.split(".", 1)[0], Kind.RETRY_UNSURE)


FREQUENCY_WINDOWS = {
    "LimitExceeded.PhoneNumberThirtySecondLimit": timedelta(seconds=30),
    "LimitExceeded.PhoneNumberOneHourLimit": timedelta(hours=1),
}
"""How long the limit a frequency refusal met lasts; the daily ones wait for the next window."""


def refusal(code: str, detail: str, *, not_taken: bool | None = None) -> DeliveryError:
    """The Kindly error for Tencent Cloud's ``code``; ``not_taken`` overrides what the code implies (a
    network error that never reached Tencent Cloud)."""
    message = f"SendSms to Tencent Cloud SMS failed: {code}{f' ({detail})' if detail else ''}"
    kind = kind_of(code)
    if kind is Kind.PERMANENT:
        return PermanentDeliveryError(message)
    if kind is Kind.FREQUENCY_LIMITED:
        return FrequencyLimitedError(message, code=code, retry_after=FREQUENCY_WINDOWS.get(code))
    if kind is Kind.ACCOUNT:
        return ProviderAccountError(message, code=code)
    taken = kind is Kind.RETRY_REFUSED if not_taken is None else not_taken
    return TransientDeliveryError(message, not_taken=taken)


@dataclass(frozen=True)
class SendStatus:
    """One number's outcome in ``SendSmsResponse.SendStatusSet``, typed."""

    code: str
    message: str
    serial_no: str
    phone_number: str


class TencentSmsProvider:
    """Sends each message as one ``SendSms`` of one number (see the module docstring)."""

    name = "tencent"

    def __init__(
        self,
        *,
        secret_id: str,
        secret_key: str,
        sms_app_id: str,
        sign_name: str,
        region: str = "ap-guangzhou",
        endpoint: str = "sms.tencentcloudapi.com",
        protocol: str = "https",
        timeout_seconds: float = 10.0,
    ) -> None:
        try:
            self._credential = Credential(secret_id, secret_key)
        except TencentCloudSDKException as err:
            raise ConfigurationError(f"Tencent Cloud credentials are unusable: {err.get_message()}") from None
        self._sms_app_id = sms_app_id
        self._sign_name = sign_name
        self._region = region
        self._endpoint = endpoint
        self._protocol = protocol
        self._timeout = timeout_seconds
        self._clients = threading.local()

    @classmethod
    def from_settings(cls, settings: Settings) -> TencentSmsProvider:
        """The provider ``settings`` configure; ``ConfigurationError`` names what is missing."""
        secret_key = settings.tencent_secret_key
        required = {
            "COLLECTIONS_TENCENT_SECRET_ID": settings.tencent_secret_id or "",
            "COLLECTIONS_TENCENT_SECRET_KEY": secret_key.get_secret_value() if secret_key else "",
            "COLLECTIONS_TENCENT_SMS_APP_ID": settings.tencent_sms_app_id or "",
            "COLLECTIONS_REGISTERED_TEMPLATES_FILE": str(settings.registered_templates_file or ""),
        }
        missing = [env for env, value in required.items() if not value]
        if missing:
            raise ConfigurationError(
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required "
                "when COLLECTIONS_SMS_PROVIDER=tencent"
            )
        assert settings.registered_templates_file is not None
        templates = load_registered_templates(settings.registered_templates_file).tencent
        if templates is None:
            raise ConfigurationError(
                f"registered templates {settings.registered_templates_file}: no tencent section "
                "(COLLECTIONS_SMS_PROVIDER=tencent sends Tencent Cloud's registered templates)"
            )
        return cls(
            secret_id=required["COLLECTIONS_TENCENT_SECRET_ID"],
            secret_key=required["COLLECTIONS_TENCENT_SECRET_KEY"],
            sms_app_id=required["COLLECTIONS_TENCENT_SMS_APP_ID"],
            sign_name=templates.sign_name,
            region=settings.tencent_region,
            endpoint=settings.tencent_endpoint,
            protocol=settings.tencent_protocol,
            timeout_seconds=settings.http_timeout_seconds,
        )

    async def send(self, sms: OutgoingSms) -> ProviderReceipt:
        request = self._request(sms)
        try:
            statuses, request_id = await asyncio.wait_for(
                asyncio.to_thread(self._send_blocking, request), timeout=2 * self._timeout
            )
        except TimeoutError:
            raise TransientDeliveryError(
                f"Tencent Cloud SMS did not answer within {2 * self._timeout:g} s"
            ) from None
        except TencentCloudSDKException as err:
            code = str(err.get_code())
            detail = _scrub(f"{err.get_message()}; RequestId {err.get_request_id()}", sms.to)
            raise refusal(code, detail, not_taken=True if _never_reached(err) else None) from None
        mine = [status for status in statuses if status.phone_number in ("", sms.to)] or statuses
        if not mine:
            raise TransientDeliveryError("Tencent Cloud SMS answered without a SendStatus")
        status = mine[0]
        if status.code != OK:
            raise refusal(status.code, _scrub(f"{status.message}; RequestId {request_id}", sms.to))
        return ProviderReceipt(provider=self.name, provider_message_id=status.serial_no or None)

    def _request(self, sms: OutgoingSms) -> dict[str, Any]:
        """``SendSms``'s parameters; a message that is not a Tencent Cloud template is refused here."""
        if sms.template_code is None:
            raise PermanentDeliveryError(
                f"template {sms.template} ({sms.locale}) has no Tencent Cloud template: "
                "Tencent Cloud sends registered templates only"
            )
        params = sms.params or {}
        if not all(name.isdigit() for name in params):
            raise PermanentDeliveryError(
                f"Tencent Cloud template {sms.template_code} has placeholders that are not numbered"
            )
        return {
            "PhoneNumberSet": [sms.to],
            "SmsSdkAppId": self._sms_app_id,
            "SignName": self._sign_name,
            "TemplateId": sms.template_code,
            "TemplateParamSet": [params[name] for name in sorted(params, key=int)],
            "SessionContext": sms.idempotency_key,
        }

    def _client(self) -> Any:
        """This thread's SDK client, made on first use."""
        client = getattr(self._clients, "client", None)
        if client is None:
            http = HttpProfile(
                protocol=self._protocol, endpoint=self._endpoint, reqMethod="POST", reqTimeout=self._timeout
            )
            profile = ClientProfile(httpProfile=http, language="en-US")
            client = sms_client.SmsClient(self._credential, self._region, profile)
            self._clients.client = client
        return client

    def _send_blocking(self, params: dict[str, Any]) -> tuple[list[SendStatus], str]:
        """One ``SendSms`` through the SDK, in a worker thread: the answer's statuses, typed, and its
        RequestId (what Tencent Cloud's support asks for)."""
        request = models.SendSmsRequest()
        for name, value in params.items():
            setattr(request, name, value)
        response = self._client().SendSms(request)
        statuses = [
            SendStatus(
                code=str(status.Code or ""),
                message=str(status.Message or ""),
                serial_no=str(status.SerialNo or ""),
                phone_number=str(status.PhoneNumber or ""),
            )
            for status in response.SendStatusSet or []
        ]
        return statuses, str(response.RequestId or "")


def _never_reached(err: BaseException) -> bool:
    """Whether the SDK's ``ClientNetworkError`` says the request never reached Tencent Cloud: no
    connection was made (refused, or the connection timed out). A read timeout or a dropped connection
    may follow a send."""
    cause = err.__context__
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(cause, requests.exceptions.ConnectionError) and cause.args:
        return isinstance(getattr(cause.args[0], "reason", None), NewConnectionError)
    return False


def _scrub(text: str, phone: str) -> str:
    """Tencent Cloud's words for an error, without the customer's number, and not too long."""
    for number in (phone, phone.removeprefix("+86")):  # the whole number first, then its national part
        if number:
            text = text.replace(number, mask_phone(phone))
    return text if len(text) <= 300 else text[:299] + "…"
