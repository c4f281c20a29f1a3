"""Alembic's environment: runs the migrations on the connection ``kindly.store.migrate.upgrade`` hands
over (in its transaction, under the schema lock), or on one to ``sqlalchemy.url`` (a developer's
``command.revision(alembic_config(url=...), autogenerate=True)``). Alembic loads this file itself.

There is no offline (``--sql``) mode: the baseline revision inspects the database to bring one of the
releases before migrations to its schema."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from kindly.store.engine import make_engine
from kindly.store.migrate import comparison_options


def run(connection: Connection) -> None:
    context.configure(connection=connection, **comparison_options())
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        raise SystemExit("Kindly's migrations run against a database only (no --sql)")
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise SystemExit("no database: give alembic_config a connection or a url (kindly.store.migrate)")
    engine = make_engine(url, upgrade=False)
    try:
        with engine.begin() as connection:
            run(connection)
    finally:
        engine.dispose()


main()
