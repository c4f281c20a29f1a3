"""``OverdueAccountWorkflow``: one durable workflow per overdue account, for weeks or months.

It decides *what* and *when* and never does I/O: the contact policy (``kindly.domain.policy.schedule``)
says what comes next, a timer waits for it, and one activity acts and writes its own audit row.
Signals change the state and wake the loop, which plans again. Every decision lands in the timeline
query and, through the next activity (or one local activity after signals), in the audit log.
"""

# No ``from __future__ import annotations`` here: the sandbox re-executes this module for every workflow
# instance, and the SDK's decorators read each handler's type hints, which string annotations would make
# it evaluate (``typing.get_type_hints``) every time.

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

# Passed through: modules without workflow state, which the sandbox need not re-import per instance.
with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from activities.handoffs import HandoffActivities
    from activities.inputs import (
        AuditRecord,
        CallTaskInput,
        CancelSendInput,
        IndexPhoneInput,
        IndexPhoneResult,
        PrepareAccountInput,
        PreparedAccount,
        RecordDecisionsInput,
        RecordOptOutInput,
        ResolvePolicyInput,
        SendSmsInput,
        SpecialistHandoffInput,
    )
    from activities.messaging import MessagingActivities
    from activities.records import RecordActivities
    from kindly.domain.completions import (
        SmsAction,
        call_task_created,
        handoff_cancelled,
        sms_cancelled,
        sms_finished,
        sms_not_accepted,
        specialist_handed_off,
    )
    from kindly.domain.contract import (
        WORKFLOW_TYPE,
        AccountInput,
        AccountResult,
        AccountStatus,
        QueryName,
        RefreshPolicy,
        SignalName,
        TemplateName,
        TimelineEntry,
        TimelineKind,
    )
    from kindly.domain.effects import (
        ActionKind,
        CancelReason,
        Effect,
        apply_signal,
        cancels,
    )
    from kindly.domain.masking import mask_reference
    from kindly.domain.messages.context import MessageContext
    from kindly.domain.policy.schedule import (
        Step,
        StepKind,
        local_date,
        local_iso,
        owed_confirmation,
        plan_next,
        zone_date,
    )
    from kindly.domain.policy.tones import choose_template
    from kindly.domain.search_attributes import SearchSnapshot, snapshot_of, snapshot_updates
    from kindly.domain.state import (
        TIMELINE_LIMIT,
        AccountState,
        audit_event_key,
        current_stage,
        search_snapshot,
        stage_by_date,
        start_entries,
    )
    from kindly.domain.summaries import describe_position
    from kindly.domain.validation import describe_validation_error
    from workflows.metrics import WorkflowMetrics

# Hand-offs retry without a deadline (an outage of the phone system must not fail the account's
# workflow); SMS retry until their contact window closes (schedule-to-close), then move on.
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
SPREAD_SENDS_PATCH = "spread-sends"
"""Reminders go at the account's moment of the window (``spread_offset``), not all at its opening."""
SMS_TASK_QUEUE_PATCH = "sms-task-queue"
"""SMS sends run on ``<task queue>-sms``, whose Temporal rate limit is the gateway's accepted rate."""
SMS_TASK_QUEUE_SUFFIX = "-sms"
NEXT_WINDOW_PATCH = "next-window-after-gateway-outage"
"""A send the gateway did not take before its window closed waits for the next window (it was planned
again in the same window, with fresh retries, until the window's end)."""
LEAN_START_PATCH = "lean-start"
"""Runs that begin on this code write less history: one local activity prepares a new account
(policy, phone index, opt-out) where two did, and the three patches above are taken as applied
instead of each writing its marker and ``TemporalChangeVersion`` upsert again in every run. Runs that
began earlier keep their old path to their end. A run its starter prepared (``kindly.programs.preparation``,
a third argument) takes the lean path without asking: its input already tells it apart."""
CONFIRM_AFTER_END_PATCH = "confirm-opt-out-after-end"
"""An account that ends while its opt-out confirmation is owed sends it before it completes; runs that
began earlier completed without it."""
CONFIRMATION_TRIES = 7
"""Windows an ended account tries its owed confirmation in before it completes without it."""
CANCEL_UNWANTED_PATCH = "cancel-unwanted-actions"
"""A send or hand-off still retrying is cancelled when a signal makes it unwanted; runs that began
earlier let it finish, as they did."""
_Input = TypeVar("_Input", bound=BaseModel)
_Result = TypeVar("_Result")
AUDIT_PIGGYBACK_WINDOW = timedelta(minutes=5)
"""Pending decisions ride on an activity this close; otherwise a local activity writes them now."""


