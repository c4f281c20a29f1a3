"""``OverdueAccountWorkflow``: one durable workflow per overdue account, for weeks or months.

It decides *what* and *when* and never does I/O: the contact policy (``kindly.domain.policy.schedule``)
says what comes next, a timer waits for it, and one activity acts and writes its own audit rows.
Signals change the state through pure functions (``kindly.domain.effects``) and wake the loop, which
plans again; a signal that makes an action in flight unwanted cancels it. Every decision lands in the
timeline query and, through the next activity or one local activity, in the audit log
(``workflows.audit_trail``).
"""

# No ``from __future__ import annotations`` here: the SDK's decorators read each handler's type hints,
# which string annotations would make it evaluate (``typing.get_type_hints``) for every instance.

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

# Passed through: modules without workflow state, which the sandbox need not re-import per instance.
with workflow.unsafe.imports_passed_through():
    from activities.handoffs import HandoffActivities
    from activities.inputs import PrepareAccountInput, ResolvePolicyInput, RunIdentity
    from activities.messaging import MessagingActivities
    from activities.records import RecordActivities
    from kindly.domain import actions, completions, contract
    from kindly.domain.complaint_effects import deadlines_passed
    from kindly.domain.completions import SmsAction
    from kindly.domain.contract import (
        WORKFLOW_TYPE,
        AccountInput,
        AccountResult,
        SignalName,
        TimelineKind,
    )
    from kindly.domain.effects import ActionKind, CancelReason, Effect, apply_signal, cancels
    from kindly.domain.policy.schedule import Step, StepKind, local_date, owed_confirmation, plan_next
    from kindly.domain.refusals import Refusal, parsed, refusal
    from kindly.domain.search_attributes import Published, changed, published_by_start
    from kindly.domain.state import AccountState, current_stage, published_values, start_entries
    from kindly.domain.status import account_status
    from kindly.domain.summaries import describe_position
    from workflows import requests
    from workflows.arguments import history_is_long, parsed_or_none, unpacked, validated
    from workflows.audit_trail import AuditTrail
    from workflows.handlers import AccountHandlers, refused
    from workflows.metrics import WorkflowMetrics
    from workflows.requests import ACTION_OPTIONS, LOCAL, SMS_TASK_QUEUE_SUFFIX
    from workflows.rules import RunRules, rules_of_this_run

CONFIRMATION_TRIES = 7
"""Windows an ended account tries its owed opt-out confirmation in before it completes without it."""
_Result = TypeVar("_Result")


