"""Hand-offs to people: a call task for the phone team, a case for the specialist team.

Both are JSON POSTs with the touchpoint's idempotency key. With no URL configured the hand-off is
logged and audited only, so a small lender can start with an audit-log export.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audit_rows import action_row, decision_rows
from activities.cancellation import announce_attempt, finish_request, raise_if_cancelled
from activities.http import post_json
from activities.inputs import (
    AuditRecord,
    CallTaskInput,
    HandoffResult,
    SpecialistHandoffInput,
)
from kindly.errors import PermanentDeliveryError, TransientDeliveryError
from kindly.store import AuditStore


class HandoffActivities:
    def __init__(
        self,
        client: httpx.AsyncClient,
        store: AuditStore,
        *,
        phone_url: str | None,
        specialist_url: str | None,
    ) -> None:
        self._client = client
        self._store = store
        self._phone_url = phone_url
        self._specialist_url = specialist_url

    @activity.defn(name="create_call_task")
    async def create_call_task(self, request: CallTaskInput) -> HandoffResult:
        payload = {
            "account_id": request.account_id,
            "attempt": request.attempt,
            "phone": request.phone,
            "amount_due": str(request.amount_due),
            "reason": request.reason,
            "idempotency_key": request.idempotency_key,
        }
        return await self._deliver(
            self._phone_url,
            "escalated_phone",
            payload,
            request.idempotency_key,
            request.account_id,
            request.decisions,
            f"call attempt {request.attempt}: {request.reason}",
        )

    @activity.defn(name="hand_off_to_specialist")
    async def hand_off_to_specialist(self, request: SpecialistHandoffInput) -> HandoffResult:
        payload = {
            "account_id": request.account_id,
            "amount_due": str(request.amount_due),
            "reason": request.reason,
            "idempotency_key": request.idempotency_key,
        }
        return await self._deliver(
            self._specialist_url,
            "escalated_specialist",
            payload,
            request.idempotency_key,
            request.account_id,
            request.decisions,
            request.reason,
        )

    async def _deliver(
        self,
        url: str | None,
        kind: str,
        payload: dict[str, Any],
        idempotency_key: str,
        account_id: str,
        decisions: list[AuditRecord],
        detail: str,
    ) -> HandoffResult:
        announce_attempt()
        await asyncio.to_thread(self._store.append, decision_rows(decisions))
        raise_if_cancelled()
        if url is None:
            return await self._record(
                HandoffResult(status="logged", detail="no hand-off URL configured"),
                kind,
                idempotency_key,
                account_id,
                detail,
            )

        async def post_and_record() -> HandoffResult:
            # One step a cancellation does not split: a hand-off the other side took is recorded and
            # reported as accepted.
            await post_json(self._client, url, payload, idempotency_key=idempotency_key)
            return await self._record(
                HandoffResult(status="accepted"), kind, idempotency_key, account_id, detail
            )

        try:
            return await finish_request(post_and_record())
        except PermanentDeliveryError as err:
            rejected = HandoffResult(status="rejected", detail=str(err))
            return await self._record(rejected, kind, idempotency_key, account_id, detail)
        except TransientDeliveryError as err:
            raise ApplicationError(str(err), type="TransientDeliveryError") from err

    async def _record(
        self, result: HandoffResult, kind: str, idempotency_key: str, account_id: str, detail: str
    ) -> HandoffResult:
        activity.logger.info("%s for %s: %s", kind, account_id, result.status)
        row = action_row(
            idempotency_key=idempotency_key,
            account_id=account_id,
            kind=kind,
            detail=f"{detail} ({result.status})",
            outcome=result.status,
        )
        await asyncio.to_thread(self._store.append, [row])
        return result
