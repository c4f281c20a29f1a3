"""The sandbox's messages, kept in one SQLite file so that they survive a restart.

A person follows an account's conversation over days of ``make run`` sessions; messages that vanished
with each restart would hide what the account was already told. The file holds one table, one row per
message. The standard library's ``sqlite3`` is enough: the sandbox runs in one process, and an ORM
would add nothing to a single table.

Without a path the database lives in memory, for the app's life only: what tests and the bench want.
One connection serves every request, behind a re-entrant lock (callers may hold ``lock`` while they
read ``messages``), so it is safe to use from several threads.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of a file this module created: another number is another program's file."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    direction TEXT NOT NULL CHECK (direction IN ('out', 'in')),
    phone TEXT NOT NULL,
    body TEXT NOT NULL,
    at TEXT NOT NULL,
    template TEXT,
    idempotency_key TEXT UNIQUE,
    account_id TEXT,
    status TEXT NOT NULL,
    error_code TEXT,
    kindly_answer TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_phone ON messages (phone, seq);
"""
_COLUMNS = (
    "seq, direction, phone, body, at, template, idempotency_key, account_id,"
    " status, error_code, kindly_answer"
)
_ID_PREFIX = "SB"


@dataclass(frozen=True)
class StoredMessage:
    """One message as the sandbox keeps it.

    ``status`` is what the sandbox knows of it. A sent message is ``accepted`` until its delivery
    receipt is made, then ``delivered`` or ``failed`` (with the carrier's ``error_code``); a reply
    is ``received``, then ``forwarded`` to Kindly's inbound webhook or ``refused`` / ``unreachable``.
    ``kindly_answer`` is what Kindly said to the receipt or reply (e.g. ``recorded``, ``accepted``).
    """

    id: str
    direction: str  # "out" (to the customer) or "in" (the customer's reply)
    phone: str
    body: str
    at: datetime
    template: str | None = None
    idempotency_key: str | None = None
    account_id: str | None = None
    status: str = "accepted"
    error_code: str | None = None
    kindly_answer: str | None = None


@dataclass(frozen=True)
class Inbox:
    """One phone number's messages in summary: the accounts they were sent for, oldest first."""

    phone: str
    account_ids: list[str]
    messages: int
    last_at: datetime


class Mailbox:
    """Every message the sandbox saw, by phone number, in SQLite at ``path`` (in memory without one)."""

    def __init__(self, path: Path | str | None = None) -> None:
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path), check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        with self.lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if version != SCHEMA_VERSION and (version or tables):
                self._db.close()
                raise ValueError(f"{path} is not an SMS sandbox database (schema version {version})")
            if path is not None:  # a commit per message, without waiting for the disk each time
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self.lock:
            self._db.close()

    def accept(
        self, phone: str, body: str, key: str, template: str | None, account_id: str | None = None
    ) -> tuple[StoredMessage, bool]:
        """Store an outgoing message once per idempotency key; returns it and whether it was new."""
        with self.lock:
            try:
                return self._insert("out", phone, body, "accepted", template, key, account_id), True
            except sqlite3.IntegrityError:  # the key is known (also to another process on the file)
                known = self._db.execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE idempotency_key = ?", (key,)
                ).fetchone()
                return _message(known), False

    def record_reply(self, phone: str, body: str) -> StoredMessage:
        """Store a reply typed as the customer of ``phone``."""
        with self.lock:
            return self._insert("in", phone, body, "received", None, None, None)

    def set_status(self, message_id: str, status: str, error_code: str | None = None) -> None:
        """Record what became of a message: delivered or failed, or where a reply went."""
        with self.lock:
            self._db.execute(
                "UPDATE messages SET status = ?, error_code = ? WHERE seq = ?",
                (status, error_code, _seq(message_id)),
            )

    def set_kindly_answer(self, message_id: str, answer: str, account_id: str | None = None) -> None:
        """Record Kindly's answer to a receipt or reply, and the account it names if the send did not."""
        with self.lock:
            self._db.execute(
                "UPDATE messages SET kindly_answer = ?, account_id = coalesce(account_id, ?) WHERE seq = ?",
                (answer, account_id, _seq(message_id)),
            )

    @property
    def messages(self) -> list[StoredMessage]:
        """Every message, oldest first."""
        with self.lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM messages ORDER BY seq").fetchall()
        return [_message(row) for row in rows]

    def for_phone(self, phone: str) -> list[StoredMessage]:
        """The messages to and from ``phone``, oldest first."""
        with self.lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE phone = ? ORDER BY seq", (phone,)
            ).fetchall()
        return [_message(row) for row in rows]

    def phones(self) -> list[str]:
        return [inbox.phone for inbox in self.inboxes()]

    def inboxes(self) -> list[Inbox]:
        """One inbox per phone number, in number order, with the accounts its messages were for."""
        with self.lock:
            phones = self._db.execute(
                "SELECT phone, count(*), max(at) FROM messages GROUP BY phone ORDER BY phone"
            ).fetchall()
            accounts = self._db.execute(
                "SELECT phone, account_id FROM messages WHERE account_id IS NOT NULL"
                " GROUP BY phone, account_id ORDER BY min(seq)"
            ).fetchall()
        seen: dict[str, list[str]] = {}
        for phone, account_id in accounts:
            seen.setdefault(phone, []).append(account_id)
        return [
            Inbox(phone, seen.get(phone, []), count, datetime.fromisoformat(last_at))
            for phone, count, last_at in phones
        ]

    def _insert(
        self,
        direction: str,
        phone: str,
        body: str,
        status: str,
        template: str | None,
        key: str | None,
        account_id: str | None,
    ) -> StoredMessage:
        at = datetime.now(UTC)
        cursor = self._db.execute(
            "INSERT INTO messages (direction, phone, body, at, template, idempotency_key, account_id, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                direction,
                phone,
                body,
                at.isoformat(timespec="microseconds"),
                template,
                key,
                account_id,
                status,
            ),
        )
        assert cursor.lastrowid is not None
        return StoredMessage(
            id=_message_id(cursor.lastrowid),
            direction=direction,
            phone=phone,
            body=body,
            at=at,
            template=template,
            idempotency_key=key,
            account_id=account_id,
            status=status,
        )


def _message_id(seq: int) -> str:
    return f"{_ID_PREFIX}{seq:06d}"


def _seq(message_id: str) -> int:
    """The row of a message id; an id the sandbox never gave names no row (-1)."""
    digits = message_id.removeprefix(_ID_PREFIX)
    return int(digits) if message_id.startswith(_ID_PREFIX) and digits.isdigit() else -1


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=_message_id(row["seq"]),
        direction=row["direction"],
        phone=row["phone"],
        body=row["body"],
        at=datetime.fromisoformat(row["at"]),
        template=row["template"],
        idempotency_key=row["idempotency_key"],
        account_id=row["account_id"],
        status=row["status"],
        error_code=row["error_code"],
        kindly_answer=row["kindly_answer"],
    )
