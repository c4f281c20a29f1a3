"""Random interleavings of signals, plans and finishing actions, through ``kindly.domain.effects`` only.

``Driver`` is a small model of ``OverdueAccountWorkflow`` without Temporal: a clock, the account's
state and at most one action in flight (an SMS, a call task or a specialist hand-off). Hypothesis
draws a list of moves; each one either applies a signal (good or garbage) at the current clock,
plans and starts the next step when nothing is in flight, finishes the action in flight, or lets
time pass. Invariants are checked after every move.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from kindly.domain.completions import (
    PROVIDER_DEFERRALS,
    SmsAction,
    call_task_created,
    handoff_cancelled,
    sms_cancelled,
    sms_finished,
    sms_not_accepted,
    specialist_handed_off,
)
from kindly.domain.contract import AccountInput, SignalName, TemplateName, TimelineKind
from kindly.domain.effects import (
    ActionKind,
    CancelReason,
    Effect,
    apply_signal,
    cancels,
)
from kindly.domain.policy.model import BUILT_IN_POLICIES
from kindly.domain.policy.schedule import StepKind, local_date, plan_next
from kindly.domain.policy.tones import choose_template
from kindly.domain.state import AccountState

DUE = date(2026, 11, 20)
AMOUNT = Decimal("1200.00")
PHONES = ["+8613800138000", "+8613900139000", "+8613700137000"]
REPLIES = [
    "STOP",
    "退订",
    "HELP",
    "帮助",
    "I lost my job",
    "我失业了",
    "not my loan",
    "ok thanks",
    "好的",
    "",
]
CALLS: list[tuple[str, int | None]] = [
    ("reached", None),
    ("no_answer", None),
    ("promise_to_pay", 3),
    ("promise_to_pay", None),  # rejected: no date
    ("promise_to_pay", -1),  # rejected: in the past
    ("wrong_number", None),
    ("refused", None),
]
GARBAGE: list[tuple[SignalName, Any]] = [
    (SignalName.REPAYMENT, {"amount": "-5", "reference": "G-1"}),
    (SignalName.REPAYMENT, {"amount": "1200.00"}),
    (SignalName.REPAYMENT, None),
    (SignalName.CUSTOMER_REPLY, "STOP"),
    (SignalName.CUSTOMER_REPLY, {"text": "x" * 2000}),
    (SignalName.PAUSE, {"reason": "", "until": "tomorrow"}),
    (SignalName.SETTLE, {"amount": "ten", "reference": "S-9"}),
    (SignalName.CLOSE, [{"reason": "x"}]),
    (SignalName.PROMISE_TO_PAY, {"date": "2026-13-01"}),
    (SignalName.CALL_OUTCOME, {"outcome": "hung_up"}),
    (SignalName.UPDATE_CONTACT, {"phone": "12345"}),
    (SignalName.SMS_UNDELIVERABLE, {"reason": None, "extra": 1}),
    (SignalName.RESUME, {"now": True}),
    (SignalName.REFRESH_POLICY, 42),
]
SMS_KINDS = (StepKind.SMS, StepKind.SERVICE_SMS)


@dataclass
class InFlight:
    kind: ActionKind
    touchpoint: int
    sms: SmsAction | None = None
    attempt: int = 0
    not_after: datetime | None = None
    opted_out_at_start: bool = False
    stale: list[CancelReason] = field(default_factory=list)
    """Why signals since the start may have made it unwanted (the workflow's ``_stale``)."""

    @property
    def template(self) -> TemplateName | None:
        return self.sms.template if self.sms else None


@dataclass
class Driver:
    """The workflow's decisions around ``kindly.domain.effects``: what it plans, starts, cancels and
    records."""

    state: AccountState
    now: datetime
    in_flight: InFlight | None = None
    sent: list[tuple[TemplateName, bool]] = field(default_factory=list)
    """Every message the gateway took: its template and whether the account was opted out then."""
    opt_outs: int = 0
    credited: dict[str, Decimal] = field(default_factory=dict)
    settled: Decimal = Decimal(0)
    owed: set[TemplateName] = field(default_factory=set)
    """Service replies the customer asked for and has neither had nor lost a reason for."""
    answered: set[TemplateName] = field(default_factory=set)
    """Service replies whose SMS ended (sent, or refused by the gateway) in the current move."""
    touchpoints_seen: int = 0
    references: int = 0

    # --- moves ---------------------------------------------------------------------------------

    def move(self, kind: str, arg: Any) -> None:
        self.answered = set()
        if kind == "plan":
            self.plan()
        elif kind == "finish":
            self.finish(arg)
        elif kind == "wait":
            self.now += timedelta(minutes=arg)
        else:
            self.signal_move(kind, arg)
        self.check()

    def signal_move(self, kind: str, arg: Any) -> None:
        today = local_date(self.state, self.now)
        if kind == "repay":
            self.repay(self.new_reference(), Decimal(arg))
        elif kind == "repay_full":
            self.repay(self.new_reference(), max(self.state.amount_due, Decimal("0.01")) + Decimal(arg))
        elif kind == "repay_again":
            references = list(self.credited) or ["R-never"]
            self.repay(references[arg % len(references)], Decimal("1.00"))
        elif kind == "reply":
            self.reply(arg)
        elif kind == "pause":
            until = None if arg is None else (self.now + timedelta(hours=arg)).isoformat()
            self.signal(SignalName.PAUSE, {"reason": "operator", "until": until})
        elif kind == "promise":
            self.signal(SignalName.PROMISE_TO_PAY, {"date": (today + timedelta(days=arg)).isoformat()})
        elif kind == "call":
            outcome, days = arg
            promised = None if days is None else (today + timedelta(days=days)).isoformat()
            self.signal(SignalName.CALL_OUTCOME, {"outcome": outcome, "promise_date": promised})
        elif kind == "settle":
            # Refused when the account has ended or owes less than the settlement.
            takes = self.state.outcome is None and self.state.amount_due >= Decimal("500.00")
            self.signal(SignalName.SETTLE, {"amount": "500.00", "reference": "S-1"})
            if takes:
                self.settled += Decimal("500.00")
        elif kind == "new_number":
            self.signal(SignalName.UPDATE_CONTACT, {"phone": PHONES[arg]})
        elif kind == "garbage":
            name, payload = arg
            effect = self.signal(name, payload)
            assert effect.entries == () or [e.kind for e in effect.entries] == [TimelineKind.SIGNAL_REJECTED]
        else:
            payload = {
                "resume": {},
                "close": {"reason": "written off"},
                "undeliverable": {"reason": "number does not exist"},
                "refresh": {"reason": "new policy file"},
            }[kind]
            name = {
                "resume": SignalName.RESUME,
                "close": SignalName.CLOSE,
                "undeliverable": SignalName.SMS_UNDELIVERABLE,
                "refresh": SignalName.REFRESH_POLICY,
            }[kind]
            self.signal(name, payload)

    def new_reference(self) -> str:
        self.references += 1
        return f"R-{self.references}"

    def repay(self, reference: str, amount: Decimal) -> None:
        creditable = self.state.outcome is None and reference not in self.credited
        effect = self.signal(SignalName.REPAYMENT, {"amount": str(amount), "reference": reference})
        if creditable:
            self.credited[reference] = amount
        else:
            assert effect.state.amount_collected == self.state.amount_collected

    def reply(self, text: str) -> None:
        before = self.state
        effect = self.signal(SignalName.CUSTOMER_REPLY, {"text": text})
        deliverable = not before.sms_undeliverable and before.outcome is None
        if effect.store_opt_out:
            self.opt_outs += 1
            if deliverable:
                self.owed.add(TemplateName.OPT_OUT_CONFIRMATION)
        if text in ("HELP", "帮助") and deliverable and not before.opted_out:
            assert TemplateName.HELP in self.state.pending_service
            self.owed.add(TemplateName.HELP)

    def signal(self, name: SignalName, payload: Any) -> Effect:
        ended = self.state.outcome is not None
        effect = apply_signal(self.state, name, payload, self.now)
        if ended:
            assert effect.state is self.state and effect.entries == ()
        self.take(effect)
        return effect

    def take(self, effect: Effect) -> None:
        self.state = effect.state
        if effect.stale is not None and self.in_flight is not None:
            self.in_flight.stale.append(effect.stale)

    # --- acting --------------------------------------------------------------------------------

    def plan(self) -> None:
        """Plan when nothing is in flight; sleep until the step is due, then start it."""
        if self.in_flight is not None or self.state.outcome is not None:
            return
        state = self.state
        step = plan_next(state, self.now, spread=True)
        new_done = [key for key, _ in step.superseded if key not in state.done_touches]
        state = state.model_copy(update={"done_touches": [*state.done_touches, *new_done]})
        if step.at is not None:
            self.now = max(self.now, step.at)
        touchpoint = state.touchpoints + 1
        if step.kind is StepKind.RESUME:
            state = state.model_copy(update={"paused": False, "paused_until": None})
        elif step.kind in SMS_KINDS:
            assert step.template is not None
            template = step.template
            if step.kind is StepKind.SMS:
                template = choose_template(
                    template,
                    state.policy,
                    days_past_due=max((local_date(state, self.now) - state.account.due_date).days, 0),
                    instalment_offered=state.instalment_offered,
                )
                if state.promise_date is not None:
                    state = state.model_copy(update={"promise_date": None, "promise_broken": True})
            action = SmsAction(
                kind=ActionKind.REMINDER if step.kind is StepKind.SMS else ActionKind.SERVICE_SMS,
                template=template,
                touchpoint=touchpoint,
                touch_key=step.touch_key,
                counts_for_escalation=step.counts_for_escalation,
            )
            self.in_flight = InFlight(
                action.kind, touchpoint, action, not_after=step.not_after, opted_out_at_start=state.opted_out
            )
        elif step.kind is StepKind.CALL:
            self.in_flight = InFlight(ActionKind.CALL_TASK, touchpoint, attempt=step.attempt)
        elif step.kind is StepKind.SPECIALIST:
            self.in_flight = InFlight(ActionKind.SPECIALIST, touchpoint)
        self.state = state

    def finish(self, choice: int) -> None:
        """End the action in flight: cancelled when a signal made it unwanted (unless the other side
        had already taken it), otherwise with an outcome ``choice`` picks."""
        flight, self.in_flight = self.in_flight, None
        if flight is None:
            return
        unwanted = next((r for r in flight.stale if cancels(flight.kind, flight.template, r)), None)
        if flight.sms is not None:
            self.finish_sms(flight, flight.sms, unwanted, choice)
        elif unwanted is not None and choice % 2 == 0:
            what = "call task" if flight.kind is ActionKind.CALL_TASK else "specialist hand-off"
            self.take(handoff_cancelled(self.state, what=what, touchpoint=flight.touchpoint, reason=unwanted))
        elif flight.kind is ActionKind.CALL_TASK:
            status = ["accepted", "logged", "rejected"][choice % 3]
            self.take(
                call_task_created(
                    self.state,
                    attempt=flight.attempt,
                    touchpoint=flight.touchpoint,
                    reason="r",
                    status=status,
                    detail="d",
                    now=self.now,
                )
            )
        else:
            self.take(
                specialist_handed_off(self.state, touchpoint=flight.touchpoint, reason="r", status="accepted")
            )

    def finish_sms(
        self, flight: InFlight, action: SmsAction, unwanted: CancelReason | None, choice: int
    ) -> None:
        today = local_date(self.state, self.now)

        def finished(status: str) -> None:
            self.take(
                sms_finished(
                    self.state,
                    action,
                    status,
                    segments=1,
                    detail="d",
                    today=today,
                    not_after=flight.not_after,
                )
            )
            if status in ("sent", "duplicate", "rejected") and action.kind is ActionKind.SERVICE_SMS:
                self.answered.add(action.template)

        if unwanted is not None:
            # Cancelled; or the gateway took it before the cancellation reached the attempt (the
            # activity's own result, or the outbox row ``cancel_send`` finds after ``sms_cancelled``).
            variant = choice % 3
            if variant != 1:
                self.take(sms_cancelled(self.state, action, unwanted))
            if variant != 0:
                self.sent.append((action.template, flight.opted_out_at_start))
                finished("sent")
            return
        statuses = ["sent", "duplicate", "rejected", "window_closed", "not_accepted", *PROVIDER_DEFERRALS]
        status = statuses[choice % len(statuses)]
        if status == "not_accepted":
            self.take(sms_not_accepted(self.state, action, flight.not_after, "gateway outage"))
            return
        if status in PROVIDER_DEFERRALS:
            # Nothing went out: the touchpoint stays unused (its key goes again), the touch waits.
            finished(status)
            assert self.state.touchpoints < action.touchpoint
            assert flight.not_after is None or self.state.sms_not_before == flight.not_after
            return
        if status in ("sent", "duplicate"):
            self.sent.append((action.template, self.state.opted_out))
        finished(status)

    # --- invariants ----------------------------------------------------------------------------

    def check(self) -> None:
        state = self.state
        # After an opt-out only its confirmation goes out, once per opt-out.
        for template, opted_out in self.sent:
            assert not opted_out or template is TemplateName.OPT_OUT_CONFIRMATION, self.sent
        confirmations = sum(template is TemplateName.OPT_OUT_CONFIRMATION for template, _ in self.sent)
        assert confirmations <= self.opt_outs, self.sent
        # A service reply owed is answered, still owed, or superseded (the number cannot receive SMS,
        # the account ended, a HELP by an opt-out); never silently dropped.
        for template in sorted(self.owed):
            superseded = state.sms_undeliverable or state.outcome is not None
            if template is TemplateName.HELP:
                superseded = superseded or state.opted_out
            if superseded or template in self.answered:
                self.owed.discard(template)
            else:
                assert template in state.pending_service, (template, state.pending_service)
        assert state.touchpoints >= self.touchpoints_seen
        self.touchpoints_seen = state.touchpoints
        # Money: every reference credited once, and the amounts follow the credits.
        assert state.credited_references == list(self.credited)
        paid = sum(self.credited.values(), Decimal(0))
        assert state.amount_collected == paid + self.settled
        assert state.amount_due == max(AMOUNT - paid, Decimal(0))


MOVES: dict[str, tuple[int, st.SearchStrategy[Any]]] = {
    # kind: (weight, its argument)
    "plan": (12, st.none()),
    "finish": (12, st.integers(0, 59)),
    "wait": (6, st.integers(1, 14 * 24 * 60)),  # minutes
    "reply": (8, st.sampled_from(REPLIES)),
    "repay": (2, st.sampled_from(["0.01", "200.00", "599.99"])),
    "repay_again": (2, st.integers(0, 5)),
    "pause": (2, st.sampled_from([None, 1, 30, 24 * 9])),  # hours
    "resume": (2, st.none()),
    "promise": (2, st.integers(-2, 20)),  # days from the customer's today
    "call": (3, st.sampled_from(CALLS)),
    "undeliverable": (1, st.none()),
    "new_number": (2, st.integers(0, len(PHONES) - 1)),
    "refresh": (1, st.none()),
    "garbage": (3, st.sampled_from(GARBAGE)),
    # Rare: an account that ends has nothing left to interleave.
    "repay_full": (1, st.sampled_from(["0.00", "10.00"])),
    "settle": (1, st.none()),
    "close": (1, st.none()),
}


def step_strategy() -> st.SearchStrategy[tuple[str, Any]]:
    """One move, drawn with the weights of ``MOVES`` (``one_of`` would weigh every kind alike)."""
    kinds = [kind for kind, (weight, _) in MOVES.items() for _ in range(weight)]
    return st.sampled_from(kinds).flatmap(lambda kind: st.tuples(st.just(kind), MOVES[kind][1]))


@st.composite
def drivers(draw: st.DrawFn) -> Driver:
    segment = draw(st.sampled_from(sorted(BUILT_IN_POLICIES)))
    timezone = "America/New_York" if segment == "us_standard" else "Asia/Shanghai"
    zone = ZoneInfo(timezone)
    started_on = DUE + timedelta(days=draw(st.integers(-12, 30)))
    clock = time(draw(st.integers(0, 23)), draw(st.integers(0, 59)))
    account = AccountInput(
        account_id=f"ACC-{draw(st.integers(1, 999))}",
        customer_name="Li Lei",
        phone=PHONES[0],
        timezone=timezone,
        locale=draw(st.sampled_from(["zh-CN", "en-US"])),
        amount_due=AMOUNT,
        due_date=DUE,
    )
    opted_out = draw(st.sampled_from([False, False, False, True]))
    state = AccountState.for_new_account(account, BUILT_IN_POLICIES[segment], started_on, opted_out=opted_out)
    now = datetime.combine(started_on, clock, tzinfo=zone).astimezone(UTC)
    return Driver(state, now)


@settings(max_examples=500, deadline=None)
@given(drivers(), st.lists(step_strategy(), min_size=20, max_size=100))
def test_any_interleaving_keeps_the_invariants(driver: Driver, moves: list[tuple[str, Any]]) -> None:
    for kind, arg in moves:
        driver.move(kind, arg)
    # Whatever remains in flight still ends cleanly.
    driver.move("finish", 0)
