"""``kindly users add | list``: the console's users. The password is asked twice without echo, or read
from standard input with ``--password-stdin`` (for scripts); it is stored only as an argon2 hash."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from kindly.domain.roles import Role
from kindly.programs.cli_support import EXIT_USAGE, fail, load_settings, out
from kindly.store import make_engine
from kindly.store.users import UserError, UserStore

users = typer.Typer(help="The console's users and their roles.", no_args_is_help=True)


@users.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The login name.")],
    role: Annotated[Role, typer.Option(help="agent, specialist, supervisor, compliance or admin.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a user; exits 2 naming the field when the name is taken or the password too short."""
    settings = load_settings()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        added = UserStore(make_engine(settings.database_url)).add(name, role, password)
    except UserError as error:
        fail(str(error), EXIT_USAGE)
    out.print(f"user {added.name} added as {added.role}", highlight=False)


@users.command("list")
def list_users() -> None:
    """Every user and their role (never a password or its hash)."""
    settings = load_settings()
    table = Table("name", "role")
    for user in UserStore(make_engine(settings.database_url)).all():
        table.add_row(user.name, str(user.role))
    out.print(table)
