"""Databases for the store's tests, on both backends Kindly supports: a fresh SQLite file, or a fresh
database on the session's PostgreSQL cluster (``tests.postgres``). A test module that uses
``database_url`` imports ``postgres_url`` beside it, so the cluster's fixture is visible there."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, make_url

T = TypeVar("T")

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a new SQLite file, or a new database on the session's cluster."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kindly.db'}"
        return
    server: str = request.getfixturevalue("postgres_url")
    with fresh_postgres_database(server) as url:
        yield url


@pytest.fixture
def postgres_database_url(postgres_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (for tests of PostgreSQL-only behaviour)."""
    with fresh_postgres_database(postgres_url) as url:
        yield url


@contextlib.contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """A new database on the cluster for the block, dropped after it (with its connections)."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"kindly_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def at_once(count: int, action: Callable[[], T]) -> list[T]:
    """Run ``action`` in ``count`` threads released together by a barrier; their results in order."""
    barrier = threading.Barrier(count)

    def run() -> T:
        barrier.wait(timeout=30)
        return action()

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(run) for _ in range(count)]
        return [future.result(timeout=60) for future in futures]


def upgrade_in_process(url: str, barrier: Any, results: Any) -> None:
    """A process starting against ``url`` (``make_engine`` migrates), released with the others by
    ``barrier``; puts the revision it ends at, or its error, on ``results``."""
    from kindly.store import current_revision, make_engine

    barrier.wait(timeout=120)
    try:
        engine = make_engine(url)
        results.put(current_revision(engine))
        engine.dispose()
    except BaseException as error:
        results.put(repr(error))
