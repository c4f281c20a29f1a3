"""One account's future, run on the workflow's own decisions over simulated time.

The loop is ``OverdueAccountWorkflow``'s without Temporal: ``plan_next`` says what is next and when, the
plan is noted (its skips and deferrals), and either the world's next signal comes first, applied through
``apply_signal`` as the workflow's handler would, or the step is due and acts through the same pure
functions the workflow calls when its activity ends: a reminder is sent (``sms_started``,
``sms_finished``), a call task or hand-off is made (``handoff_started``, ``handed_off``), a pause ends, a
plan breaks. Gateways, the phone team and the specialists accept at once; only the world's responses
(``kindly.simulator.world``) change the course.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from datetime import date, datetime

from kindly.domain import actions, completions
from kindly.domain.complaint_effects import deadlines_passed
from kindly.domain.completions import SmsAction
from kindly.domain.contract import AccountInput, Outcome, SignalName
from kindly.domain.effects import ActionKind, apply_signal
from kindly.domain.experiments import Assignment
from kindly.domain.policy.model import ContactPolicy
from kindly.domain.policy.schedule import Step, StepKind, local_date, owed_confirmation, plan_next
from kindly.domain.state import AccountState
from kindly.simulator.recorder import Recorder
from kindly.simulator.sizing import SmsSizer
from kindly.simulator.world import Happening, World

CONFIRMATION_TRIES = 7
"""As the workflow: windows an ended account tries its owed opt-out confirmation in."""


class AccountRun:
    """One account from ``start`` until it ends or ``end`` comes."""

    def __init__(
        self,
        account: AccountInput,
        policy: ContactPolicy,
        *,
        world: World,
        recorder: Recorder,
        sizer: SmsSizer,
        experiment: Assignment | None = None,
    ) -> None:
        self._account = account
        self._policy = policy
        self._world = world
        self._recorder = recorder
        self._sizer = sizer
        self._experiment = experiment
        self._queue: list[tuple[datetime, int, Happening]] = []
        self._deferred: set[tuple[str, str | None, date | None, str]] = set()
        self._order = itertools.count()

    def run(self, start: datetime, end: datetime) -> AccountState:
        now = start
        state = actions.new_account(
            self._account, self._policy, now, opted_out=False, experiment=self._experiment
        )
        self._recorder.started(now)
        self._expect(self._world.opening())
        while state.outcome is None:
            step = plan_next(state, now, spread=True, same_day=True)
            if step.plan_key != state.last_plan_key and (step.at is not None or step.waiting_for):
                self._note_deferrals(step)
            state = actions.plan_noted(state, step, now).state
            coming = self._queue[0][0] if self._queue else None
            if coming is not None and (step.at is None or coming <= step.at):
                if coming >= end:
                    return state
                now = coming
                state = self._receive(state, heapq.heappop(self._queue)[2])
                continue
            if step.at is None or step.at >= end:
                return state
            now = max(now, step.at)
            state = self._act(state, step, now)
        self._recorder.ended(now)
        return self._confirm_opt_out(state, now, end)

    def _note_deferrals(self, step: Step) -> None:
        """Each planned touch put off counts once per reason, on the first day that reason passed over: a
        plan made again (after a signal) repeats its deferrals in the timeline, not in the figures."""
        for deferral in step.deferrals:
            key = (step.kind.value, step.touch_key, step.nominal_day, deferral.reason)
            if key not in self._deferred:
                self._deferred.add(key)
                self._recorder.deferred(deferral.day, deferral.reason)

    def _expect(self, happenings: Iterable[Happening]) -> None:
        for happening in happenings:
            heapq.heappush(self._queue, (happening.at, next(self._order), happening))

    def _receive(self, state: AccountState, happening: Happening) -> AccountState:
        payload = happening.payload_for(state)
        if payload is None:
            return state
        before = state.amount_collected
        effect = apply_signal(state, happening.signal, payload, happening.at)
        after = effect.state
        if happening.response:
            self._recorder.response(happening.at, happening.response)
        if after.amount_collected != before and happening.signal is SignalName.REPAYMENT:
            cured = after.outcome is Outcome.REPAID
            self._recorder.collected(happening.at, after.amount_collected - before, cured=cured)
        return after

    def _act(self, state: AccountState, step: Step, now: datetime) -> AccountState:
        if step.kind in (StepKind.SMS, StepKind.SERVICE_SMS):
            return self._send(state, step, now)
        if step.kind in (StepKind.CALL, StepKind.SPECIALIST):
            handoff = actions.handoff_started(state, step)
            state = completions.handed_off(state, handoff, "accepted", "simulated", now).state
            if handoff.kind is ActionKind.CALL_TASK:
                self._recorder.call_task(now)
                self._expect(self._world.after_call(state, now))
            else:
                self._recorder.specialist(now)
            return state
        if step.kind is StepKind.RESUME:
            return actions.pause_ended(state, hand_back_from_specialists=True).state
        if step.kind is StepKind.PLAN_BROKEN:
            return actions.plan_broken(state).state
        if step.kind is StepKind.COMPLAINT_DEADLINE:
            return deadlines_passed(state, now).state
        return state

    def _send(self, state: AccountState, step: Step, now: datetime) -> AccountState:
        started, action = actions.sms_started(state, step, now)
        state = started.state
        segments = self._sizer.segments(state, action.template, now)
        today = local_date(state, now)
        state = completions.sms_finished(
            state, action, "sent", segments=segments, detail="simulated", today=today
        ).state
        self._recorder.sms(now, action.template, segments)
        if _is_reminder(action):
            self._expect(self._world.after_sms(state, action.template, now))
        return state

    def _confirm_opt_out(self, state: AccountState, now: datetime, end: datetime) -> AccountState:
        for _ in range(CONFIRMATION_TRIES):
            step = owed_confirmation(state, now, same_day=True)
            if step is None or step.at is None or step.at >= end:
                return state
            now = max(now, step.at)
            state = self._send(state, step, now)
        return state


def _is_reminder(action: SmsAction) -> bool:
    return action.kind is ActionKind.REMINDER
