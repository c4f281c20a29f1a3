"""``kindly db``: the application database's schema. ``upgrade`` migrates it to the newest revision
(the worker, the API and the CLI's other commands also do so as they start; this is for a deployment
that migrates before it starts them), ``current`` says where it is.

Exit codes as for the other commands: ``1`` when the database cannot be reached, ``2`` when
``COLLECTIONS_DATABASE_URL`` (or another setting) is unusable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from kindly.domain.validation import describe_validation_error
from kindly.settings import Settings
from kindly.store import migrate
from kindly.store.engine import make_engine

EXIT_INCOMPLETE = 1
EXIT_USAGE = 2
URL_SETTING = "COLLECTIONS_DATABASE_URL"

db = typer.Typer(
    name="db",
    help=f"The application database ({URL_SETTING}): its schema's revision, and upgrades.",
    no_args_is_help=True,
)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def _database() -> Iterator[tuple[Engine, str]]:
    """The settings' database (not upgraded) and its URL without the password. A URL that is not one,
    or names a driver that is not installed, exits 2; a database that cannot be reached exits 1."""
    try:
        url = Settings().database_url
    except ValidationError as error:
        _fail(f"settings: {describe_validation_error(error)}", EXIT_USAGE)
    try:
        engine = make_engine(url, upgrade=False)
    except (ArgumentError, ImportError) as error:
        _fail(f"{URL_SETTING} is not a usable database URL: {error}", EXIT_USAGE)
    except (SQLAlchemyError, OSError) as error:
        _fail(f"cannot open the database of {URL_SETTING}: {error}", EXIT_INCOMPLETE)
    name = engine.url.render_as_string(hide_password=True)
    try:
        yield engine, name
    except (SQLAlchemyError, OSError) as error:
        _fail(f"cannot use the database {name} ({URL_SETTING}): {error}", EXIT_INCOMPLETE)
    finally:
        engine.dispose()


def _describe(revision: str | None) -> str:
    if revision is None:
        return "none (an empty database, or one from before migrations)"
    if revision == migrate.head_revision():
        return f"{revision} (the newest)"
    return f"{revision} (this version's newest is {migrate.head_revision()})"


@db.command("upgrade")
def upgrade_command() -> None:
    """Migrate the database to the newest revision (safe while other processes start or run)."""
    with _database() as (engine, name):
        before = migrate.current_revision(engine)
        after = migrate.upgrade(engine)
    out.print(f"database {name}", highlight=False)
    out.print(f"revision before: {_describe(before)}", highlight=False)
    out.print(f"revision after:  {_describe(after)}", highlight=False)


@db.command("current")
def current_command() -> None:
    """Show the database's revision, and whether it is the newest this version knows."""
    with _database() as (engine, name):
        revision = migrate.current_revision(engine)
    out.print(f"database {name}", highlight=False)
    out.print(f"revision: {_describe(revision)}", highlight=False)
