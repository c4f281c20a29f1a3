"""The application database's engine: SQLite or PostgreSQL (or any SQLAlchemy URL), upgraded to the
newest schema before it is handed out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import create_engine

from kindly.store import migrate


def make_engine(database_url: str, *, upgrade: bool = True) -> Engine:
    """An engine for SQLite or PostgreSQL (or any SQLAlchemy URL), its database migrated to the newest
    revision (``kindly.store.migrate.upgrade``) unless ``upgrade`` is False.

    SQLite files get their folder and WAL journaling, and may be shared between threads. PostgreSQL
    URLs use psycopg 3 (``postgresql://`` too, which would otherwise mean psycopg2), check pooled
    connections before use (a restarted or failed-over server), and set each session's time zone to
    UTC, so that timestamps read back as written, as on SQLite. Several processes may call this at
    once on the same database (scaled workers): the upgrade is serialised by the schema lock.
    """
    url = make_url(database_url)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    backend = url.get_backend_name()
    if backend == "sqlite":
        in_memory = url.database in (None, "", ":memory:")
        if not in_memory and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        for attempt in range(0 if in_memory else 50):
            # Switching to WAL answers "locked" at once (no busy wait) while another process
            # switches or migrates; WAL is kept in the file, so a retry soon succeeds.
            try:
                with engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA journal_mode=WAL")
                break
            except OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.1)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if backend == "postgresql":

        @event.listens_for(engine, "connect")
        def session_in_utc(dbapi_connection: Any, _: object) -> None:
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'UTC'")
            dbapi_connection.autocommit = autocommit

    if upgrade:
        migrate.upgrade(engine)
    return engine
