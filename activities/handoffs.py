"""Hand-offs to people: a call task for the phone team, a case for the specialist team.

With no URL configured they go to the built-in queues the staff console works (``kindly.store.work_queue``,
``kindly.store.cases``), so a lender can start with no system of its own: the task or case is written under
the touchpoint's idempotency key, once however often the activity is retried, the number only encrypted.
With a URL they are JSON POSTs with that key, to the lender's own system. Either way the hand-off is
audited (``escalated_phone``, ``escalated_specialist``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
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
from kindly.store import AuditStore, NewCallTask, NewCase, SpecialistCases, WorkQueue

BUILT_IN = "built-in work queue"
"""The detail of a hand-off the built-in queues took."""


class HandoffActivities:
    def __init__(
        self,
        client: httpx.AsyncClient,
        store: AuditStore,
        *,
        phone_url: str | None,
        specialist_url: str | None,
        work_queue: WorkQueue,
        cases: SpecialistCases,
    ) -> None:
        self._client = client
        self._store = store
        self._phone_url = phone_url
        self._specialist_url = specialist_url
        self._work_queue = work_queue
        self._cases = cases

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
            lambda: self._work_queue.add(new_call_task(request), datetime.now(UTC)),
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
            lambda: self._cases.add(new_case(request), datetime.now(UTC)),
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
        enqueue: Callable[[], object],
    ) -> HandoffResult:
        """POST to ``url``, or without one ``enqueue`` in the built-in queue; then the audit row."""
        announce_attempt()
        await asyncio.to_thread(self._store.append, decision_rows(decisions))
        raise_if_cancelled()

        async def post_and_record() -> HandoffResult:
            # One step a cancellation does not split: a hand-off the other side (or the queue) took is
            # recorded and reported as accepted.
            if url is None:
                await asyncio.to_thread(enqueue)
                accepted = HandoffResult(status="accepted", detail=BUILT_IN)
            else:
                await post_json(self._client, url, payload, idempotency_key=idempotency_key)
                accepted = HandoffResult(status="accepted")
            return await self._record(accepted, kind, idempotency_key, account_id, detail)

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


def new_call_task(request: CallTaskInput) -> NewCallTask:
    """The queue's task for the request; a run that sent no facts leaves them empty."""
    facts = request.facts
    return NewCallTask(
        idempotency_key=request.idempotency_key,
        account_id=request.account_id,
        attempt=request.attempt,
        reason=request.reason,
        amount_due=request.amount_due,
        currency=request.currency,
        phone=request.phone,
        call_back_at=request.call_back_at,
        offered_until=request.offered_until,
        due_date=None if facts is None else facts.due_date,
        timezone=None if facts is None else facts.timezone,
        locale=None if facts is None else facts.locale,
        segment=None if facts is None else facts.segment,
        regime=None if facts is None else facts.regime,
        window_start=None if facts is None else facts.window_start,
        window_end=None if facts is None else facts.window_end,
        promise_broken=None if facts is None else facts.promise_broken,
    )


def new_case(request: SpecialistHandoffInput) -> NewCase:
    """The specialists' case for the request; a run that sent no facts or kind leaves them empty."""
    facts = request.facts
    return NewCase(
        idempotency_key=request.idempotency_key,
        account_id=request.account_id,
        kind=request.case,
        reason=request.reason,
        amount_due=request.amount_due,
        currency=request.currency,
        due_date=None if facts is None else facts.due_date,
        timezone=None if facts is None else facts.timezone,
        locale=None if facts is None else facts.locale,
        segment=None if facts is None else facts.segment,
    )
