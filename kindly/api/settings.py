"""Settings of the HTTP API: environment variables with the ``COLLECTIONS_`` prefix, or ``.env``."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COLLECTIONS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Required by every operations endpoint in the ``X-API-Key`` header.
    api_key: SecretStr
    # HMAC-SHA256 secret of the JSON webhooks (``X-Kindly-Timestamp`` + ``X-Kindly-Signature``); unset
    # disables them.
    webhook_secret: SecretStr | None = None
    # How far a JSON webhook's ``X-Kindly-Timestamp`` may be from the API's clock, either way; a used
    # signature is refused as a replay for as long as its timestamp is within it.
    webhook_tolerance_seconds: int = Field(default=300, gt=0)
    # How long a used ``X-Twilio-Signature`` is remembered and refused again (Twilio signs no time).
    twilio_replay_window_seconds: int = Field(default=24 * 3600, gt=0)
    # Verifies ``X-Twilio-Signature`` on the Twilio inbound-SMS webhook; unset disables it.
    twilio_auth_token: SecretStr | None = None
    # The externally visible base URL (``https://api.example.com``) when behind a proxy: Twilio signs
    # the URL it called, which the proxy may have rewritten.
    public_base_url: str | None = None
    max_body_bytes: int = Field(default=64 * 1024, gt=0)

    # Codec server (``/codec``, kindly.api.codec_server): it decrypts Temporal payloads for the Web UI
    # and the CLI with the API key. Browsers on these origins (the Web UI) may call it (CORS).
    codec_cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:8233", "http://127.0.0.1:8233"]
    )
    # For a Web UI that cannot send the API key (the dev server's UI sends no credentials): a random
    # secret path segment, the UI's codec endpoint being ``<api>/codec/ui/<token>``. Unset: disabled.
    # ``make run`` sets a new one at each start.
    codec_ui_token: SecretStr | None = Field(default=None, min_length=24)
    # Codec requests carry whole histories' payloads (a continue-as-new input holds the timeline).
    codec_max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
