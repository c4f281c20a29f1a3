"""``OverdueAccountWorkflow``: one durable workflow per overdue account, for weeks or months.

It decides *what* and *when* and never does I/O: the contact policy (``kindly.policy.schedule``)
says what comes next, a timer waits for it, and one activity acts and writes its own audit row.
Signals change the state and wake the loop, which plans again. Every decision lands in the timeline
query and, through the next activity (or one local activity after signals), in the audit log.
"""

# No ``from __future__ import annotations`` here: the sandbox re-executes this module for every workflow
# instance, and the SDK's decorators read each handler's type hints, which string annotations would make
# it evaluate (``typing.get_type_hints``) every time.

from collections.abc import Sequence
from datetime import date, datetime, timedelta
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
        IndexPhoneInput,
        IndexPhoneResult,
        MessageContext,
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
    from kindly.contract import (
        SIGNAL_MODELS,
        WORKFLOW_TYPE,
        AccountInput,
        AccountResult,
        AccountStatus,
        CallOutcome,
        CallOutcomeKind,
        Close,
        CustomerReply,
        Outcome,
        Pause,
        PromiseToPay,
        QueryName,
        RefreshPolicy,
        Repayment,
        Resume,
        Settle,
        SignalName,
        SmsUndeliverable,
        Stage,
        TemplateName,
        TimelineEntry,
        TimelineKind,
        UpdateContact,
    )
    from kindly.masking import mask_reference
    from kindly.policy.model import CALL_HISTORY_KEPT
    from kindly.policy.replies import ReplyIntent, classify_reply
    from kindly.policy.schedule import (
        Step,
        StepKind,
        local_date,
        local_iso,
        plan_next,
        zone_date,
    )
    from kindly.policy.tones import choose_template
    from kindly.search_attributes import SearchSnapshot, snapshot_of, snapshot_updates
    from kindly.state import (
        TIMELINE_LIMIT,
        AccountState,
        audit_event_key,
        current_stage,
        search_snapshot,
        stage_by_date,
        start_entries,
    )
    from kindly.summaries import describe_position
    from kindly.validation import describe_validation_error
    from workflows.metrics import WorkflowMetrics

