"""Webhook signatures already accepted: a signed request is accepted once, on any number of API
replicas sharing the database, and a signature is kept until a replay of it would fail anyway (its
timestamp too old)."""

from __future__ import annotations

from sqlalchemy import Engine, delete
from sqlmodel import Field, SQLModel, col

from kindly.store.claims import Lease
from kindly.store.clock import unix_now


class SeenSignature(SQLModel, table=True):
    """A webhook signature already accepted, kept until a replay of it would fail anyway."""

    __tablename__ = "webhook_signature"

    digest: str = Field(primary_key=True, max_length=64)
    expires_at: int = Field(index=True)  # unix seconds


# The claim creates the row; its lease is the signature's expiry.
_SIGNATURE_LEASE = Lease(SeenSignature.__table__, "digest", "expires_at")  # type: ignore[attr-defined]


class SignatureLedger:
    """Synchronous access to the signatures already used; the API's webhooks call it from a thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def claim(self, digest: str, expires_at: int) -> bool:
        """Record a signature as used; False when it was used before (a replay).

        The digest is the primary key, so of two concurrent uses exactly one claims it. Expired
        entries are deleted on the way.
        """
        with self._engine.begin() as connection:
            connection.execute(delete(SeenSignature).where(col(SeenSignature.expires_at) < unix_now()))
            return _SIGNATURE_LEASE.claim(connection, digest, expires_at, create={})

    def release(self, digest: str) -> None:
        """The request failed: its sender may retry it with the same signature."""
        with self._engine.begin() as connection:
            _SIGNATURE_LEASE.release(connection, digest)
