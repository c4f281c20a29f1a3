"""A throwaway PostgreSQL cluster for the database tests: ``initdb`` into a temporary folder, ``pg_ctl
start`` on a free port of 127.0.0.1 with its socket in that folder, stopped and removed at the end.

As root (CI, containers) PostgreSQL refuses to run, so the cluster belongs to the ``postgres`` user and
its commands run through ``runuser``. Where the server binaries are missing the tests that need it are
skipped with a note, except under ``CI=true`` (and as root, where ``make postgres`` installs them), where
a missing PostgreSQL is a failure: CI must test both databases.

The cluster runs in a time zone other than UTC on purpose, so that a test notices a timestamp that
depends on the server's time zone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_TIME_ZONE = "Asia/Shanghai"
SUPERUSER = "postgres"
DEBIAN_BIN = Path("/usr/lib/postgresql")


class PostgresUnavailable(Exception):
    """PostgreSQL cannot be started here; the message says why and what to do."""


def server_binaries() -> tuple[Path, Path] | None:
    """``initdb`` and ``pg_ctl`` from ``PATH``, or from Debian's versioned folder (newest first)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb), Path(pg_ctl)
    versions = sorted(
        (folder for folder in DEBIAN_BIN.glob("*/bin") if (folder / "initdb").exists()),
        key=lambda folder: int(folder.parent.name) if folder.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in versions:
        if (folder / "pg_ctl").exists():
            return folder / "initdb", folder / "pg_ctl"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_owner() -> list[str]:
    """The command prefix that runs a server command as the cluster's owner."""
    if os.geteuid() != 0:
        return []
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError as err:
        raise PostgresUnavailable(
            "running as root, but there is no 'postgres' user to own the cluster"
        ) from err
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"]
    raise PostgresUnavailable("running as root, but 'runuser' is missing to start PostgreSQL as 'postgres'")


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """Start a cluster; yields its SQLAlchemy URL (database ``postgres``, superuser, no password)."""
    binaries = server_binaries()
    if binaries is None:
        raise PostgresUnavailable(
            "PostgreSQL's initdb/pg_ctl are not installed: run `make postgres` as root "
            "(apt-get install postgresql), or put them on PATH"
        )
    initdb, pg_ctl = binaries
    prefix = _as_owner()
    # Not under pytest's tmp folder: that one is private to the current user (mode 0700).
    base = Path(tempfile.mkdtemp(prefix="kindly-pg-"))
    data = base / "data"
    log = base / "server.log"
    try:
        if prefix:
            shutil.chown(base, user="postgres", group="postgres")
        init = ["-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"]
        _run([*prefix, str(initdb), *init])
        port = _free_port()
        options = " ".join(
            [
                f"-p {port}",
                f"-k {base}",
                "-c listen_addresses=127.0.0.1",
                f"-c timezone={SERVER_TIME_ZONE}",
                # A throwaway cluster: durability is not needed, speed is.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        _run(
            [*prefix, str(pg_ctl), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"]
        )
        try:
            yield f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/postgres"
        finally:
            _run([*prefix, str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"])
    except subprocess.CalledProcessError as err:
        server_log = log.read_text(errors="replace") if log.exists() else ""
        raise PostgresUnavailable(
            f"{' '.join(err.cmd)} failed ({err.returncode}): {err.stdout}{err.stderr}{server_log}"
        ) from err
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)


def _must_run() -> bool:
    """Whether a missing PostgreSQL fails the run instead of skipping: in CI, and as root."""
    return os.environ.get("CI", "").lower() == "true" or os.geteuid() == 0


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for the session: its SQLAlchemy URL (``postgresql+psycopg``)."""
    try:
        with running_postgres() as url:
            yield url
    except PostgresUnavailable as err:
        if _must_run():
            pytest.fail(f"PostgreSQL is required here (CI or root) but cannot start: {err}", pytrace=False)
        pytest.skip(f"PostgreSQL tests skipped: {err}")
