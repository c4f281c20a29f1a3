"""Kindly's one settings class: environment variables with the ``COLLECTIONS_`` prefix, or ``.env``.

Tests construct ``Settings(...)`` with keyword overrides instead of touching the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path(".data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COLLECTIONS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Temporal
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "collections"
    # Remote cluster or Temporal Cloud: an API key, or mTLS client certificate files (PEM). Setting
    # any of them turns TLS on; ``temporal_tls`` turns it on with the system's CA roots alone.
    temporal_api_key: SecretStr | None = None
    temporal_tls: bool = False
    temporal_tls_client_cert: Path | None = None
    temporal_tls_client_key: Path | None = None
    temporal_tls_server_ca: Path | None = None
    temporal_tls_server_name: str | None = None
    # The SMS gateway's accepted rate: never more messages than this in any 1-second interval, across
    # all workers. SMS sends run on their own task queue (``<task_queue>-sms``) whose Temporal rate
    # limit keeps them under it without slowing anything else; that limit bursts, so the queue's rate
    # is about two fifths of this (``kindly/programs/rate_limit.py``, which also says how many task-queue
    # partitions the SMS queue may have: 4, Temporal's default, from 4/s up).
    sms_rate_limit_per_second: float = Field(default=50.0, gt=0)
    # Workflows a worker keeps in memory between tasks (the sticky cache): bounds its memory however
    # many accounts are open; an evicted workflow is rebuilt from its history when it next wakes.
    max_cached_workflows: int = Field(default=1000, ge=0)
    # Re-import the workflow module in the sandbox for every workflow instance, so that the sandbox's
    # restrictions (no clock, I/O or randomness) also guard Kindly's own workflow code. The test suite
    # runs this way; workers default to passing the module through, which is what lets them start an
    # instance without re-executing it (about a sixth of a touchpoint's worker CPU, and 90 MiB).
    strict_workflow_sandbox: bool = False
    # Continue-as-new once a run's history has this many events (or when Temporal suggests it).
    continue_as_new_after_events: int = Field(default=2000, ge=100)
    # A complaint's deadlines, in business days on the segment's holiday calendar after the day it was
    # received: to acknowledge it, and to resolve it. A run keeps the values it started with.
    complaint_acknowledge_business_days: int = Field(default=1, ge=1, le=60)
    complaint_resolve_business_days: int = Field(default=15, ge=1, le=120)
    # Prometheus endpoint of the worker's metrics (Temporal SDK metrics and Kindly's own counters);
    # unset disables it.
    metrics_bind_address: str | None = None

    # Application database (audit log, send outbox)
    database_url: str = f"sqlite:///{DATA_DIR / 'kindly.db'}"

    # SMS gateway
    sms_provider: Literal["console", "webhook", "twilio", "aliyun", "tencent"] = "console"
    sms_webhook_url: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    # Mainland providers send registered templates, not free text: ``registered_templates_file`` maps each
    # Kindly template to the provider's code, text and parameters (``kindly.domain.messages.registered``).
    # Endpoints and protocols point the official SDKs elsewhere (the sandbox of ``make run``).
    registered_templates_file: Path | None = None
    aliyun_access_key_id: str | None = None
    aliyun_access_key_secret: SecretStr | None = None
    aliyun_endpoint: str = "dysmsapi.aliyuncs.com"
    aliyun_protocol: Literal["https", "http"] = "https"
    tencent_secret_id: str | None = None
    tencent_secret_key: SecretStr | None = None
    tencent_sms_app_id: str | None = None
    tencent_region: str = "ap-guangzhou"
    tencent_endpoint: str = "sms.tencentcloudapi.com"
    tencent_protocol: Literal["https", "http"] = "https"
    # The secret in the URL path of the providers' receipt and reply callbacks
    # (``/callbacks/<provider>/<secret>/...``), compared in constant time; unset refuses every callback.
    sms_callback_secret: SecretStr | None = None

    # Hand-offs to a lender's own systems; when unset, call tasks and cases go to the built-in work queues.
    phone_webhook_url: str | None = None
    specialist_webhook_url: str | None = None

    http_timeout_seconds: float = Field(default=10.0, gt=0)

    # What every message shows the customer.
    brand_name: str = "Kindly Finance"
    hotline: str = "400-800-1234"
    repayment_channels: list[str] = Field(
        default_factory=lambda: ["app: Me > Loans > Repay", "bank transfer to 6222-0000-0000-0001"]
    )

    # Every reminder ends with a link to the customer's own page, ``<public_base_url>/p/<token>``: the base
    # is what customers' phones reach (``https://pay.lender.example``), counted in every reminder's
    # length by the content check; the default serves ``make run``. A link works for
    # ``self_service_link_days`` after its reminder was sent.
    public_base_url: str = "http://127.0.0.1:8000"
    self_service_link_days: int = Field(default=30, ge=1)

    # Longest reminder allowed, in SMS segments: the content check refuses longer templates. A Chinese
    # reminder is UCS-2 (67 characters a part); with a large amount, the default English repayment
    # channels and its self-service link it takes four parts, an English one three.
    max_sms_segments: int = Field(default=4, ge=1, le=10)

    # Operator overrides: a JSON file of segment policies, a folder of extra/overriding templates.
    policy_file: Path | None = None
    template_dir: Path | None = None

    # Encryption of personal data at rest: Temporal payloads (AES-GCM codec) and phone numbers in
    # the database. ``encryption_keys`` is JSON ``{"key-id": "<base64 32 bytes>"}``; the current key
    # encrypts, all of them decrypt (rotation). ``lookup_hash_key`` (base64) keys the phone-number
    # hash used for lookups. Unset: a development key ring is created in ``dev_keys_file``.
    encryption_keys: dict[str, SecretStr] = Field(default_factory=dict)
    encryption_key_id: str | None = None
    lookup_hash_key: SecretStr | None = None
    dev_keys_file: Path = DATA_DIR / "keys.json"

    # Embedded dev server (`python worker.py --dev`, `make run`).
    dev_server_db: Path = DATA_DIR / "temporal.db"
    dev_server_ui_port: int = 8233

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str) -> str:
        """An http(s) URL with a host and nothing after its path, which ``/p/<token>`` is appended to: a
        trailing slash, a query or a fragment would make every link in every SMS wrong."""
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (raises for a port that is not a number)
        except ValueError as err:
            raise ValueError(f"public_base_url is not a URL ({err}): {value!r}") from err
        problem = None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "must be an http:// or https:// URL with a host"
        elif parts.username is not None or parts.password is not None:
            problem = "must hold no user name or password"
        elif not value.isascii() or any(ch.isspace() for ch in value):
            problem = "must be ASCII without spaces (write an internationalised domain in its xn-- form)"
        elif parts.query or parts.fragment or "?" in value or "#" in value:
            problem = "must have no query or fragment"
        elif value.endswith("/"):
            problem = "must not end with a slash"
        if problem is not None:
            raise ValueError(f"public_base_url {problem}: {value!r}")
        return value