@workflow.defn(name=WORKFLOW_TYPE)
class OverdueAccountWorkflow(AccountHandlers):
    @workflow.init
    def __init__(self, *args: Any) -> None:
        """Sees the input first, so that ``status`` answers while a new account is being prepared."""
        self._account_at_start = parsed_or_none(args[0]) if args else None
        self._state: AccountState | None = None
        self._buffered: list[tuple[SignalName, Any]] = []
        self._woken = False
        self._stale: list[CancelReason] = []  # why signals may have made the action in flight unwanted
        self._published: Published = published_by_start(workflow.info().typed_search_attributes)
        self._phone_changed = False
        self._opt_out_to_store = False
        self._complaints_changed = False
        self._policy_refresh: contract.RefreshPolicy | None = None
        info = workflow.info()
        self._trail = AuditTrail(
            RunIdentity(workflow_id=info.workflow_id, first_run_id=info.first_execution_run_id)
        )
        self._metrics = WorkflowMetrics()
        self._rules = RunRules()

    @workflow.run
    async def run(self, *args: Any) -> AccountResult:
        """``run(account)`` for a new account, ``run(account, state)`` after continue-as-new. Both arrive
        as raw JSON and are checked here: a bad one fails the workflow at once, naming the field."""
        self._rules = rules_of_this_run()
        account, carried_state = unpacked(args)
        if carried_state is not None:
            self._state = validated(AccountState, carried_state, "carried state")
        else:
            self._state = await self._prepare(validated(AccountInput, account, "account input"))
        for name, payload in self._buffered:
            self._receive(name, payload)
        self._buffered.clear()

        while self.state.outcome is None:
            if self._policy_refresh is not None:
                await self._refresh_policy()
            if history_is_long(workflow.info(), self.state.policy) and workflow.all_handlers_finished():
                self._record(TimelineKind.CONTINUED_AS_NEW, "history grew long; state carried over")
                await self._persist_changes()
                workflow.continue_as_new(
                    args=[self.state.account.model_dump(mode="json"), self.state.model_dump(mode="json")]
                )
            step = plan_next(self.state, workflow.now(), spread=True, same_day=self._rules.v1_1)
            self._note_plan(step)
            self._publish(step)
            if (
                self._woken
                or self._complaints_changed
                or AuditTrail.would_lag(self.state, step.at, workflow.now())
            ):
                self._woken = False
                await self._persist_changes()
            if await self._sleep_until(step):
                await self._execute(step)

        await self._confirm_opt_out_after_end()
        self._publish(Step(kind=StepKind.IDLE))
        workflow.set_current_details(f"Ended: {self.state.outcome}.")
        await self._persist_changes()
        return AccountResult(outcome=self.state.outcome, amount_collected=self.state.amount_collected)

    async def _prepare(self, account: AccountInput) -> AccountState:
        """One local activity gets a new run's policy, arm, phone index and opt-out, and audits its start."""
        now = workflow.now()
        prepared = await workflow.execute_local_activity_method(
            RecordActivities.prepare_account,
            PrepareAccountInput(account=account, run=self._trail.run, at=now),
            start_to_close_timeout=LOCAL,
        )
        opted_out, experiment = prepared.opted_out, prepared.experiment
        state = actions.new_account(account, prepared.policy, now, opted_out=opted_out, experiment=experiment)
        for kind, detail in start_entries(account, opted_out=opted_out, experiment=experiment):
            self._trail.record(state, kind, detail, now, audited=True)
        return state

    async def _confirm_opt_out_after_end(self) -> None:
        """Send the opt-out confirmation an ended account still owes (a payment or settlement came while
        it waited or retried), at the service window's next moment; a few windows' tries at most."""
        for _ in range(CONFIRMATION_TRIES):
            step = owed_confirmation(self.state, workflow.now(), same_day=self._rules.v1_1)
            if step is None or step.at is None:
                return
            self._note_plan(step)
            workflow.set_current_details("Ended; the opt-out confirmation is still owed.")
            if step.at > workflow.now():
                await workflow.sleep(step.at - workflow.now(), summary="opt-out confirmation")
            await self._send_sms(step)

    async def _refresh_policy(self) -> None:
        """Re-resolve the segment's policy (a local activity, so replay sees the same answer)."""
        request, self._policy_refresh = self._policy_refresh, None
        assert request is not None
        policy = await workflow.execute_local_activity_method(
            RecordActivities.resolve_policy,
            ResolvePolicyInput(segment=self.state.account.segment, experiment=self.state.experiment),
            start_to_close_timeout=LOCAL,
        )
        self._take(actions.policy_reloaded(self.state, policy, request))

    async def _sleep_until(self, step: Step) -> bool:
        """Wait for the step's moment; False when a signal (or the end) came first."""

        def interrupted() -> bool:
            return self._woken or self.state.outcome is not None

        if step.at is None:
            await workflow.wait_condition(interrupted)
            return False
        delay = step.at - workflow.now()
        if delay > timedelta(0):
            try:
                summary = f"next: {step.kind} {step.touch_key}"
                await workflow.wait_condition(interrupted, timeout=delay, timeout_summary=summary)
                return False
            except TimeoutError:
                pass
        return not interrupted()

    @property
    def state(self) -> AccountState:
        assert self._state is not None, "state is set before any handler runs"
        return self._state

    def _note_plan(self, step: Step) -> None:
        if step.plan_key != self.state.last_plan_key and (step.at is not None or step.waiting_for):
            for deferral in step.deferrals:
                self._metrics.deferral(deferral.reason)
        self._take(actions.plan_noted(self.state, step, workflow.now()))
        self._take(actions.shadow_plan_noted(self.state, workflow.now(), same_day=self._rules.v1_1))

    def _publish(self, step: Step) -> None:
        """Keep search attributes and current details true, upserting only the values that changed, and
        not before an action due at once: the plan after it publishes, seconds later, one upsert not two."""
        today = local_date(self.state, workflow.now())
        wanted = published_values(self.state, today, step.at, with_zone=self._rules.v1_1)
        updates = changed(self._published, wanted)
        due_now = step.at is not None and step.at <= workflow.now() and self.state.outcome is None
        if updates and not due_now:
            workflow.upsert_search_attributes(updates)
            self._published = {**self._published, **wanted}
        if self.state.outcome is None:
            stage = current_stage(self.state, today)
            workflow.set_current_details(describe_position(self.state, step, stage))

    # --- acting ------------------------------------------------------------------------------

    async def _execute(self, step: Step) -> None:
        if step.kind in (StepKind.SMS, StepKind.SERVICE_SMS):
            await self._send_sms(step)
        elif step.kind in (StepKind.CALL, StepKind.SPECIALIST):
            await self._hand_off(step)
        elif step.kind is StepKind.RESUME:
            self._take(actions.pause_ended(self.state, hand_back_from_specialists=self._rules.v1_2))
        elif step.kind is StepKind.PLAN_BROKEN:
            self._take(actions.plan_broken(self.state))
        elif step.kind is StepKind.COMPLAINT_DEADLINE:
            self._take(deadlines_passed(self.state, workflow.now()))

    def _key(self, touchpoint: int) -> str:
        return requests.idempotency_key(self._trail.run, touchpoint)

    async def _until_done_or_unwanted(
        self,
        handle: workflow.ActivityHandle[_Result],
        action: ActionKind,
        template: contract.TemplateName | None = None,
    ) -> _Result | CancelReason:
        """The activity's result, or why it was cancelled: a signal that makes it unwanted
        (``kindly.domain.effects.cancels``) cancels it. During backoff that ends it at once; an attempt
        on the wire finishes its request, and if the other side took it, the result counts."""
        self._stale = []

        def unwanted() -> CancelReason | None:
            return next((reason for reason in self._stale if cancels(action, template, reason)), None)

        await workflow.wait_condition(lambda: handle.done() or unwanted() is not None)
        reason = None if handle.done() else unwanted()
        if reason is not None:
            handle.cancel()
        try:
            return await handle
        except ActivityError:
            if reason is None:
                raise
            return reason

    async def _send_sms(self, step: Step) -> None:
        now = workflow.now()
        started, action = actions.sms_started(self.state, step, now)
        self._take(started)
        decisions = self._trail.pending(self.state)
        window_left = (step.not_after or now + timedelta(hours=1)) - now
        handle = workflow.start_activity_method(
            MessagingActivities.send_sms,
            requests.sms(self.state, step, action, self._key(action.touchpoint), decisions, now),
            task_queue=workflow.info().task_queue + SMS_TASK_QUEUE_SUFFIX,
            schedule_to_close_timeout=max(window_left, timedelta(seconds=1)),
            summary=f"SMS {action.template} touchpoint {action.touchpoint}",
            **ACTION_OPTIONS,
        )
        try:
            result = await self._until_done_or_unwanted(handle, action.kind, action.template)
        except ActivityError as err:
            # The gateway did not take it before the window closed (Temporal stops retrying once the
            # next backoff would pass the window's end): it waits for the next window.
            self._metrics.sms(action.template, "not_accepted")
            self._take(completions.sms_not_accepted(self.state, action, step.not_after, str(err.cause)))
            return
        if isinstance(result, CancelReason):
            await self._cancel_sms(action, result)
            return
        AuditTrail.written(self.state, decisions)
        self._metrics.sms(action.template, result.status)
        today = local_date(self.state, now)
        self._take(
            completions.sms_result(
                self.state, action, result, today=today, not_after=step.not_after, now=workflow.now()
            )
        )

    async def _cancel_sms(self, action: SmsAction, reason: CancelReason) -> None:
        """Close the cancelled touchpoint's outbox row as ``cancelled`` with its reason. Should the row
        say the message went out after all (an attempt that committed, then timed out), it counts."""
        self._take(completions.sms_cancelled(self.state, action, reason))
        decisions = self._trail.pending(self.state)
        status = await workflow.execute_local_activity_method(
            RecordActivities.cancel_send,
            requests.sms_cancellation(self.state, action, reason, self._key(action.touchpoint), decisions),
            start_to_close_timeout=LOCAL,
        )
        AuditTrail.written(self.state, decisions)
        self._metrics.sms(action.template, status)
        if status in ("sent", "rejected", "unknown"):
            detail = f"{status} before the cancellation took effect"
            today = local_date(self.state, workflow.now())
            self._take(
                completions.sms_finished(self.state, action, status, segments=0, detail=detail, today=today)
            )

    async def _hand_off(self, step: Step) -> None:
        """A call task for the phone team, or the hand-off to the specialists."""
        handoff, decisions = actions.handoff_started(self.state, step), self._trail.pending(self.state)
        key = self._key(handoff.touchpoint)
        if handoff.kind is ActionKind.CALL_TASK:
            handle = workflow.start_activity_method(
                HandoffActivities.create_call_task,
                requests.call_task(self.state, step, handoff, key, decisions, with_facts=self._rules.v1_2),
                summary=handoff.what,
                **ACTION_OPTIONS,
            )
        else:
            handle = workflow.start_activity_method(
                HandoffActivities.hand_off_to_specialist,
                requests.specialist_handoff(self.state, handoff, key, decisions, with_facts=self._rules.v1_2),
                summary=handoff.what,
                **ACTION_OPTIONS,
            )
        result = await self._until_done_or_unwanted(handle, handoff.kind)
        if isinstance(result, CancelReason):
            what, touchpoint = handoff.what, handoff.touchpoint
            self._take(
                completions.handoff_cancelled(self.state, what=what, touchpoint=touchpoint, reason=result)
            )
            return
        AuditTrail.written(self.state, decisions)
        self._metrics.escalation("phone" if handoff.kind is ActionKind.CALL_TASK else "specialist")
        self._take(completions.handed_off(self.state, handoff, result.status, result.detail, workflow.now()))

    def _record(self, kind: TimelineKind, detail: str, *, audited: bool = False) -> None:
        self._trail.record(self.state, kind, detail, workflow.now(), audited=audited)

    def _take(self, effect: Effect) -> None:
        """Make an effect's state the account's, record its entries and note what it asks for."""
        self._state = effect.state
        for entry in effect.entries:
            self._record(entry.kind, entry.detail, audited=entry.audited)
        if effect.stale is not None:
            self._stale.append(effect.stale)
        self._opt_out_to_store |= effect.store_opt_out
        self._phone_changed |= effect.phone_changed
        self._complaints_changed |= effect.complaint_changed
        self._metrics.complaints(entry.kind for entry in effect.entries)
        if effect.refresh is not None:
            self._policy_refresh = effect.refresh
        if effect.escalated_to_person:
            self._metrics.escalation("person")

    async def _persist_changes(self) -> None:
        """Write what changed beyond the workflow (phone index, opt-out, audit entries) in one go."""
        decisions, complaints = self._trail.pending(self.state), self._complaints_changed
        if decisions or self._phone_changed or self._opt_out_to_store or complaints:
            changed = (self._phone_changed, self._opt_out_to_store)
            changes = requests.changes(self.state, *changed, decisions, complaints_changed=complaints)
            self._phone_changed = self._opt_out_to_store = self._complaints_changed = False
            await workflow.execute_local_activity_method(
                RecordActivities.record_changes, changes, start_to_close_timeout=LOCAL
            )
            AuditTrail.written(self.state, decisions)

    # --- signals -----------------------------------------------------------------------------

    def _receive(self, name: SignalName, payload: Any) -> None:
        """Apply one signal; a bad one is recorded as rejected and changes nothing."""
        if self._state is None:
            self._buffered.append((name, payload))
        elif self.state.outcome is None:
            rules = self._rules
            now = workflow.now()
            strict, v1_2, v1_3 = rules.v1_1, rules.v1_2, rules.v1_3
            self._take(
                apply_signal(self.state, name, payload, now, strict=strict, rules_1_2=v1_2, rules_1_3=v1_3)
            )
            self._woken = True

    def _refuse(self, name: SignalName, payload: Any) -> None:
        """Raise why the account cannot take the action now (an update's validator): a bad value, or a
        state that forbids it. Before the run has prepared, only the payload can be checked."""
        message = parsed(name, payload)
        if isinstance(message, Refusal):
            raise refused(message)
        now, rules_1_2 = workflow.now(), self._rules.v1_2
        if self._state is not None and (why := refusal(self.state, message, now, rules_1_2=rules_1_2)):
            raise refused(why)

    async def _act(self, name: SignalName, payload: Any) -> contract.AccountStatus:
        """Apply an accepted update, as its signal would be, and answer with the status it leads to."""
        await workflow.wait_condition(lambda: self._state is not None)
        self._refuse(name, payload)  # the run may have prepared, or taken another action, since
        rules = self._rules
        self._take(
            apply_signal(
                self.state, name, payload, workflow.now(), rules_1_2=rules.v1_2, rules_1_3=rules.v1_3
            )
        )
        self._woken = True
        if self._policy_refresh is not None:
            await self._refresh_policy()
        step = plan_next(self.state, now := workflow.now(), spread=True, same_day=self._rules.v1_1)
        return account_status(actions.plan_noted(self.state, step, now).state, now)
