"""Small bookkeeping activities, run as local activities: prepare a new account (policy, phone index,
opt-out), audit decisions, index a phone, resolve a policy."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.audit_rows import decision_rows
from activities.inputs import (
    CancelSendInput,
    IndexPhoneInput,
    IndexPhoneResult,
    PrepareAccountInput,
    PreparedAccount,
    RecordDecisionsInput,
    RecordOptOutInput,
    ResolvePolicyInput,
)
from kindly.domain.policy.model import ContactPolicy, policy_for
from kindly.store.contacts import PhoneIndex
from kindly.store.db import AuditStore, OutboxEntry


class RecordActivities:
    """``phones`` holds the key ring: numbers are indexed and looked up by their keyed hash, and an
    opt-out keeps the number encrypted (``kindly.store.contacts``); none is written in clear."""

    def __init__(self, store: AuditStore, phones: PhoneIndex, policies: dict[str, ContactPolicy]) -> None:
        self._store = store
        self._phones = phones
        self._policies = policies

    @activity.defn(name="prepare_account")
    async def prepare_account(self, request: PrepareAccountInput) -> PreparedAccount:
        """Everything a new run asks of the world before its first plan, in one local activity and
        one transaction: the segment's policy, the number in the phone index (so replies reach this
        account however it was started) and whether that number opted out earlier."""
        opted_out = await asyncio.to_thread(self._phones.index_account, request.account_id, request.phone)
        return PreparedAccount(policy=policy_for(request.segment, self._policies), opted_out=opted_out)

    @activity.defn(name="index_phone")
    async def index_phone(self, request: IndexPhoneInput) -> IndexPhoneResult:
        """Map the account's number to it, so inbound replies reach this account however it started;
        and say whether the number opted out earlier, so no new workflow texts it again. (Runs that
        began before ``prepare_account`` existed, and a changed number, come here.)"""
        await asyncio.to_thread(self._phones.replace, request.account_id, request.phone)
        opted_out = await asyncio.to_thread(self._phones.is_opted_out, request.phone)
        return IndexPhoneResult(opted_out=opted_out)

    @activity.defn(name="record_opt_out")
    async def record_opt_out(self, request: RecordOptOutInput) -> None:
        """Store the opt-out beyond this workflow."""
        await asyncio.to_thread(self._phones.record_opt_out, request.phone, request.account_id)

    @activity.defn(name="record_decisions")
    async def record_decisions(self, request: RecordDecisionsInput) -> int:
        """Write decisions no action carried (pauses, replies, promises) to the audit log."""
        return await asyncio.to_thread(self._store.append, decision_rows(request.records))

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
