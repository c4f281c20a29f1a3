"""The account workflow's signal and update handlers, made from the contract's names.

Every operator action is both a signal (fire and forget: the Temporal CLI, the Web UI, webhooks) and an
update (answered: the Kindly CLI and HTTP API). Both go through the same pure effect
(``kindly.domain.effects.apply_signal``); an update's validator first refuses what the account cannot
take (``kindly.domain.refusals``), so a refused update leaves no trace in the history.
"""

# No ``from __future__ import annotations``: the SDK reads the handlers' type hints.

from collections.abc import Callable, Sequence
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from kindly.domain.contract import (
        ACTION_REFUSED,
        AccountStatus,
        QueryName,
        SignalName,
        TimelineEntry,
        TimelineKind,
    )
    from kindly.domain.plans import SelfServiceOffer
    from kindly.domain.refusals import Refusal
    from kindly.domain.self_service import self_service_offer as offer_for
    from kindly.domain.status import account_status, status_before_start


def signal_handler(name: SignalName) -> Callable[[Any, Any], None]:
    """The handler of signal ``name``: one call of the workflow's ``_receive``."""

    def handler(self: Any, payload: Any = None) -> None:
        self._receive(name, payload)

    handler.__name__ = handler.__qualname__ = str(name)
    return workflow.signal(name=name)(handler)


def update_handler(name: SignalName) -> Any:
    """The update ``name``: the workflow's ``_refuse`` validates, its ``_act`` applies and answers."""

    async def handler(self: Any, payload: Any = None) -> AccountStatus:
        status: AccountStatus = await self._act(name, payload)
        return status

    def validator(self: Any, payload: Any = None) -> None:
        self._refuse(name, payload)

    handler.__name__ = handler.__qualname__ = f"{name}_update"
    update = workflow.update(name=str(name))(handler)
    update.validator(validator)
    return update


def refused(refusal: Refusal) -> ApplicationError:
    """The error a refused update fails with: the caller reads the message and, in the details, the
    refusal's kind and field."""
    return ApplicationError(
        str(refusal), str(refusal.kind), refusal.field, type=ACTION_REFUSED, non_retryable=True
    )


class AccountHandlers:
    """The signals and updates of the account workflow, each calling the workflow's ``_receive``
    (signals), ``_refuse`` (update validators) or ``_act`` (updates)."""

    repayment = signal_handler(SignalName.REPAYMENT)
    customer_reply = signal_handler(SignalName.CUSTOMER_REPLY)
    pause = signal_handler(SignalName.PAUSE)
    resume = signal_handler(SignalName.RESUME)
    settle = signal_handler(SignalName.SETTLE)
    close = signal_handler(SignalName.CLOSE)
    promise_to_pay = signal_handler(SignalName.PROMISE_TO_PAY)
    call_outcome = signal_handler(SignalName.CALL_OUTCOME)
    sms_undeliverable = signal_handler(SignalName.SMS_UNDELIVERABLE)
    update_contact = signal_handler(SignalName.UPDATE_CONTACT)
    refresh_policy = signal_handler(SignalName.REFRESH_POLICY)
    self_service = signal_handler(SignalName.SELF_SERVICE)
    open_complaint = signal_handler(SignalName.OPEN_COMPLAINT)
    acknowledge_complaint = signal_handler(SignalName.ACKNOWLEDGE_COMPLAINT)
    resolve_complaint = signal_handler(SignalName.RESOLVE_COMPLAINT)

    # The operator actions as updates, under the same names (``contract.UPDATE_NAMES``).
    repayment_update = update_handler(SignalName.REPAYMENT)
    pause_update = update_handler(SignalName.PAUSE)
    resume_update = update_handler(SignalName.RESUME)
    settle_update = update_handler(SignalName.SETTLE)
    close_update = update_handler(SignalName.CLOSE)
    promise_to_pay_update = update_handler(SignalName.PROMISE_TO_PAY)
    call_outcome_update = update_handler(SignalName.CALL_OUTCOME)
    update_contact_update = update_handler(SignalName.UPDATE_CONTACT)
    refresh_policy_update = update_handler(SignalName.REFRESH_POLICY)
    self_service_update = update_handler(SignalName.SELF_SERVICE)
    open_complaint_update = update_handler(SignalName.OPEN_COMPLAINT)
    acknowledge_complaint_update = update_handler(SignalName.ACKNOWLEDGE_COMPLAINT)
    resolve_complaint_update = update_handler(SignalName.RESOLVE_COMPLAINT)

    @workflow.query(name=QueryName.STATUS)
    def status(self) -> AccountStatus:
        """Where the account stands; before the run has prepared, what its input says."""
        workflow_self: Any = self
        if workflow_self._state is not None:
            status: AccountStatus = account_status(workflow_self._state, workflow.now())
            return status
        if workflow_self._account_at_start is None:
            raise ApplicationError("the account's input is invalid: see the workflow's failure")
        return status_before_start(workflow_self._account_at_start, workflow.now())

    @workflow.query(name=QueryName.TIMELINE)
    def timeline(self) -> list[TimelineEntry]:
        workflow_self: Any = self
        return [] if workflow_self._state is None else list(workflow_self._state.timeline)

    @workflow.query(name=QueryName.SELF_SERVICE)
    def self_service_offer(self) -> SelfServiceOffer:
        """What the customer's page may offer; before the run has prepared, it asks again."""
        workflow_self: Any = self
        if workflow_self._state is None:
            raise ApplicationError("the account is being prepared: ask again in a moment")
        offer: SelfServiceOffer = offer_for(workflow_self.state, workflow.now())
        return offer

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """A misspelt signal name (``--name pasue``) is recorded as rejected, not buffered unseen."""
        workflow_self: Any = self
        if workflow_self._state is not None and workflow_self.state.outcome is None:
            known = ", ".join(SignalName)
            workflow_self._record(
                TimelineKind.SIGNAL_REJECTED, f"unknown signal {name[:64]!r}; known: {known}"
            )