# Hand-offs retry without a deadline (an outage of the phone system must not fail the account's
# workflow); SMS retry until their contact window closes (schedule-to-close), then move on.
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
SMS_DAYS_KEPT = 14
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
began earlier keep their old path to their end. A run its starter prepared (``kindly.preparation``,
a third argument) takes the lean path without asking: its input already tells it apart."""
_Input = TypeVar("_Input", bound=BaseModel)
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

    # --- lifecycle ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, *args: Any) -> AccountResult:
        """``run(account)`` for a new account, ``run(account, None, preparation)`` for one its starter
        prepared (``kindly.preparation``), ``run(account, state)`` after continue-as-new.

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

        state = self._state
        while state.outcome is None:
            if self._policy_refresh is not None:
                await self._refresh_policy(self._policy_refresh)
            if self._history_is_long() and workflow.all_handlers_finished():
                self._record(TimelineKind.CONTINUED_AS_NEW, "history grew long; state carried over")
                await self._persist_changes()
                workflow.continue_as_new(
                    args=[state.account.model_dump(mode="json"), state.model_dump(mode="json")]
                )
            step = plan_next(state, workflow.now(), spread=self._patched(SPREAD_SENDS_PATCH))
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

        workflow.set_current_details(f"Ended: {state.outcome}.")
        await self._flush_decisions()
        return AccountResult(outcome=state.outcome, amount_collected=state.amount_collected)

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
        state = self.state
        policy = await workflow.execute_local_activity_method(
            RecordActivities.resolve_policy,
            ResolvePolicyInput(segment=state.account.segment),
            start_to_close_timeout=timedelta(seconds=30),
        )
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
        state = self.state
        if step.at is None:
            await workflow.wait_condition(lambda: self._woken or state.outcome is not None)
            return False
        delay = step.at - workflow.now()
        if delay > timedelta(0):
            try:
                await workflow.wait_condition(
                    lambda: self._woken or state.outcome is not None,
                    timeout=delay,
                    timeout_summary=f"next: {step.kind} {step.touch_key}",
                )
                return False
            except TimeoutError:
                pass
        return state.outcome is None and not self._woken

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
                state.done_touches.append(key)
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
        touchpoint = state.touchpoints + 1
        decisions = self._pending_decisions()
        window_left = (step.not_after or now + timedelta(hours=1)) - now
        try:
            result = await workflow.execute_activity_method(
                MessagingActivities.send_sms,
                SendSmsInput(
                    account_id=state.account.account_id,
                    idempotency_key=self._idempotency_key(touchpoint),
                    touchpoint=touchpoint,
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
                summary=f"SMS {template} touchpoint {touchpoint}",
            )
        except ActivityError as err:
            # The gateway did not take the message before the window closed (Temporal stops retrying
            # once the next backoff would pass the window's end): plan it for the next window.
            self._metrics.sms(template, "not_accepted")
            if self._patched(NEXT_WINDOW_PATCH):
                state.sms_not_before = step.not_after
            self._record(
                TimelineKind.DEFERRED,
                f"{template} not accepted before the window closed ({err.cause}); next window",
            )
            return
        state.events_audited += len(decisions)
        self._metrics.sms(template, result.status)
        if result.status == "window_closed":
            self._record(TimelineKind.DEFERRED, f"{template}: window closed before sending; moved")
            return
        state.touchpoints = touchpoint
        state.sms_not_before = None
        today = local_date(state, now)
        if step.kind is StepKind.SERVICE_SMS:
            state.pending_service.remove(template)
        else:
            if step.touch_key and step.touch_key != "follow_up":
                state.done_touches.append(step.touch_key)
            state.last_touch_date = today
        if result.status == "rejected":
            self._record(
                TimelineKind.SMS_FAILED, f"{template} touchpoint {touchpoint}: {result.detail}", audited=True
            )
            return
        state.sms_sent += 1
        if step.kind is StepKind.SMS:
            state.sms_days = [*state.sms_days, today][-SMS_DAYS_KEPT:]
            if template is TemplateName.BROKEN_PROMISE:
                state.promise_broken = False
            if template is TemplateName.INSTALMENT_OFFER:
                state.instalment_offered = True
            if step.counts_for_escalation:
                state.unanswered_sms += 1
        self._record(
            TimelineKind.SMS_SENT,
            f"{template} touchpoint {touchpoint} ({result.segments} segment(s))",
            audited=True,
        )

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
        result = await workflow.execute_activity_method(
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
            summary=f"call task attempt {step.attempt}",
        )
        state.events_audited += len(decisions)
        state.touchpoints = touchpoint
        state.escalation = Stage.PHONE
        state.phone_attempt = step.attempt
        state.phone_requested_at = workflow.now()
        today = local_date(state, state.phone_requested_at)
        state.call_attempt_days = [*state.call_attempt_days, today][-CALL_HISTORY_KEPT:]
        self._metrics.escalation("phone")
        self._record(
            TimelineKind.ESCALATED_PHONE,
            f"call task attempt {step.attempt} ({reason}): {result.status}",
            audited=True,
        )
        if result.status == "rejected":
            state.specialist_reason = f"phone team rejected the call task: {result.detail}"

    async def _hand_off_to_specialist(self) -> None:
        state = self.state
        touchpoint = state.touchpoints + 1
        reason = state.specialist_reason or (
            f"{state.phone_attempt} call attempt(s) without result"
            if state.phone_attempt
            else f"{state.unanswered_sms} unanswered SMS; segment routes to specialists"
        )
        decisions = self._pending_decisions()
        result = await workflow.execute_activity_method(
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
            summary="specialist hand-off",
        )
        state.events_audited += len(decisions)
        state.touchpoints = touchpoint
        state.escalation = Stage.SPECIALIST
        state.specialist_reason = None
        self._metrics.escalation("specialist")
        self._record(TimelineKind.ESCALATED_SPECIALIST, f"{reason}: {result.status}", audited=True)

    def _message_context(self, now: datetime) -> MessageContext:
        state = self.state
        return MessageContext(
            amount_due=state.amount_due,
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
        """Validate and apply one signal; a bad one is recorded as rejected and changes nothing."""
        if self._state is None:
            self._buffered.append((name, payload))
            return
        if self.state.outcome is not None:
            return
        try:
            message = SIGNAL_MODELS[name].model_validate({} if payload is None else payload)
            self._apply(message)
        except ValidationError as err:
            self._record(TimelineKind.SIGNAL_REJECTED, f"{name}: {describe_validation_error(err)}")
        except SignalRejected as err:
            self._record(TimelineKind.SIGNAL_REJECTED, f"{name}: {err}")
        self._woken = True

    def _apply(self, message: BaseModel) -> None:
        state = self.state
        today = local_date(state, workflow.now())
        if isinstance(message, Repayment):
            self._credit(message)
        elif isinstance(message, CustomerReply):
            self._on_reply(message)
        elif isinstance(message, Pause):
            state.paused, state.pause_reason, state.paused_until = (
                True,
                message.reason,
                message.until,
            )
            until = f" until {local_iso(state.account.timezone, message.until)}" if message.until else ""
            self._record(TimelineKind.PAUSED, f"{message.reason}{until}")
        elif isinstance(message, Resume):
            if not state.paused:
                raise SignalRejected("account is not paused")
            state.paused, state.paused_until = False, None
            self._record(TimelineKind.RESUMED, "resumed by operator; cadence restarts from now")
        elif isinstance(message, Settle):
            state.amount_collected += message.amount
            state.outcome = Outcome.SETTLED
            self._record(TimelineKind.SETTLED, f"settled for {message.amount} ({message.reference})")
        elif isinstance(message, Close):
            state.outcome = Outcome.CLOSED
            self._record(TimelineKind.CLOSED, message.reason)
        elif isinstance(message, PromiseToPay):
            self._promise(message.date, today, via="customer")
        elif isinstance(message, CallOutcome):
            self._on_call_outcome(message, today)
        elif isinstance(message, RefreshPolicy):
            self._policy_refresh = message
        elif isinstance(message, SmsUndeliverable):
            if not state.sms_undeliverable:
                state.sms_undeliverable = True
                state.pending_service = []
                self._record(
                    TimelineKind.SMS_UNDELIVERABLE, f"{message.reason}; no further SMS, escalation by phone"
                )
        elif isinstance(message, UpdateContact):
            changes = message.model_dump(exclude_none=True)
            if not changes:
                raise SignalRejected("give at least one of phone, timezone, locale")
            state.account = state.account.model_copy(update=changes)
            state.contact_after = state.account.contact_after
            state.contact_before = state.account.contact_before
            self._phone_changed = "phone" in changes
            if self._phone_changed and state.sms_undeliverable:
                state.sms_undeliverable = False  # a new number may well receive SMS
            self._record(TimelineKind.CONTACT_UPDATED, "updated " + ", ".join(sorted(changes)))

    def _credit(self, payment: Repayment) -> None:
        state = self.state
        if payment.reference in state.credited_references:
            raise SignalRejected(f"payment {payment.reference} was already credited")
        state.credited_references.append(payment.reference)
        state.amount_due -= payment.amount
        state.amount_collected += payment.amount
        state.unanswered_sms = 0
        self._record(
            TimelineKind.REPAYMENT_RECEIVED,
            f"{payment.amount} received ({payment.reference}); {max(state.amount_due, Decimal(0))} left",
        )
        if state.amount_due <= 0:
            state.amount_due = Decimal("0.00")
            state.outcome = Outcome.REPAID
            self._record(TimelineKind.REPAID, "paid in full")

    def _on_reply(self, reply: CustomerReply) -> None:
        state = self.state
        state.unanswered_sms = 0
        intent = classify_reply(reply.text, state.policy.reply_keywords)
        # The reply's text may hold personal data: the timeline keeps only what it meant.
        self._record(TimelineKind.REPLY_RECEIVED, f"reply ({intent}, {len(reply.text)} chars)")
        if intent is ReplyIntent.OPT_OUT and not state.opted_out:
            state.opted_out = True
            self._opt_out_to_store = True
            state.pending_service = [TemplateName.OPT_OUT_CONFIRMATION]
            self._record(TimelineKind.OPTED_OUT, "no further SMS; escalation continues by phone")
        elif intent in (ReplyIntent.HARDSHIP, ReplyIntent.DISPUTE):
            # Automated contact stops; a person takes the account, told why (not the text).
            if state.escalation != Stage.SPECIALIST:
                state.specialist_reason = f"customer reported {intent}: needs a person"
            self._metrics.escalation("person")
            self._record(TimelineKind.HANDED_TO_PERSON, f"{intent} reported; automated contact stops")
        elif (
            intent is ReplyIntent.HELP
            and not state.opted_out
            and TemplateName.HELP not in state.pending_service
        ):
            state.pending_service.append(TemplateName.HELP)

    def _promise(self, promised: date, today: date, *, via: str) -> None:
        state = self.state
        if promised < today:
            raise SignalRejected(f"date: {promised} is in the past (today is {today})")
        state.promise_date = promised
        state.unanswered_sms = 0
        if state.escalation == Stage.PHONE:
            state.escalation, state.phone_attempt, state.phone_requested_at = None, 0, None
        self._record(TimelineKind.PROMISE, f"{via} promised to pay by {promised}; contact held")

    def _on_call_outcome(self, call: CallOutcome, today: date) -> None:
        state = self.state
        if call.outcome is CallOutcomeKind.PROMISE_TO_PAY and call.promise_date is None:
            raise SignalRejected("promise_date: required when outcome is promise_to_pay")
        self._record(TimelineKind.CALL_OUTCOME, f"{call.outcome} (attempt {state.phone_attempt})")
        if call.outcome is not CallOutcomeKind.NO_ANSWER:
            # A connected call: the regimes' limits on conversations and calls after one count it.
            state.conversation_days = [*state.conversation_days, today][-CALL_HISTORY_KEPT:]
        if call.outcome is CallOutcomeKind.REACHED:
            state.unanswered_sms = 0
            state.last_touch_date = today
            if state.escalation == Stage.PHONE:
                state.escalation, state.phone_attempt, state.phone_requested_at = None, 0, None
        elif call.outcome is CallOutcomeKind.NO_ANSWER:
            if state.escalation == Stage.PHONE:
                state.phone_requested_at = None
        elif call.outcome is CallOutcomeKind.PROMISE_TO_PAY:
            assert call.promise_date is not None
            self._promise(call.promise_date, today, via="on the phone, customer")
        else:
            if state.escalation != Stage.SPECIALIST:
                state.specialist_reason = f"call outcome {call.outcome}"

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


class SignalRejected(Exception):
    """A well-formed signal that makes no sense now (a past promise date, a second credit)."""
