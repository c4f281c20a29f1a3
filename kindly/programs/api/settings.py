"""Settings of the HTTP API: environment variables with the ``COLLECTIONS_`` prefix, or ``.env``."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kindly.domain.contract import Locale

# Secrets that were current before a rotation. ``NoDecode``: ``_previous_list`` decodes the
# environment's JSON instead of pydantic-settings, so that an empty variable means none and a malformed
# one is a validation error naming the field (not the value), not a traceback.
PreviousSecrets = Annotated[list[SecretStr], NoDecode]

# Each list of previous secrets and the setting it is the predecessor of.
_CURRENT_OF = {
    "webhook_previous_secrets": "webhook_secret",
    "twilio_previous_auth_tokens": "twilio_auth_token",
}


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COLLECTIONS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Required by every operations endpoint in the ``X-API-Key`` header.
    api_key: SecretStr
    # HMAC-SHA256 secret of the JSON webhooks (``X-Kindly-Timestamp`` + ``X-Kindly-Signature``); unset
    # disables them; an empty one is refused (anybody could sign with an empty key).
    webhook_secret: SecretStr | None = None
    # Rotation: secrets ``webhook_secret`` replaced, still accepted (never used to sign) until every
    # sender signs with the new one. A JSON list (``["old-secret"]``); empty or unset: none.
    webhook_previous_secrets: PreviousSecrets = Field(default_factory=list)
    # How far a JSON webhook's ``X-Kindly-Timestamp`` may be from the API's clock, either way; a used
    # signature is refused as a replay for as long as its timestamp is within it.
    webhook_tolerance_seconds: int = Field(default=300, gt=0)
    # How long a used ``X-Twilio-Signature`` is remembered and refused again (Twilio signs no time).
    twilio_replay_window_seconds: int = Field(default=24 * 3600, gt=0)
    # Verifies ``X-Twilio-Signature`` on the Twilio inbound-SMS webhook; unset disables it.
    twilio_auth_token: SecretStr | None = None
    # Rotation: Twilio signs with its primary auth token; set ``twilio_auth_token`` to the secondary
    # token and list the primary here before promoting the secondary (a JSON list, like the above).
    twilio_previous_auth_tokens: PreviousSecrets = Field(default_factory=list)
    # The externally visible base URL (``https://api.example.com``) when behind a proxy: Twilio signs
    # the URL it called, which the proxy may have rewritten.
    public_base_url: str | None = None
    max_body_bytes: int = Field(default=64 * 1024, gt=0)

    # Codec server (``/codec``, kindly.programs.api.codec_server): it decrypts Temporal payloads for the
    # Web UI and the CLI with the API key. Browsers on these origins (the Web UI) may call it (CORS).
    codec_cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:8233", "http://127.0.0.1:8233"]
    )
    # For a Web UI that cannot send the API key (the dev server's UI sends no credentials): a random
    # secret path segment, the UI's codec endpoint being ``<api>/codec/ui/<token>``. Unset: disabled.
    # ``make run`` sets a new one at each start.
    codec_ui_token: SecretStr | None = Field(default=None, min_length=24)
    # Codec requests carry whole histories' payloads (a continue-as-new input holds the timeline).
    codec_max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)

    # The staff console (``/console``, kindly.programs.console). Its cookies are signed with this secret;
    # every API replica must share it. Unset: a random one is made at start, so console sessions end
    # when the API restarts (and differ between replicas).
    console_session_secret: SecretStr | None = Field(default=None, min_length=32)
    # A console session ends this long after its login, whatever the activity...
    console_session_hours: float = Field(default=12, gt=0, le=24 * 7)
    # ... or after this long without a request.
    console_idle_minutes: float = Field(default=30, gt=0, le=24 * 60)
    # The console's cookies are sent over HTTPS only. ``make run`` (http://127.0.0.1) turns it off.
    console_cookie_secure: bool = True
    # How long an agent holds a call task taken from the phone queue before it returns to the queue.
    console_call_lease_minutes: int = Field(default=15, gt=0, le=24 * 60)
    # The floor's time zone: the days of the console's dashboard and audit filters.
    console_timezone: str = "UTC"

    # The customer's self-service page (``/p/<token>``, kindly.programs.selfservice). Its CSRF cookie is
    # signed with this secret; every API replica must share it. Unset: a random one is made at start, so
    # a form shown before a restart (or by another replica) is refused once and shown afresh.
    self_service_secret: SecretStr | None = Field(default=None, min_length=32)
    # Its CSRF cookie is sent over HTTPS only. ``make run`` (http://127.0.0.1) turns it off.
    self_service_cookie_secure: bool = True
    # Requests one client address may make to the pages in a minute, and choices (POSTs) one link may
    # take in an hour; more are answered 429. Counted by each API process on its own.
    self_service_requests_per_minute: int = Field(default=30, gt=0)
    self_service_posts_per_hour: int = Field(default=10, gt=0)
    # The page's language when the visitor's browser asks for neither zh-CN nor en-US (a ``?lang=``
    # link switches it).
    self_service_default_locale: Locale = "zh-CN"
    # "Pay now" leads to the lender's payment page: this URL with ``{reference}`` replaced by a signed
    # reference (the account id and the reminder, signed with ``payment_reference_secret``, which the
    # lender verifies; docs/self-service.md). Both or neither; unset, the page offers no "pay now".
    payment_reference_secret: SecretStr | None = Field(default=None, min_length=32)
    # Checked after the secret, so that a refusal shows the template, never the secret.
    payment_url_template: str | None = Field(default=None, validate_default=True)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)

    @field_validator("api_key", "webhook_secret", "twilio_auth_token")
    @classmethod
    def _not_empty(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """An empty secret is refused, not taken as one: with an empty HMAC key anybody could sign."""
        if value is not None and not value.get_secret_value():
            unset = "" if info.field_name == "api_key" else " (leave it unset to turn its webhook off)"
            raise ValueError(f"must not be empty{unset}")
        return value

    @field_validator("console_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        """Refused at start, not at the first dashboard: an IANA name this host knows."""
        try:
            ZoneInfo(value)
        except (ValueError, KeyError) as err:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)") from err
        return value

    @field_validator("webhook_previous_secrets", "twilio_previous_auth_tokens", mode="before")
    @classmethod
    def _previous_list(cls, value: Any) -> Any:
        """The environment's JSON list; an empty variable is no previous secret. The message never
        repeats the value, which holds secrets."""
        if not isinstance(value, str):
            return value
        if not value.strip():
            return []
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = None
        if not isinstance(decoded, list):
            raise ValueError('expected a JSON list of secrets, e.g. ["old-secret"]')
        return decoded

    @field_validator("webhook_previous_secrets", "twilio_previous_auth_tokens")
    @classmethod
    def _previous_needs_current(cls, previous: list[SecretStr], info: ValidationInfo) -> list[SecretStr]:
        """Previous secrets are accepted only next to the current one that replaced them; none is
        empty (an empty HMAC key is no secret) or the current one (a rotation's copy-paste slip)."""
        name = _CURRENT_OF[str(info.field_name)]
        if name not in info.data:  # the current one is invalid itself, and reported as such
            return previous
        current = info.data[name]
        if previous and current is None:
            raise ValueError(
                f"set without {name}: previous secrets are accepted only next to the current one"
            )
        for index, old in enumerate(previous):
            if not old.get_secret_value():
                raise ValueError(f"entry {index} is empty")
            if current is not None and old.get_secret_value() == current.get_secret_value():
                raise ValueError(f"entry {index} repeats {name}: list the secret it replaced")
        return previous

    @field_validator("payment_url_template")
    @classmethod
    def _payment_template(cls, value: str | None, info: ValidationInfo) -> str | None:
        """An http(s) URL holding ``{reference}`` once, refused at start rather than at a customer's tap; and
        it comes with the secret its references are signed with (a template without one would send
        unsigned references, a secret alone offers nothing)."""
        # Without the secret in ``info.data`` the secret is invalid itself, and reported as such.
        secret = info.data.get("payment_reference_secret", value and "invalid")
        if (value is None) != (secret is None):
            raise ValueError("set payment_url_template and payment_reference_secret together, or neither")
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if value.count("{reference}") != 1:
            raise ValueError("must hold {reference} once, where the signed reference goes")
        return value
