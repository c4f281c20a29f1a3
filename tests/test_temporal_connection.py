"""Connection settings for a remote cluster or Temporal Cloud: TLS and API keys from settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import TLSConfig

from kindly.errors import ConfigurationError
from kindly.programs.temporal import tls_config
from kindly.settings import Settings


def settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[arg-type]


def test_the_dev_server_is_plain() -> None:
    assert tls_config(settings()) is False


def test_an_api_key_alone_means_tls_with_the_system_roots() -> None:
    assert tls_config(settings(temporal_api_key="secret-key")) is True
    assert tls_config(settings(temporal_tls=True)) == TLSConfig()


def test_client_certificates_are_read_from_their_files(tmp_path: Path) -> None:
    cert, key, ca = (tmp_path / name for name in ("client.pem", "client.key", "ca.pem"))
    cert.write_bytes(b"CERT")
    key.write_bytes(b"KEY")
    ca.write_bytes(b"CA")
    config = tls_config(
        settings(
            temporal_tls_client_cert=cert,
            temporal_tls_client_key=key,
            temporal_tls_server_ca=ca,
            temporal_tls_server_name="kindly.a1b2c.tmprl.cloud",
        )
    )
    assert config == TLSConfig(
        client_cert=b"CERT",
        client_private_key=b"KEY",
        server_root_ca_cert=b"CA",
        domain="kindly.a1b2c.tmprl.cloud",
    )


def test_a_certificate_without_its_key_is_refused_by_name(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_bytes(b"CERT")
    with pytest.raises(ConfigurationError, match="temporal_tls_client_key"):
        tls_config(settings(temporal_tls_client_cert=cert))


def test_cloud_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTIONS_TEMPORAL_ADDRESS", "kindly.a1b2c.tmprl.cloud:7233")
    monkeypatch.setenv("COLLECTIONS_TEMPORAL_NAMESPACE", "kindly.a1b2c")
    monkeypatch.setenv("COLLECTIONS_TEMPORAL_API_KEY", "secret-key")
    loaded = Settings(_env_file=None)
    assert loaded.temporal_address == "kindly.a1b2c.tmprl.cloud:7233"
    assert loaded.temporal_api_key is not None and loaded.temporal_api_key.get_secret_value() == "secret-key"
    assert "secret-key" not in repr(loaded), "the key never shows in logs of the settings"