@workflow.defn(name=WORKFLOW_TYPE)
class OverdueAccountWorkflow:
    @workflow.init
    def __init__(self, *args: Any) -> None:
        """Sees the run's arguments first, so that ``status`` can answer while a new account is still
        being prepared (``kindly status`` right after an import), before its first plan."""
        self._account_at_start = self._quietly_parsed(args[0]) if args else None
        self._state: AccountState | None = None
        self._buffered: list[tuple[SignalName, Any]] = []
        self._woken = False
        self._published: SearchSnapshot | None = None
        self._phone_changed = False
        self._opt_out_to_store = False
        self._metrics = WorkflowMetrics()
        self._policy_refresh: RefreshPolicy | None = None
        self._lean = False
        self._hold_first_publish = False
        self._entries_of_prepared_start = -1
        self._stale: list[CancelReason] = []
        """Why signals since the current action started may have made it unwanted."""

    # --- lifecycle ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, *args: Any) -> AccountResult:
        """``run(account)`` for a new account, ``run(account, None, preparation)`` for one its starter
        prepared (``kindly.programs.preparation``), ``run(account, state)`` after continue-as-new.

        Arguments arrive as raw JSON and are checked here: a wrong count or a bad state fails the
        workflow at once with a non-retryable error instead of failing its task forever.
        """
        if not 1 <= len(args) <= 3:
            raise ApplicationError(
                "expected the account (and, after continue-as-new, its state; or None and its "
                f"preparation); got {len(args)} argument(s)",
                type="InvalidAccountInput",
                non_retryable=True,
            )
        account = args[0]
        carried_state = args[1] if len(args) >= 2 else None
        preparation = args[2] if len(args) == 3 and carried_state is None else None
        # First, before any other command: decided once per run, the same way on every replay. A
        # prepared run is told apart by its input and writes no marker for it.
        self._lean = preparation is not None or workflow.patched(LEAN_START_PATCH)
        if carried_state is not None:
            self._state = self._validated(AccountState, carried_state, "carried state")
        else:
            self._state = await self._start(account, preparation)
        for name, payload in self._buffered:
            self._receive(name, payload)
        self._buffered.clear()

        while self.state.outcome is None:
            if self._policy_refresh is not None:
                await self._refresh_policy(self._policy_refresh)
            if self._history_is_long() and workflow.all_handlers_finished():
                self._record(TimelineKind.CONTINUED_AS_NEW, "history grew long; state carried over")
                await self._persist_changes()
                workflow.continue_as_new(
                    args=[self.state.account.model_dump(mode="json"), self.state.model_dump(mode="json")]
                )
            step = plan_next(self.state, workflow.now(), spread=self._patched(SPREAD_SENDS_PATCH))
            self._note_plan(step)
            self._publish(step, hold=self._hold_first_publish and self._due_now(step))
            self._hold_first_publish = False
            if self._woken:
                self._woken = False
                await self._persist_changes()
            elif self._audit_would_lag(step):
                await self._flush_decisions()
            if await self._sleep_until(step):
                await self._execute(step)

        await self._confirm_opt_out_after_end()
        workflow.set_current_details(f"Ended: {self.state.outcome}.")
        await self._flush_decisions()
        return AccountResult(outcome=self.state.outcome, amount_collected=self.state.amount_collected)

    async def _confirm_opt_out_after_end(self) -> None:
        """Send the opt-out confirmation the account still owes when it ends (a payment, settle or close
        while it waited for its window or retried), at the service window's next moment; a few days'
        tries at most, should the gateway stay down."""
        if owed_confirmation(self.state, workflow.now()) is None:
            return
        if not workflow.patched(CONFIRM_AFTER_END_PATCH):
            return  # runs that began earlier ended without it, as they did
        for _ in range(CONFIRMATION_TRIES):
            step = owed_confirmation(self.state, workflow.now())
            if step is None or step.at is None:
                return
            self._note_plan(step)
            workflow.set_current_details("Ended; the opt-out confirmation is still owed.")
            if step.at > workflow.now():
                await workflow.sleep(step.at - workflow.now(), summary="opt-out confirmation")
            await self._send_sms(step)

    @staticmethod
    def _quietly_parsed(account: Any) -> AccountInput | None:
        """The account input, or None when it is bad (``run`` fails the workflow and says why)."""
        try:
            return AccountInput.model_validate(account)
        except ValidationError:
            return None

    @staticmethod
    def _validated(model: type[_Input], value: Any, what: str) -> _Input:
        """``value`` as ``model``, or a non-retryable failure of the workflow naming the bad field."""
        try:
            return model.model_validate(value)
        except ValidationError as err:
            raise ApplicationError(
                f"invalid {what}: {describe_validation_error(err)}",
                type="InvalidAccountInput",
                non_retryable=True,
            ) from None

    async def _start(self, account: Any, preparation: Any) -> AccountState:
        parsed = self._validated(AccountInput, account, "account input")
        by_starter = preparation is not None
        if by_starter:
            given = self._validated(PreparedAccount, preparation, "preparation")
            policy, opted_out = given.policy, given.opted_out
        elif self._lean:
            prepared = await workflow.execute_local_activity_method(
                RecordActivities.prepare_account,
                PrepareAccountInput(account_id=parsed.account_id, phone=parsed.phone, segment=parsed.segment),
                start_to_close_timeout=timedelta(seconds=30),
            )
            policy, opted_out = prepared.policy, prepared.opted_out
        else:
            policy = await workflow.execute_local_activity_method(
                RecordActivities.resolve_policy,
                ResolvePolicyInput(segment=parsed.segment),
                start_to_close_timeout=timedelta(seconds=30),
            )
            opted_out = (await self._index_phone(parsed.account_id, parsed.phone)).opted_out
        now = workflow.now()
        state = AccountState.for_new_account(parsed, policy, zone_date(parsed.timezone, now), opted_out=False)
        self._state = state
        for kind, detail in start_entries(parsed, opted_out=opted_out):
            self._record(kind, detail)
        state.opted_out = opted_out
        if by_starter:
            # The starter gave the first search attributes with the start: publish only what differs,
            # and not before a first step due at once (its outcome is published right after it).
            self._published = snapshot_of(workflow.info().typed_search_attributes)
            self._hold_first_publish = self._published is not None
            self._entries_of_prepared_start = state.events_recorded
        return state

    async def _refresh_policy(self, request: RefreshPolicy) -> None:
        """Re-resolve the segment's policy (a local activity, so replay sees the same answer)."""
        self._policy_refresh = None
        policy = await workflow.execute_local_activity_method(
            RecordActivities.resolve_policy,
            ResolvePolicyInput(segment=self.state.account.segment),
            start_to_close_timeout=timedelta(seconds=30),
        )
        state = self.state  # as signals during the local activity left it
        old, new = state.policy.model_dump(), policy.model_dump()
        changed = sorted(name for name in new if new[name] != old.get(name))
        state.policy = policy
        why = f" ({request.reason})" if request.reason else ""
        what = ", ".join(changed) if changed else "nothing changed"
        self._record(
            TimelineKind.POLICY_REFRESHED, f"segment {state.account.segment} policy reloaded{why}: {what}"
        )

    def _patched(self, patch_id: str) -> bool:
        """``workflow.patched`` for the patches before ``lean-start``: a lean run has them all."""
        return self._lean or workflow.patched(patch_id)

    def _history_is_long(self) -> bool:
        """Temporal suggests continue-as-new, or the run reached the configured event count."""
        info = workflow.info()
        limit = self.state.policy.continue_as_new_after_events
        return info.is_continue_as_new_suggested() or (
            limit is not None and info.get_current_history_length() >= limit
        )

    async def _sleep_until(self, step: Step) -> bool:
        """Wait for the step's moment; False when a signal (or the end) came first."""
        if step.at is None:
            await workflow.wait_condition(lambda: self._woken or self.state.outcome is not None)
            return False
        delay = step.at - workflow.now()
        if delay > timedelta(0):
            try:
                await workflow.wait_condition(
                    lambda: self._woken or self.state.outcome is not None,
                    timeout=delay,
                    timeout_summary=f"next: {step.kind} {step.touch_key}",
                )
                return False
            except TimeoutError:
                pass
        return self.state.outcome is None and not self._woken

    @property
    def state(self) -> AccountState:
        assert self._state is not None, "state is set before any handler runs"
        return self._state

    # --- planning ----------------------------------------------------------------------------

    def _note_plan(self, step: Step) -> None:
        """Publish the next touchpoint and record deferrals and skips, once per distinct plan."""
        state = self.state
        state.next_touchpoint_at = step.at
        if step.plan_key == state.last_plan_key:
            return
        state.last_plan_key = step.plan_key
        for key, reason in step.superseded:
            if key not in state.done_touches:
                state.done_touches = [*state.done_touches, key]
            self._record(TimelineKind.SKIPPED, f"touch {key} skipped: {reason}")
        if step.deferrals and step.at is not None:
            for deferral in step.deferrals:
                self._metrics.deferral(deferral.reason)
            reasons = ", ".join(f"{d.day.isoformat()} {d.reason}" for d in step.deferrals)
            moved_to = local_iso(state.account.timezone, step.at)
            self._record(
                TimelineKind.DEFERRED,
                f"{step.kind} {step.touch_key} deferred ({reasons}) to {moved_to}",
            )

    def _publish(self, step: Step, *, hold: bool = False) -> None:
        """Keep search attributes and current details true, upserting only when a value changed;
        ``hold`` leaves the attributes as they are until after the step (which is due at once)."""
        state = self.state
        today = local_date(state, workflow.now())
        snapshot: SearchSnapshot = search_snapshot(state, today, step.at)
        if snapshot != self._published and not hold:
            workflow.upsert_search_attributes(snapshot_updates(snapshot))
            self._published = snapshot
        workflow.set_current_details(describe_position(state, step, current_stage(state, today)))

    @staticmethod
    def _due_now(step: Step) -> bool:
        return step.at is not None and step.at <= workflow.now()

    # --- acting ------------------------------------------------------------------------------

    async def _execute(self, step: Step) -> None:
        if step.kind in (StepKind.SMS, StepKind.SERVICE_SMS):
            await self._send_sms(step)
        elif step.kind is StepKind.CALL:
            await self._create_call_task(step)
        elif step.kind is StepKind.SPECIALIST:
            await self._hand_off_to_specialist()
        elif step.kind is StepKind.RESUME:
            self.state.paused = False
            self.state.paused_until = None
            self._record(TimelineKind.RESUMED, "pause ended at its 'until' time; cadence restarts")

    def _sms_task_queue(self) -> str | None:
        """The rate-limited SMS queue beside the workflow's own (None: the workflow's queue, for runs
        that started before it existed)."""
        if not self._patched(SMS_TASK_QUEUE_PATCH):
            return None
        return workflow.info().task_queue + SMS_TASK_QUEUE_SUFFIX

    def _idempotency_key(self, touchpoint: int) -> str:
        info = workflow.info()
        return f"{info.workflow_id}/{info.first_execution_run_id}/tp-{touchpoint}"

    async def _until_done_or_unwanted(
        self, handle: workflow.ActivityHandle[_Result], kind: ActionKind, template: TemplateName | None = None
    ) -> _Result | CancelReason:
        """The activity's result, or why it was cancelled: a signal that makes it unwanted
        (``kindly.domain.effects.cancels``) cancels it through Temporal. A request during backoff ends it at
        once; an attempt in flight hears of it through its heartbeat and finishes its request, and if
        the other side took it the result comes back as if nothing had been asked (it counts)."""
        self._stale = []

        def unwanted() -> CancelReason | None:
            return next((reason for reason in self._stale if cancels(kind, template, reason)), None)

        await workflow.wait_condition(lambda: handle.done() or unwanted() is not None)
        reason = None if handle.done() else unwanted()
        # Asked only when there is something to cancel, so runs without a cancellation carry no marker.
        if reason is not None and workflow.patched(CANCEL_UNWANTED_PATCH):
            handle.cancel()
        else:
            reason = None
        try:
            return await handle
        except ActivityError:
            if reason is None:
                raise
            return reason

    async def _send_sms(self, step: Step) -> None:
        state = self.state
        assert step.template is not None
        now = workflow.now()
        template = step.template
        if step.kind is StepKind.SMS:
            template = choose_template(
                template,
                state.policy,
                days_past_due=max((local_date(state, now) - state.account.due_date).days, 0),
                instalment_offered=state.instalment_offered,
            )
        if step.kind is StepKind.SMS and state.promise_date is not None:
            self._record(
                TimelineKind.PROMISE_BROKEN,
                f"promised payment by {state.promise_date} not received; firmer reminder",
            )
            state.promise_date = None
            state.promise_broken = True
        action = SmsAction(
            kind=ActionKind.REMINDER if step.kind is StepKind.SMS else ActionKind.SERVICE_SMS,
            template=template,
            touchpoint=state.touchpoints + 1,
            touch_key=step.touch_key,
            counts_for_escalation=step.counts_for_escalation,
        )
        decisions = self._pending_decisions()
        window_left = (step.not_after or now + timedelta(hours=1)) - now
        handle = workflow.start_activity_method(
            MessagingActivities.send_sms,
            SendSmsInput(
                account_id=state.account.account_id,
                idempotency_key=self._idempotency_key(action.touchpoint),
                touchpoint=action.touchpoint,
                template=template,
                locale=state.account.locale,
                to=state.account.phone,
                context=self._message_context(now),
                not_after=step.not_after,
                decisions=decisions,
            ),
            task_queue=self._sms_task_queue(),
            start_to_close_timeout=timedelta(seconds=60),
            schedule_to_close_timeout=max(window_left, timedelta(seconds=1)),
            retry_policy=SEND_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"SMS {template} touchpoint {action.touchpoint}",
        )
        try:
            result = await self._until_done_or_unwanted(handle, action.kind, template)
        except ActivityError as err:
            # The gateway did not take the message before the window closed (Temporal stops retrying
            # once the next backoff would pass the window's end): plan it for the next window.
            self._metrics.sms(template, "not_accepted")
            not_after = step.not_after if self._patched(NEXT_WINDOW_PATCH) else None
            self._take(sms_not_accepted(self.state, action, not_after, str(err.cause)))
            return
        if isinstance(result, CancelReason):
            await self._cancel_sms(action, result)
            return
        self.state.events_audited += len(decisions)
        self._metrics.sms(template, result.status)
        self._take(
            sms_finished(
                self.state,
                action,
                result.status,
                segments=result.segments,
                detail=result.detail,
                today=local_date(self.state, now),
            )
        )

    async def _cancel_sms(self, action: SmsAction, reason: CancelReason) -> None:
        """Close the cancelled touchpoint's outbox row as ``cancelled`` with its reason, together with
        the decisions since the last activity. Should the row say the message went out after all (an
        attempt that reached the gateway and committed, then timed out), it counts as sent."""
        state = self.state
        self._take(sms_cancelled(state, action, reason))
        decisions = self._pending_decisions()
        status = await workflow.execute_local_activity_method(
            RecordActivities.cancel_send,
            CancelSendInput(
                idempotency_key=self._idempotency_key(action.touchpoint),
                account_id=state.account.account_id,
                touchpoint=action.touchpoint,
                template=action.template,
                reason=reason,
                decisions=decisions,
            ),
            start_to_close_timeout=timedelta(seconds=30),
        )
        self.state.events_audited += len(decisions)
        self._metrics.sms(action.template, status)
        if status in ("sent", "rejected", "unknown"):
            today = local_date(self.state, workflow.now())
            detail = f"{status} before the cancellation took effect"
            self._take(sms_finished(self.state, action, status, segments=0, detail=detail, today=today))

    async def _create_call_task(self, step: Step) -> None:
        state = self.state
        touchpoint = state.touchpoints + 1
        reason = (
            "customer opted out of SMS"
            if state.opted_out and state.phone_attempt == 0
            else "number cannot receive SMS"
            if state.sms_undeliverable and state.phone_attempt == 0
            else f"{state.unanswered_sms} unanswered SMS"
            if state.phone_attempt == 0
            else f"attempt {state.phone_attempt} got no outcome"
        )
        decisions = self._pending_decisions()
        handle = workflow.start_activity_method(
            HandoffActivities.create_call_task,
            CallTaskInput(
                account_id=state.account.account_id,
                attempt=step.attempt,
                phone=state.account.phone,
                amount_due=state.amount_due,
                currency=state.account.currency,
                reason=reason,
                idempotency_key=self._idempotency_key(touchpoint),
                decisions=decisions,
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SEND_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"call task attempt {step.attempt}",
        )
        result = await self._until_done_or_unwanted(handle, ActionKind.CALL_TASK)
        if isinstance(result, CancelReason):
            what = f"call task attempt {step.attempt}"
            self._take(handoff_cancelled(self.state, what=what, touchpoint=touchpoint, reason=result))
            return
        self.state.events_audited += len(decisions)
        self._metrics.escalation("phone")
        self._take(
            call_task_created(
                self.state,
                attempt=step.attempt,
                touchpoint=touchpoint,
                reason=reason,
                status=result.status,
                detail=result.detail,
                now=workflow.now(),
            )
        )

    async def _hand_off_to_specialist(self) -> None:
        state = self.state
        touchpoint = state.touchpoints + 1
        reason = state.specialist_reason or (
            f"{state.phone_attempt} call attempt(s) without result"
            if state.phone_attempt
            else f"{state.unanswered_sms} unanswered SMS; segment routes to specialists"
        )
        decisions = self._pending_decisions()
        handle = workflow.start_activity_method(
            HandoffActivities.hand_off_to_specialist,
            SpecialistHandoffInput(
                account_id=state.account.account_id,
                amount_due=state.amount_due,
                currency=state.account.currency,
                reason=reason,
                idempotency_key=self._idempotency_key(touchpoint),
                decisions=decisions,
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SEND_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary="specialist hand-off",
        )
        result = await self._until_done_or_unwanted(handle, ActionKind.SPECIALIST)
        if isinstance(result, CancelReason):
            what = "specialist hand-off"
            self._take(handoff_cancelled(self.state, what=what, touchpoint=touchpoint, reason=result))
            return
        self.state.events_audited += len(decisions)
        self._metrics.escalation("specialist")
        self._take(
            specialist_handed_off(self.state, touchpoint=touchpoint, reason=reason, status=result.status)
        )

    def _message_context(self, now: datetime) -> MessageContext:
        state = self.state
        return MessageContext(
            # An ended account owes nothing the messages could ask for (only its opt-out confirmation goes).
            amount_due=state.amount_due if state.outcome is None else Decimal(0),
            currency=state.account.currency,
            due_date=state.account.due_date,
            reference_masked=mask_reference(state.account.account_id),
            days_past_due=max((local_date(state, now) - state.account.due_date).days, 0),
            promise_date=state.promise_date,
        )

    # --- timeline and audit ------------------------------------------------------------------

    def _record(self, kind: TimelineKind, detail: str, *, audited: bool = False) -> None:
        """Add a timeline entry; ``audited`` when the activity that acted already wrote it."""
        state = self.state
        entry = TimelineEntry(at=local_iso(state.account.timezone, workflow.now()), kind=kind, detail=detail)
        state.timeline = [*state.timeline, entry][-TIMELINE_LIMIT:]
        state.events_recorded += 1
        if audited and state.events_audited == state.events_recorded - 1:
            state.events_audited += 1

    def _pending_decisions(self) -> list[AuditRecord]:
        state = self.state
        pending = state.events_recorded - state.events_audited
        if pending <= 0:
            return []
        entries = state.timeline[-pending:]
        first_seq = state.events_recorded - len(entries) + 1
        info = workflow.info()
        return [
            AuditRecord(
                event_key=audit_event_key(info.workflow_id, info.first_execution_run_id, first_seq + i),
                account_id=state.account.account_id,
                at=datetime.fromisoformat(entry.at),
                kind=entry.kind,
                detail=entry.detail,
            )
            for i, entry in enumerate(entries)
        ]

    def _audit_would_lag(self, step: Step) -> bool:
        """Decisions wait for the next activity only when it is minutes away, never for days."""
        state = self.state
        if state.events_recorded == state.events_audited:
            return False
        if state.events_audited == 0 and state.events_recorded == self._entries_of_prepared_start:
            # A prepared run's "started" entries ride on its first action (or its end): its starter
            # wrote them already (``AccountPreparer.record_started``), and a local activity for them
            # alone would cost every such account a billed action.
            return False
        return step.at is None or step.at - workflow.now() > AUDIT_PIGGYBACK_WINDOW

    async def _persist_changes(self) -> None:
        """Write what signals changed beyond the workflow: phone index, opt-out, audit decisions."""
        state = self.state
        if self._phone_changed:
            self._phone_changed = False
            await self._index_phone(state.account.account_id, state.account.phone)
        if self._opt_out_to_store:
            self._opt_out_to_store = False
            await workflow.execute_local_activity_method(
                RecordActivities.record_opt_out,
                RecordOptOutInput(account_id=state.account.account_id, phone=state.account.phone),
                start_to_close_timeout=timedelta(seconds=30),
            )
        await self._flush_decisions()

    async def _index_phone(self, account_id: str, phone: str) -> IndexPhoneResult:
        return await workflow.execute_local_activity_method(
            RecordActivities.index_phone,
            IndexPhoneInput(account_id=account_id, phone=phone),
            start_to_close_timeout=timedelta(seconds=30),
        )

    async def _flush_decisions(self) -> None:
        decisions = self._pending_decisions()
        if not decisions:
            return
        await workflow.execute_local_activity_method(
            RecordActivities.record_decisions,
            RecordDecisionsInput(records=decisions),
            start_to_close_timeout=timedelta(seconds=30),
        )
        self.state.events_audited += len(decisions)

    # --- signals -----------------------------------------------------------------------------

    def _receive(self, name: SignalName, payload: Any) -> None:
        """Apply one signal (``kindly.domain.effects``); a bad one is recorded as rejected and changes
        nothing."""
        if self._state is None:
            self._buffered.append((name, payload))
            return
        if self.state.outcome is not None:
            return
        self._take(apply_signal(self.state, name, payload, workflow.now()))
        self._woken = True

    def _take(self, effect: Effect) -> None:
        """Make an effect's state the account's, record its entries and note what it asks for."""
        self._state = effect.state
        for entry in effect.entries:
            self._record(entry.kind, entry.detail, audited=entry.audited)
        if effect.stale is not None:
            self._stale.append(effect.stale)
        self._opt_out_to_store |= effect.store_opt_out
        self._phone_changed |= effect.phone_changed
        if effect.refresh is not None:
            self._policy_refresh = effect.refresh
        if effect.escalated_to_person:
            self._metrics.escalation("person")

    @workflow.signal(name=SignalName.REPAYMENT)
    def repayment(self, payload: Any = None) -> None:
        self._receive(SignalName.REPAYMENT, payload)

    @workflow.signal(name=SignalName.CUSTOMER_REPLY)
    def customer_reply(self, payload: Any = None) -> None:
        self._receive(SignalName.CUSTOMER_REPLY, payload)

    @workflow.signal(name=SignalName.PAUSE)
    def pause(self, payload: Any = None) -> None:
        self._receive(SignalName.PAUSE, payload)

    @workflow.signal(name=SignalName.RESUME)
    def resume(self, payload: Any = None) -> None:
        self._receive(SignalName.RESUME, payload)

    @workflow.signal(name=SignalName.SETTLE)
    def settle(self, payload: Any = None) -> None:
        self._receive(SignalName.SETTLE, payload)

    @workflow.signal(name=SignalName.CLOSE)
    def close(self, payload: Any = None) -> None:
        self._receive(SignalName.CLOSE, payload)

    @workflow.signal(name=SignalName.PROMISE_TO_PAY)
    def promise_to_pay(self, payload: Any = None) -> None:
        self._receive(SignalName.PROMISE_TO_PAY, payload)

    @workflow.signal(name=SignalName.CALL_OUTCOME)
    def call_outcome(self, payload: Any = None) -> None:
        self._receive(SignalName.CALL_OUTCOME, payload)

    @workflow.signal(name=SignalName.SMS_UNDELIVERABLE)
    def sms_undeliverable(self, payload: Any = None) -> None:
        self._receive(SignalName.SMS_UNDELIVERABLE, payload)

    @workflow.signal(name=SignalName.UPDATE_CONTACT)
    def update_contact(self, payload: Any = None) -> None:
        self._receive(SignalName.UPDATE_CONTACT, payload)

    @workflow.signal(name=SignalName.REFRESH_POLICY)
    def refresh_policy(self, payload: Any = None) -> None:
        self._receive(SignalName.REFRESH_POLICY, payload)

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """A misspelt signal name (``temporal workflow signal --name pasue``) is recorded as rejected
        instead of being buffered unseen forever."""
        if self._state is None or self.state.outcome is not None:
            return
        known = ", ".join(SignalName)
        self._record(TimelineKind.SIGNAL_REJECTED, f"unknown signal {name[:64]!r}; known: {known}")

    # --- queries -----------------------------------------------------------------------------

    @workflow.query(name=QueryName.STATUS)
    def status(self) -> AccountStatus:
        if self._state is None:
            return self._status_while_preparing()
        state = self.state
        return AccountStatus(
            account_id=state.account.account_id,
            stage=current_stage(state, local_date(state, workflow.now())),
            amount_due=state.amount_due,
            sms_sent=state.sms_sent,
            unanswered_sms=state.unanswered_sms,
            next_touchpoint_at=state.next_touchpoint_at,
            paused=state.paused,
        )

    def _status_while_preparing(self) -> AccountStatus:
        """Before the first plan: what the input and the calendar say (nothing sent, no plan yet)."""
        account = self._account_at_start
        if account is None:
            raise ApplicationError("the account's input is invalid: see the workflow's failure")
        return AccountStatus(
            account_id=account.account_id,
            stage=stage_by_date(account.due_date, zone_date(account.timezone, workflow.now())),
            amount_due=account.amount_due,
            sms_sent=0,
            unanswered_sms=0,
            next_touchpoint_at=None,
            paused=False,
        )

    @workflow.query(name=QueryName.TIMELINE)
    def timeline(self) -> list[TimelineEntry]:
        return [] if self._state is None else list(self._state.timeline)
