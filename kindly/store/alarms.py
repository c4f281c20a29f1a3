"""Provider alarms: the lender's account with the SMS provider cannot send (balance exhausted, signature or
template suspended, credentials refused), and an operator must act.

The SMS activity opens an alarm when the provider refuses the account (``ProviderAccountError``), and
holds every send while one is open for its provider (the circuit in ``activities.messaging``); an
operator clears it (``kindly alarms clear``) once the account is put right, and sending resumes with
each touch's next window.

* **One open alarm per provider and code.** A refusal while the same alarm is open bumps it (``count``,
  ``last_at``, the latest message) instead of opening another: one statement (``INSERT ... ON CONFLICT
  DO UPDATE`` on a unique index over the open alarms), so sends refused at once by the same problem
  leave one alarm whatever their order. A different code is a different problem, with an alarm of its
  own; a cleared alarm stays, with who cleared it and when, and the next refusal opens a new one.
* **No personal data.** The provider's code and message only, and a message never holds a run of
  digits long enough to be a phone number (``safe_message``); nothing names an account or a customer.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Index, Row, Table, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

OPEN_ALARM_INDEX = "ux_provider_alarm_open"
_OPEN_SQL = "cleared_at IS NULL"
MESSAGE_LENGTH = 500
"""The longest message kept: the provider's own words, cut."""
CODE_LENGTH = 100
_PHONE_LIKE = re.compile(r"\+?\d(?:[\s-]?\d){6,}")


class ProviderAlarm(SQLModel, table=True):
    """The lender's account with an SMS provider cannot send: sending through it is held until cleared."""

    __tablename__ = "provider_alarm"
    __table_args__ = (
        Index(
            OPEN_ALARM_INDEX,
            "provider",
            "code",
            unique=True,
            sqlite_where=text(_OPEN_SQL),
            postgresql_where=text(_OPEN_SQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(index=True)
    """The provider's name in Kindly (``aliyun``, ``tencent``, ...): the circuit is per provider."""
    code: str
    """The provider's error code (``isv.AMOUNT_NOT_ENOUGH``, ``FailedOperation.InsufficientBalance``)."""
    message: str
    """The provider's latest message for it, without personal data."""
    first_at: datetime
    last_at: datetime
    count: int = 1
    """Refusals while it was open: the first, and every send refused the same way before the circuit
    held the rest."""
    cleared_at: datetime | None = None
    cleared_by: str | None = None

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None


PROVIDER_ALARM_TABLE: Table = ProviderAlarm.__table__  # type: ignore[attr-defined]
_c = PROVIDER_ALARM_TABLE.c


class AlarmNotFoundError(LookupError):
    """No provider alarm has this id."""


def safe_message(message: str) -> str:
    """The provider's message as an alarm keeps it: one line, at most ``MESSAGE_LENGTH`` characters, and
    every run of seven digits or more (a phone number, whole or in part) masked."""
    line = " ".join(message.split())
    return _PHONE_LIKE.sub("***", line)[:MESSAGE_LENGTH]


def _is_open() -> ColumnElement[bool]:
    return _c.cleared_at.is_(None)


class ProviderAlarms:
    """Open, read and clear provider alarms; blocking, one short transaction each."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def raise_alarm(self, provider: str, code: str, message: str, at: datetime) -> tuple[ProviderAlarm, bool]:
        """Open an alarm for ``provider`` and ``code``, or bump the one open; the alarm, and whether
        this call opened it."""
        row: dict[str, Any] = {
            "provider": provider,
            "code": code[:CODE_LENGTH],
            "message": safe_message(message),
            "first_at": at,
            "last_at": at,
            "count": 1,
        }
        with self._engine.begin() as connection:
            dialect = connection.dialect.name
            if dialect in ("sqlite", "postgresql"):
                dialect_insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
                statement = dialect_insert(PROVIDER_ALARM_TABLE).values(row)
                upsert = statement.on_conflict_do_update(
                    index_elements=["provider", "code"],
                    index_where=_is_open(),
                    set_={
                        "count": _c.count + 1,
                        "last_at": statement.excluded.last_at,
                        "message": statement.excluded.message,
                    },
                )
                found = connection.execute(upsert.returning(*PROVIDER_ALARM_TABLE.c)).one()
            else:  # pragma: no cover - SQLite and PostgreSQL upsert
                found = self._insert_or_bump(connection, row)
        alarm = ProviderAlarm(**found._mapping)
        return alarm, alarm.count == 1

    @staticmethod
    def _insert_or_bump(connection: Connection, row: dict[str, Any]) -> Row[Any]:  # pragma: no cover
        """The portable upsert: insert in a savepoint; an integrity error means the alarm is open (now),
        so bump it."""
        try:
            with connection.begin_nested():
                connection.execute(insert(PROVIDER_ALARM_TABLE).values(row))
        except IntegrityError:
            connection.execute(
                update(PROVIDER_ALARM_TABLE)
                .where(_c.provider == row["provider"], _c.code == row["code"], _is_open())
                .values(count=_c.count + 1, last_at=row["last_at"], message=row["message"])
            )
        opened = select(PROVIDER_ALARM_TABLE).where(
            _c.provider == row["provider"], _c.code == row["code"], _is_open()
        )
        return connection.execute(opened).one()

    def open_alarm(self, provider: str) -> ProviderAlarm | None:
        """The oldest alarm open for ``provider``, if any: while there is one, nothing is sent through it."""
        statement = (
            select(PROVIDER_ALARM_TABLE)
            .where(_c.provider == provider, _is_open())
            .order_by(_c.first_at, _c.id)
            .limit(1)
        )
        with self._engine.connect() as connection:
            found = connection.execute(statement).first()
        return None if found is None else ProviderAlarm(**found._mapping)

    def alarms(self, *, include_cleared: bool = False, limit: int = 100) -> list[ProviderAlarm]:
        """The open alarms (with ``include_cleared``, the cleared ones too), the newest first."""
        statement = select(PROVIDER_ALARM_TABLE)
        if not include_cleared:
            statement = statement.where(_is_open())
        statement = statement.order_by(_c.last_at.desc(), _c.id.desc()).limit(limit)
        with self._engine.connect() as connection:
            return [ProviderAlarm(**row._mapping) for row in connection.execute(statement)]

    def get(self, alarm_id: int) -> ProviderAlarm:
        with self._engine.connect() as connection:
            found = connection.execute(select(PROVIDER_ALARM_TABLE).where(_c.id == alarm_id)).first()
        if found is None:
            raise AlarmNotFoundError(f"no provider alarm {alarm_id}")
        return ProviderAlarm(**found._mapping)

    def clear(self, alarm_id: int, by: str, at: datetime) -> tuple[ProviderAlarm, bool]:
        """Clear an open alarm, recording who and when; the alarm, and whether this call cleared it (an
        alarm cleared before keeps who cleared it then). ``AlarmNotFoundError`` for an unknown id."""
        with self._engine.begin() as connection:
            cleared = connection.execute(
                update(PROVIDER_ALARM_TABLE)
                .where(_c.id == alarm_id, _is_open())
                .values(cleared_at=at, cleared_by=by)
            ).rowcount
        return self.get(alarm_id), cleared == 1
