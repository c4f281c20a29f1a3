"""Preparing new accounts where they are started, so that their runs begin without asking the world.

A new run needs its segment's contact policy, its number in the phone index (so that replies reach
it) and whether that number opted out earlier. A run started bare (``temporal workflow start``, or a
client of an older Kindly) asks for these itself with a local activity, ``prepare_account``, and then
publishes its first search attributes: on Temporal Cloud one billed action for the activity's marker
and one for the upsert, per account.

Kindly's own starters (``kindly import``, ``POST /accounts``, the demo) prepare instead, in bulk: one
database transaction per chunk of accounts, the policy from the same policy file the worker reads, and
the first plan made by the workflow's own code (``plan_next``) so that the account's search attributes
go with its start. The run receives the preparation as its third argument and begins with no local
activity, no version marker and no upsert: its first workflow task only schedules the first step.
The account is findable by stage and segment from the moment it is imported, worker or not.

After the starts, the starter writes each new run's first audit entries (``started``, and
``opted_out``) under the keys the run itself would use (``record_started``, one transaction per
chunk), so the audit log shows the account from its import on; the run writes the same rows with its
first action, which then finds them there. A failed write loses nothing: the run's rows still come.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.common import TypedSearchAttributes

from activities.inputs import PreparedAccount
from kindly.domain.contract import AccountInput, workflow_id_for
from kindly.domain.policy.model import ContactPolicy, load_policies, policy_for
from kindly.domain.policy.registry import PolicyCheck, PolicyRegistry, policy_source
from kindly.domain.policy.schedule import plan_next, zone_date
from kindly.domain.search_attributes import snapshot_attributes
from kindly.domain.state import AccountState, audit_event_key, search_snapshot, start_entries
from kindly.keyring import load_keyring
from kindly.settings import Settings
from kindly.store.contacts import PhoneIndex, create_tables
from kindly.store.db import AuditEntry, AuditStore, make_engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedStart:
    """What a starter gives a new account's run: its preparation and its first search attributes."""

    prepared: PreparedAccount
    argument: dict[str, Any]
    """``prepared`` as the run's JSON argument (built once per policy, shared by its accounts)."""
    search_attributes: TypedSearchAttributes
    replace_number_once_started: bool
    """The account was indexed under another number: replace it only if this start creates a run
    (an open run's number is the workflow's to change)."""


@dataclass(frozen=True)
class NewRun:
    """A run a prepared start created: what its first audit entries are written from."""

    account: AccountInput
    prepared: PreparedAccount
    run_id: str


class AccountPreparer:
    """Prepares accounts before their start (``prepare``) and finishes after it (``started``,
    ``record_started``)."""

    def __init__(
        self,
        phones: PhoneIndex,
        policies: Mapping[str, ContactPolicy],
        *,
        audit: AuditStore | None = None,
        registry: PolicyRegistry | None = None,
        policy_source: str = "this process's settings",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.phones = phones
        self.policies = dict(policies)
        self.audit = audit
        self.registry = registry
        self.policy_source = policy_source
        self._clock = clock
        self._arguments: dict[tuple[int, bool], tuple[PreparedAccount, dict[str, Any]]] = {}
        self._policy_check: tuple[datetime, PolicyCheck] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AccountPreparer:
        """The worker's policy file and database, as a process that starts accounts sees them."""
        engine = make_engine(settings.database_url)
        create_tables(engine)
        policies = load_policies(
            settings.policy_file, continue_as_new_after_events=settings.continue_as_new_after_events
        )
        return cls(
            PhoneIndex(engine, load_keyring(settings)),
            policies,
            audit=AuditStore(engine),
            registry=PolicyRegistry(engine),
            policy_source=policy_source(settings),
        )

    def check_policy(self, *, max_age: timedelta = timedelta(0)) -> PolicyCheck | None:
        """This preparer's policies against the workers' latest (blocking); None without a registry.
        A result younger than ``max_age`` is reused (the API checks before every start)."""
        if self.registry is None:
            return None
        now = self._clock()
        if self._policy_check is not None and now - self._policy_check[0] < max_age:
            return self._policy_check[1]
        check = self.registry.check(self.policies)
        self._policy_check = (now, check)
        return check

    def prepare(self, accounts: Sequence[AccountInput]) -> list[PreparedStart]:
        """One transaction for all of ``accounts`` (blocking: call it from a thread)."""
        found = self.phones.index_new_accounts([(account.account_id, account.phone) for account in accounts])
        now = self._clock()
        return [
            self._prepared(
                account,
                opted_out=account.account_id in found.opted_out,
                elsewhere=account.account_id in found.indexed_elsewhere,
                now=now,
            )
            for account in accounts
        ]

    def started(self, account: AccountInput, start: PreparedStart) -> None:
        """After the start created a run (blocking): index its number where another one was."""
        if start.replace_number_once_started:
            self.phones.replace(account.account_id, account.phone)

    def record_started(self, runs: Sequence[NewRun]) -> int:
        """Write the new runs' first audit entries in one transaction (blocking); how many were new.
        Without an audit store (a preparer built for planning only) nothing is written."""
        if self.audit is None or not runs:
            return 0
        at = self._clock()
        return self.audit.append(
            [
                AuditEntry(
                    event_key=audit_event_key(workflow_id_for(run.account.account_id), run.run_id, sequence),
                    account_id=run.account.account_id,
                    at=at,
                    kind=str(kind),
                    detail=detail,
                )
                for run in runs
                for sequence, (kind, detail) in enumerate(
                    start_entries(run.account, opted_out=run.prepared.opted_out), start=1
                )
            ]
        )

    def _argument(self, policy: ContactPolicy, opted_out: bool) -> tuple[PreparedAccount, dict[str, Any]]:
        """One preparation (and its JSON) per policy and opt-out: a portfolio has few of each."""
        key = (id(policy), opted_out)
        if key not in self._arguments:
            prepared = PreparedAccount(policy=policy, opted_out=opted_out)
            self._arguments[key] = (prepared, prepared.model_dump(mode="json"))
        return self._arguments[key]

    def _prepared(
        self, account: AccountInput, *, opted_out: bool, elsewhere: bool, now: datetime
    ) -> PreparedStart:
        policy = policy_for(account.segment, self.policies)
        today = zone_date(account.timezone, now)
        state = AccountState.for_new_account(account, policy, today, opted_out=opted_out)
        # Runs that start prepared follow every patch, spreading included (``lean-start``).
        step = plan_next(state, now, spread=True)
        prepared, argument = self._argument(policy, opted_out)
        return PreparedStart(
            prepared=prepared,
            argument=argument,
            search_attributes=snapshot_attributes(search_snapshot(state, today, step.at)),
            replace_number_once_started=elsewhere,
        )


async def record_started(preparer: AccountPreparer, runs: Sequence[NewRun]) -> None:
    """``preparer.record_started`` from a thread, best effort: on failure the runs' own first action
    writes the same entries, so it is logged and nothing else."""
    try:
        await asyncio.to_thread(preparer.record_started, runs)
    except Exception:
        log.warning(
            "could not write the first audit entries of %d new run(s); each run writes them with its "
            "first action",
            len(runs),
            exc_info=True,
        )
