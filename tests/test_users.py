"""The console's users: argon2 hashes only, a lock after repeated failed logins, roles that decide what
each may do, and ``kindly users`` on the command line; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from kindly.domain.roles import PERMISSIONS, Permission, Role, may
from kindly.programs.cli import app
from kindly.store.users import LOCKOUT, MAX_FAILED_LOGINS, LoginRefused, UserError, UserStore
from tests.databases import database_url  # noqa: F401  (SQLite and PostgreSQL, a fixture)
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)
from tests.test_database import engine  # noqa: F401  (a migrated database, a fixture)

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


def test_only_an_argon2_hash_is_stored_and_a_good_password_logs_in(engine: Engine) -> None:  # noqa: F811
    users = UserStore(engine)
    users.add("li.na", Role.AGENT, PASSWORD, at=NOW)
    with engine.connect() as connection:
        [stored] = connection.execute(text("SELECT password_hash FROM console_user")).scalars()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert users.login("li.na", PASSWORD, at=NOW).role is Role.AGENT
    with pytest.raises(LoginRefused, match="wrong name or password"):
        users.login("li.na", "wrong password!!", at=NOW)
    with pytest.raises(LoginRefused, match="wrong name or password"):
        users.login("nobody", PASSWORD, at=NOW)


def test_repeated_failed_logins_lock_the_user_for_a_while(engine: Engine) -> None:  # noqa: F811
    users = UserStore(engine)
    users.add("wang", Role.SUPERVISOR, PASSWORD)
    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises(LoginRefused):
            users.login("wang", "not the password", at=NOW)
    with pytest.raises(LoginRefused, match="too many failed logins"):
        users.login("wang", PASSWORD, at=NOW + timedelta(minutes=1))
    assert users.login("wang", PASSWORD, at=NOW + LOCKOUT + timedelta(seconds=1)).name == "wang"


def test_a_bad_user_is_refused_naming_the_field(engine: Engine) -> None:  # noqa: F811
    users = UserStore(engine)
    with pytest.raises(UserError, match="password: at least 12 characters"):
        users.add("short", Role.AGENT, "too short")
    with pytest.raises(UserError, match="name:"):
        users.add("has space", Role.AGENT, PASSWORD)
    users.add("chen", Role.AGENT, PASSWORD)
    with pytest.raises(UserError, match="name: a user 'chen' exists already"):
        users.add("chen", Role.ADMIN, PASSWORD)


def test_agents_cannot_settle_or_close_and_compliance_only_reads() -> None:
    assert not may(Role.AGENT, Permission.SETTLE) and not may(Role.AGENT, Permission.CLOSE)
    assert may(Role.AGENT, Permission.CALL_OUTCOME) and may(Role.SUPERVISOR, Permission.SETTLE)
    assert PERMISSIONS[Role.COMPLIANCE] == {Permission.READ}
    assert all(may(role, Permission.READ) for role in Role)


def test_kindly_users_add_and_list(engine: Engine) -> None:  # noqa: F811
    env = {"COLLECTIONS_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    added = CliRunner().invoke(
        app,
        ["users", "add", "zhao", "--role", "compliance", "--password-stdin"],
        input=PASSWORD + "\n",
        env=env,
    )
    assert added.exit_code == 0 and "user zhao added as compliance" in added.output, added.output
    weak = CliRunner().invoke(
        app, ["users", "add", "qian", "--role", "agent", "--password-stdin"], input="short\n", env=env
    )
    assert weak.exit_code == 2 and "password: at least 12 characters" in weak.output
    listed = CliRunner().invoke(app, ["users", "list"], env=env)
    assert listed.exit_code == 0 and "zhao" in listed.output and "compliance" in listed.output
    assert "argon2" not in listed.output and "qian" not in listed.output
