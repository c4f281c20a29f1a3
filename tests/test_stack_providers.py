"""``COLLECTIONS_SMS_PROVIDER=aliyun make run`` (and ``tencent``): the stack's worker sends through the
provider's SDK to the sandbox's imitation of its API, with the sandbox's credentials and the demo's registered
templates, and the sandbox pushes receipts and replies to the API's callbacks under a secret kept per data
folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from activities.composition import RegisteredComposer
from kindly.domain.messages.registered_check import REGISTERED_DEMO_FILE
from kindly.programs.composers import checked_composer
from kindly.programs.stack import CALLBACK_SECRET_FILE, stack_settings


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no developer's .env; .data/ made here
    for name in [name for name in os.environ if name.startswith("COLLECTIONS_")]:
        monkeypatch.delenv(name)


def test_aliyun_through_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTIONS_SMS_PROVIDER", "aliyun")
    settings, api_settings, sandbox = stack_settings()

    assert settings.sms_provider == "aliyun"
    assert settings.aliyun_endpoint == f"127.0.0.1:{sandbox.port}" and settings.aliyun_protocol == "http"
    assert settings.aliyun_access_key_id == sandbox.aliyun_access_key_id == "sandbox-aliyun-key"
    assert settings.aliyun_access_key_secret == sandbox.aliyun_access_key_secret
    assert settings.registered_templates_file == REGISTERED_DEMO_FILE
    assert sandbox.registered_templates_file == REGISTERED_DEMO_FILE
    assert settings.sms_callback_secret is not None
    secret = settings.sms_callback_secret.get_secret_value()
    assert sandbox.push_format == "aliyun"
    assert sandbox.callback_base_url == f"http://127.0.0.1:{api_settings.api_port}/callbacks/aliyun/{secret}"
    # The same secret at the next start, kept in the data folder for its owner only.
    kept = tmp_path / CALLBACK_SECRET_FILE
    assert kept.read_text() == secret and stat.S_IMODE(kept.stat().st_mode) == 0o600
    again, _, _ = stack_settings()
    assert again.sms_callback_secret == settings.sms_callback_secret
    # The worker's start-up check passes on make run's settings.
    assert isinstance(checked_composer(settings), RegisteredComposer)


def test_tencent_through_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTIONS_SMS_PROVIDER", "tencent")
    settings, api_settings, sandbox = stack_settings()

    assert settings.tencent_endpoint == f"127.0.0.1:{sandbox.port}" and settings.tencent_protocol == "http"
    assert settings.tencent_secret_id == sandbox.tencent_secret_id == "sandbox-tencent-id"
    assert settings.tencent_secret_key == sandbox.tencent_secret_key
    assert settings.tencent_sms_app_id == sandbox.tencent_sms_app_id
    assert settings.aliyun_endpoint == "dysmsapi.aliyuncs.com", "the other provider's settings untouched"
    assert sandbox.push_format == "tencent"
    assert settings.sms_callback_secret is not None
    assert sandbox.callback_base_url == (
        f"http://127.0.0.1:{api_settings.api_port}/callbacks/tencent/"
        f"{settings.sms_callback_secret.get_secret_value()}"
    )
    assert isinstance(checked_composer(settings), RegisteredComposer)


def test_a_lenders_own_file_and_secret_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "ours.json"
    own.write_text(REGISTERED_DEMO_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("COLLECTIONS_SMS_PROVIDER", "tencent")
    monkeypatch.setenv("COLLECTIONS_REGISTERED_TEMPLATES_FILE", str(own))
    monkeypatch.setenv("COLLECTIONS_SMS_CALLBACK_SECRET", "our-callback-secret")
    monkeypatch.setenv("COLLECTIONS_API_PORT", "8100")
    settings, api_settings, sandbox = stack_settings()

    assert settings.registered_templates_file == own and sandbox.registered_templates_file == own
    assert settings.sms_callback_secret == SecretStr("our-callback-secret")
    assert api_settings.api_port == 8100
    assert sandbox.callback_base_url == "http://127.0.0.1:8100/callbacks/tencent/our-callback-secret"
    assert not (tmp_path / CALLBACK_SECRET_FILE).exists()


def test_without_a_provider_the_sandbox_is_the_webhook_gateway(tmp_path: Path) -> None:
    settings, _, sandbox = stack_settings()

    assert settings.sms_provider == "webhook"
    assert settings.sms_webhook_url == f"http://{sandbox.host}:{sandbox.port}/sms"
    assert settings.registered_templates_file is None and settings.sms_callback_secret is None
    assert sandbox.push_format == "kindly" and sandbox.callback_base_url is None
    assert not (tmp_path / CALLBACK_SECRET_FILE).exists()
