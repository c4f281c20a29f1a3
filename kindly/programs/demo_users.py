"""Console users for ``make run``'s demo: one per role, made on the first start when the database has no
users at all, each with a random password that is shown once and kept in ``.data/console-logins.txt``
(readable by its owner only), so that the console can be tried without a setup step. A database with any
user is left alone: a real deployment adds its users with ``kindly users add``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import Engine

from kindly.domain.roles import Role
from kindly.store.users import UserStore

DEMO_ROLES = (Role.SUPERVISOR, Role.AGENT, Role.SPECIALIST, Role.COMPLIANCE)


def ensure_demo_users(engine: Engine, logins_file: Path) -> str | None:
    """Make the demo users if there are no users yet; the lines to show (name, role, password), or None
    when users existed already (their logins are in ``logins_file`` from the first start, if it made them)."""
    users = UserStore(engine)
    if users.all():
        return None
    lines = []
    for role in DEMO_ROLES:
        name, password = f"demo-{role}", secrets.token_urlsafe(12)
        users.add(name, role, password)
        lines.append(f"{name:<18} {role:<11} {password}")
    text = "\n".join(lines) + "\n"
    logins_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(logins_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return text
