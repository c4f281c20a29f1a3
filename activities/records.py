"""Small bookkeeping activities, run as local activities: prepare a new account (policy, phone index,
opt-out, its first audit entries), write what signals changed, close a cancelled send, resolve a policy."""

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
from kindly.domain.policy.model import ContactPolicy, policy_for
from kindly.domain.state import audit_event_key, start_entries
from kindly.store import AuditEntry, AuditStore, OutboxEntry, PhoneBook


class RecordActivities:
    """``phones`` holds the key ring: numbers are indexed and looked up by their keyed hash, and an
    opt-out keeps the number encrypted (``kindly.store.phones``); none is written in clear."""

    def __init__(self, store: AuditStore, phones: PhoneBook, policies: dict[str, ContactPolicy]) -> None:
        self._store = store
        self._phones = phones
        self._policies = policies

    @activity.defn(name="prepare_account")
    async def prepare_account(self, request: PrepareAccountInput) -> PreparedAccount:
        """Everything a new run asks of the world before its first plan, in one local activity: the
        segment's policy, the number in the phone index (so replies reach this account however it was
        started) and whether that number opted out earlier; then the run's first audit entries, so the
        audit log shows the account from its start on, before its first action."""
        account = request.account
        opted_out = await asyncio.to_thread(self._phones.index_account, account.account_id, account.phone)
        entries = [
            AuditEntry(
                event_key=audit_event_key(request.run.workflow_id, request.run.first_run_id, sequence),
                account_id=account.account_id,
                at=request.at,
                kind=str(kind),
                detail=detail,
            )
            for sequence, (kind, detail) in enumerate(start_entries(account, opted_out=opted_out), start=1)
        ]
        await asyncio.to_thread(self._store.append, entries)
        return PreparedAccount(policy=policy_for(account.segment, self._policies), opted_out=opted_out)

    @activity.defn(name="record_changes")
    async def record_changes(self, request: RecordChangesInput) -> None:
        """Write what signals changed beyond the workflow: the account's number in the phone index in
        place of its old one (replies then reach it), an opt-out kept beyond this account (no new
        account texts the number), and the decisions no action carried (pauses, replies, promises).
        Each write is idempotent, so a retry repeats them harmlessly."""
        if request.phone_changed:
            await asyncio.to_thread(self._phones.replace, request.account_id, request.phone)
        if request.opted_out:
            await asyncio.to_thread(self._phones.record_opt_out, request.phone, request.account_id)
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
        """The segment's policy, recorded in history once so later file edits cannot alter replay."""
        return policy_for(request.segment, self._policies)
