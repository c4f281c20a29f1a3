"""The console's users: a name, a role and an argon2 hash of the password (argon2-cffi), never the password.

Repeated failed logins lock the account for a while: ``MAX_FAILED_LOGINS`` in a row lock it for
``LOCKOUT``, and a good login resets the count. A locked user is refused even with the right password,
so guessing gains nothing while the lock lasts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from kindly.domain.roles import Role

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12
_HASHER = PasswordHasher()


class UserRecord(SQLModel, table=True):
    __tablename__ = "console_user"

    name: str = Field(primary_key=True)
    role: str
    password_hash: str
    created_at: datetime
    failed_logins: int = 0
    locked_until: datetime | None = None


@dataclass(frozen=True)
class User:
    name: str
    role: Role


class UserError(ValueError):
    """A user that cannot be added as asked (the name taken, a weak password); the message names the field."""


class LoginRefused(Exception):
    """Wrong name or password, or locked: the message never says which of name and password was wrong."""


class UserStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, name: str, role: Role, password: str, *, at: datetime | None = None) -> User:
        if (
            not name
            or len(name) > 64
            or not name.replace("-", "").replace("_", "").replace(".", "").isalnum()
        ):
            raise UserError("name: 1-64 letters, digits, '.', '_' or '-'")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
        with Session(self._engine) as session:
            if session.get(UserRecord, name) is not None:
                raise UserError(f"name: a user {name!r} exists already")
            session.add(
                UserRecord(
                    name=name, role=str(role), password_hash=_HASHER.hash(password), created_at=at or _now()
                )
            )
            session.commit()
        return User(name, role)

    def all(self) -> list[User]:
        with Session(self._engine) as session:
            records = session.exec(select(UserRecord).order_by(col(UserRecord.name))).all()
            return [User(record.name, Role(record.role)) for record in records]

    def login(self, name: str, password: str, *, at: datetime | None = None) -> User:
        """The user, when the password is right and the user is not locked; else ``LoginRefused``."""
        now = at or _now()
        with Session(self._engine) as session:
            record = session.get(UserRecord, name)
            if record is None:
                _HASHER.hash(password)  # as slow as a real check: timing does not tell names apart
                raise LoginRefused("wrong name or password")
            locked_until = None if record.locked_until is None else _utc(record.locked_until)
            if locked_until is not None and now < locked_until:
                raise LoginRefused(f"too many failed logins: locked until {locked_until.isoformat()}")
            try:
                _HASHER.verify(record.password_hash, password)
            except (VerificationError, InvalidHashError):
                record.failed_logins += 1
                if record.failed_logins >= MAX_FAILED_LOGINS:
                    record.failed_logins, record.locked_until = 0, now + LOCKOUT
                session.add(record)
                session.commit()
                raise LoginRefused("wrong name or password") from None
            record.failed_logins, record.locked_until = 0, None
            if _HASHER.check_needs_rehash(record.password_hash):
                record.password_hash = _HASHER.hash(password)
            session.add(record)
            session.commit()
            return User(record.name, Role(record.role))


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
