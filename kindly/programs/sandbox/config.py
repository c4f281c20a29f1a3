"""The sandbox's settings (``COLLECTIONS_SANDBOX_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from kindly.settings import DATA_DIR


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COLLECTIONS_SANDBOX_", extra="ignore")

    inbound_url: str | None = None
    """Kindly's JSON inbound-SMS webhook that typed replies are posted to."""
    webhook_secret: SecretStr | None = None
    """Shared secret of the ``X-Kindly-Signature`` HMAC-SHA256 over ``"<timestamp>.<body>"``."""
    receipts_url: str | None = None
    """Kindly's JSON delivery-receipt webhook; each accepted send gets a receipt there."""
    undeliverable_suffix: str = "0000"
    """Numbers ending so behave like dead numbers: their receipt is a permanent failure."""
    host: str = "127.0.0.1"
    port: int = 8025
    database: Path = DATA_DIR / "sandbox.sqlite3"
    """The SQLite file the served sandbox keeps its messages in, so they outlive a restart."""

    # Alibaba Cloud's and Tencent Cloud's SMS APIs, which the official SDKs send to.
    registered_templates_file: Path | None = None
    """The registered templates (``kindly.domain.messages.registered``) the inbox renders messages with."""
    aliyun_access_key_id: str = "sandbox-aliyun-key"
    aliyun_access_key_secret: SecretStr = SecretStr("sandbox-aliyun-secret")
    tencent_secret_id: str = "sandbox-tencent-id"
    tencent_secret_key: SecretStr = SecretStr("sandbox-tencent-key")
    tencent_sms_app_id: str = "1400000000"
    frequency_per_minute: int | None = 1
    frequency_per_hour: int | None = 5
    frequency_per_day: int | None = 10
    """The per-number frequency limits the providers enforce (Alibaba Cloud's defaults); None: none."""
    push_format: Literal["kindly", "aliyun", "tencent"] = "kindly"
    """How receipts and replies reach Kindly: its JSON webhooks, or a provider's pushes."""
    callback_base_url: str | None = None
    """Kindly's provider callbacks with their secret, ``http://127.0.0.1:8000/callbacks/<provider>/<secret>``."""
