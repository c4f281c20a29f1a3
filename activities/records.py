"""Small bookkeeping activities, run as local activities: prepare a new account (policy, phone index,
opt-out, its first audit entries), write what signals changed (complaints among them), close a cancelled
send, resolve a policy."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.audit_rows import decision_rows
from activities.inputs import (
    CancelSendInput,
    PrepareAccountInput,
    PreparedAccount,
    RecordChangesInput,
    ResolvePolicyInput,
)
from kindly.domain.experiments import assign, policy_for_arm
from kindly.domain.policy.model import ContactPolicy, policy_for
from kindly.domain.state import audit_event_key, start_entries
from kindly.store import AuditEntry, AuditStore, ComplaintStore, OutboxEntry, PhoneBook
from kindly.store.experiments import ExperimentStore


class RecordActivities:
    """``phones`` holds the key ring: numbers are indexed and looked up by their keyed hash, and an
    opt-out keeps the number encrypted (``kindly.store.phones``); none is written in clear."""

    def __init__(
        self,
        store: AuditStore,
        phones: PhoneBook,
        policies: dict[str, ContactPolicy],
        experiments: ExperimentStore | None = None,
        *,
        complaints: ComplaintStore,
    ) -> None:
        self._store = store
        self._phones = phones
        self._policies = policies
        self._experiments = experiments
        self._complaints = complaints

    @activity.defn(name="prepare_account")
    async def prepare_account(self, request: PrepareAccountInput) -> PreparedAccount:
        """Everything a new run asks of the world before its first plan, in one local activity: the
        segment's policy, the number in the phone index (so replies reach this account however it was
        started) and whether that number opted out earlier; then the run's first audit entries, so the
        audit log shows the account from its start on, before its first action."""
        account = request.account
        opted_out = await asyncio.to_thread(self._phones.index_account, account.account_id, account.phone)
        policy = policy_for(account.segment, self._policies)
        running = None
        if self._experiments is not None:
            running = await asyncio.to_thread(self._experiments.running_for, account.segment, request.at)
        assignment = None
        if running is not None:
            assignment = assign(running.definition, account.account_id, closed_arms=running.closed_arms)
        if running is not None and assignment is not None:
            policy = policy_for_arm(running.definition, assignment, policy)
        entries = [
            AuditEntry(
                event_key=audit_event_key(request.run.workflow_id, request.run.first_run_id, sequence),
                account_id=account.account_id,
                at=request.at,
                kind=str(kind),
                detail=detail,
            )
            for sequence, (kind, detail) in enumerate(
                start_entries(account, opted_out=opted_out, experiment=assignment), start=1
            )
        ]
        await asyncio.to_thread(self._store.append, entries)
        return PreparedAccount(policy=policy, opted_out=opted_out, experiment=assignment)

    @activity.defn(name="record_changes")
    async def record_changes(self, request: RecordChangesInput) -> None:
        """Write what signals changed beyond the workflow: the account's number in the phone index in
        place of its old one (replies then reach it), an opt-out kept beyond this account (no new
        account texts the number), the complaints that changed (their table follows the workflow, and
        never loses a fact to an older snapshot), and the decisions no action carried (pauses, replies,
        promises). Each write is idempotent, so a retry repeats them harmlessly."""
        if request.phone_changed:
            await asyncio.to_thread(self._phones.replace, request.account_id, request.phone)
        if request.opted_out:
            await asyncio.to_thread(self._phones.record_opt_out, request.phone, request.account_id)
        if request.complaints:
            await asyncio.to_thread(self._complaints.upsert, request.complaints)
        if request.decisions:
            await asyncio.to_thread(self._store.append, decision_rows(request.decisions))

    @activity.defn(name="cancel_send")
    async def cancel_send(self, request: CancelSendInput) -> str:
        """Mark a cancelled SMS touchpoint's outbox row ``cancelled`` with its reason, unless an attempt
        completed it first; returns the row's status, which the workflow believes over its own view."""
        entry = OutboxEntry(
            idempotency_key=request.idempotency_key,
            account_id=request.account_id,
            touchpoint=request.touchpoint,
            channel="sms",
            template=request.template,
        )
        return await asyncio.to_thread(
            self._store.cancel, entry, request.reason, decision_rows(request.decisions)
        )

    @activity.defn(name="resolve_policy")
    async def resolve_policy(self, request: ResolvePolicyInput) -> ContactPolicy:
        """The segment's policy (with the account's arm's overlay, while its experiment is known),
        recorded in history once so later file edits cannot alter replay."""
        policy = policy_for(request.segment, self._policies)
        assignment = request.experiment
        if assignment is None or self._experiments is None:
            return policy
        experiment = await asyncio.to_thread(self._experiments.get, assignment.experiment)
        if experiment is None:
            return policy
        return policy_for_arm(experiment.definition, assignment, policy)
