"""``AuditTrail``: an account's timeline and the way its entries reach the audit log.

Every decision is recorded twice: in the workflow's timeline (the ``timeline`` query, carried across
continue-as-new) and in the audit log (the database compliance reads). The audit row must not cost a
billed action of its own on the normal path, so entries wait in the state (``events_recorded`` ahead
of ``events_audited``) and ride on the next activity, which writes them in its own transaction. Only
when that activity is far away (a pause, a reply answered days before the next reminder) does a local
activity write them at once, so the audit log never lags the timeline by more than a few minutes.

The class holds no state of its own besides the run's identity: the counters live in
``AccountState``, so they survive continue-as-new with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from activities.inputs import AuditRecord, RunIdentity
from kindly.domain.contract import TimelineEntry, TimelineKind
from kindly.domain.policy.schedule import local_iso
from kindly.domain.state import TIMELINE_LIMIT, AccountState, audit_event_key

PIGGYBACK_WINDOW = timedelta(minutes=5)
"""Pending entries ride on an activity this close; otherwise a local activity writes them now."""


@dataclass(frozen=True)
class AuditTrail:
    run: RunIdentity
    """What makes an entry's audit key the same on every replay and every run of the account."""

    @property
    def workflow_id(self) -> str:
        return self.run.workflow_id

    @property
    def first_run_id(self) -> str:
        return self.run.first_run_id

    def record(
        self, state: AccountState, kind: TimelineKind, detail: str, now: datetime, *, audited: bool = False
    ) -> None:
        """Add an entry to the timeline; ``audited`` when the activity that acted already wrote it
        (it counts as written only if every earlier entry was, so none is ever skipped)."""
        entry = TimelineEntry(at=local_iso(state.account.timezone, now), kind=kind, detail=detail)
        state.timeline = [*state.timeline, entry][-TIMELINE_LIMIT:]
        state.events_recorded += 1
        if audited and state.events_audited == state.events_recorded - 1:
            state.events_audited += 1

    def pending(self, state: AccountState) -> list[AuditRecord]:
        """The entries the audit log does not have yet, under their stable keys."""
        count = state.events_recorded - state.events_audited
        if count <= 0:
            return []
        entries = state.timeline[-count:]
        first = state.events_recorded - len(entries) + 1
        return [
            AuditRecord(
                event_key=audit_event_key(self.run.workflow_id, self.run.first_run_id, first + offset),
                account_id=state.account.account_id,
                at=datetime.fromisoformat(entry.at),
                kind=entry.kind,
                detail=entry.detail,
            )
            for offset, entry in enumerate(entries)
        ]

    @staticmethod
    def written(state: AccountState, records: list[AuditRecord]) -> None:
        """An activity wrote ``records`` (from ``pending``)."""
        state.events_audited += len(records)

    @staticmethod
    def would_lag(state: AccountState, next_action_at: datetime | None, now: datetime) -> bool:
        """Whether pending entries would wait too long for the next action: more than a few minutes."""
        if state.events_recorded == state.events_audited:
            return False
        return next_action_at is None or next_action_at - now > PIGGYBACK_WINDOW
