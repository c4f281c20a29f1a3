"""Which contact policy the workers run, so that a process that starts accounts can check its own.

A starter (``kindly import``, ``POST /accounts``, the demo) prepares each new run with the policy of
the account's segment and hands it to the run with its start. It reads that policy from its own
``COLLECTIONS_POLICY_FILE``: an importer started without the workers' file would put a whole portfolio
on the built-in policy, with nothing to show for it but each run's history. So every worker records
its policies in the application database as it starts (``register``), and starters compare theirs
with the ones the workers registered last (``check``), refusing to start accounts on another policy
and saying which segments and fields differ.

"Last" because during a rolling update workers run both: accounts are started on the new policy once
the first new worker is up. A database in which no worker has registered yet (a first deployment
whose importer runs before the workers) cannot be checked, and ``check`` says so instead of refusing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, update
from sqlmodel import Session, col, select

from kindly.domain.policy.model import ContactPolicy
from kindly.errors import ConfigurationError
from kindly.settings import Settings
from kindly.store.db import WorkerPolicy, insert_ignoring_duplicates

MAX_LISTED_DIFFERENCES = 8
"""How many differences a refusal names; the rest are counted."""

_TABLE: Table = WorkerPolicy.__table__  # type: ignore[attr-defined]

PolicyDocument = dict[str, dict[str, Any]]
"""Policies by segment as JSON values: what a worker registers and what is compared."""


class PolicyMismatchError(ConfigurationError):
    """This process would start accounts on a policy the workers do not run."""


def policy_source(settings: Settings) -> str:
    """Where a process's policies come from, as an operator would set it."""
    if settings.policy_file is None:
        return "the built-in policies (COLLECTIONS_POLICY_FILE unset)"
    return f"COLLECTIONS_POLICY_FILE={settings.policy_file}"


def policy_document(policies: Mapping[str, ContactPolicy]) -> PolicyDocument:
    return {segment: policies[segment].model_dump(mode="json") for segment in sorted(policies)}


def policy_fingerprint(policies: Mapping[str, ContactPolicy]) -> str:
    """A short hash of the policies (sha256 of their canonical JSON), shown to operators."""
    canonical = json.dumps(policy_document(policies), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def policy_differences(here: PolicyDocument, workers: PolicyDocument) -> list[str]:
    """What differs, one line per segment only on one side or per field, in segment order."""
    lines: list[str] = []
    for segment in sorted(set(here) | set(workers)):
        if segment not in workers:
            lines.append(f"segment {segment!r} exists here, not on the workers")
        elif segment not in here:
            lines.append(f"segment {segment!r} exists on the workers, not here")
        else:
            mine, theirs = here[segment], workers[segment]
            for field in sorted(set(mine) | set(theirs)):
                if mine.get(field) != theirs.get(field):
                    lines.append(
                        f"segment {segment!r}: {field} is {json.dumps(mine.get(field))} here, "
                        f"{json.dumps(theirs.get(field))} on the workers"
                    )
    return lines


@dataclass(frozen=True)
class PolicyCheck:
    """The outcome of comparing a starter's policies with the workers' latest."""

    fingerprint: str
    workers: WorkerPolicy | None
    differences: tuple[str, ...]

    @property
    def checked(self) -> bool:
        """False when no worker has registered a policy in this database yet."""
        return self.workers is not None

    @property
    def matches(self) -> bool:
        return self.workers is None or not self.differences

    def describe(self, source: str) -> str:
        """One paragraph for an operator; ``source`` says where this process's policy came from."""
        if self.workers is None:
            return (
                f"no worker has registered its policy in this database yet: the policy from {source} "
                f"(fingerprint {self.fingerprint}) could not be checked against the workers'"
            )
        if not self.differences:
            return f"the policy from {source} is the workers' (fingerprint {self.fingerprint})"
        listed = list(self.differences[:MAX_LISTED_DIFFERENCES])
        if len(self.differences) > MAX_LISTED_DIFFERENCES:
            listed.append(f"and {len(self.differences) - MAX_LISTED_DIFFERENCES} more")
        at = self.workers.last_registered_at
        registered = (
            (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        )
        return (
            f"the policy from {source} (fingerprint {self.fingerprint}) is not the one the workers "
            f"registered last ({self.workers.fingerprint}, at {registered}): " + "; ".join(listed)
        )


class PolicyRegistry:
    """The ``worker_policy`` table: one row per distinct policy a worker has started with."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._engine = engine
        self._clock = clock

    def register(self, policies: Mapping[str, ContactPolicy]) -> str:
        """Record that a worker runs ``policies`` as of now (blocking); returns their fingerprint.

        Workers scaled out start together: the row is inserted unless another got there first (no
        duplicate-key failure), and then its ``last_registered_at`` is moved to now."""
        fingerprint = policy_fingerprint(policies)
        now = self._clock()
        row = {
            "fingerprint": fingerprint,
            "policies": policy_document(policies),
            "first_registered_at": now,
            "last_registered_at": now,
        }
        with self._engine.begin() as connection:
            if not insert_ignoring_duplicates(connection, _TABLE, [row], ("fingerprint",)):
                connection.execute(
                    update(_TABLE).where(_TABLE.c.fingerprint == fingerprint).values(last_registered_at=now)
                )
        return fingerprint

    def latest(self) -> WorkerPolicy | None:
        """The policy a worker registered last, if any."""
        with Session(self._engine) as session:
            statement = select(WorkerPolicy).order_by(col(WorkerPolicy.last_registered_at).desc()).limit(1)
            return session.exec(statement).first()

    def check(self, policies: Mapping[str, ContactPolicy]) -> PolicyCheck:
        """Compare ``policies`` with the workers' latest (blocking)."""
        workers = self.latest()
        differences = (
            () if workers is None else tuple(policy_differences(policy_document(policies), workers.policies))
        )
        return PolicyCheck(policy_fingerprint(policies), workers, differences)
