"""What the workflow decides when it plans and starts an action: pure functions over ``AccountState``.

They complete the signals' effects (``kindly.domain.effects``) and the finished actions'
(``kindly.domain.completions``): a new plan's skips and deferrals, the reminder to send and a promise it
breaks, a pause that ran out, a reloaded policy, the reasons a call task or a hand-off states, and the
only values a message may show. The workflow calls them and records what they return; unit tests call
them without Temporal.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from kindly.domain.completions import Handoff, SmsAction
from kindly.domain.contract import AccountInput, NextStep, RefreshPolicy, TimelineKind
from kindly.domain.effects import ActionKind, Effect, Entry, hand_back
from kindly.domain.experiments import Assignment
from kindly.domain.masking import mask_reference
from kindly.domain.messages.context import InstalmentShown, MessageContext, VariantKey
from kindly.domain.policy.model import ContactPolicy
from kindly.domain.policy.schedule import Step, StepKind, local_date, local_iso, plan_next, zone_date
from kindly.domain.policy.tones import choose_template
from kindly.domain.state import AccountState


def new_account(
    account: AccountInput,
    policy: ContactPolicy,
    now: datetime,
    *,
    opted_out: bool,
    experiment: Assignment | None = None,
) -> AccountState:
    """A new account's state before anything happened, started on the customer's local date."""
    started_on = zone_date(account.timezone, now)
    return AccountState.for_new_account(
        account, policy, started_on, opted_out=opted_out, experiment=experiment
    )


def plan_noted(state: AccountState, step: Step, now: datetime) -> Effect:
    """A plan's next touchpoint, and, once per distinct plan, the touches it skips and the days it
    passes over (deferrals), so the timeline says why nothing went out when the customer expected it."""
    state = state.model_copy()
    state.next_touchpoint_at = step.at
    state.next_step = next_step(state, step, now)
    if step.plan_key == state.last_plan_key:
        return Effect(state)
    state.last_plan_key = step.plan_key
    entries: list[Entry] = []
    for key, reason in step.superseded:
        if key not in state.done_touches:
            state.done_touches = [*state.done_touches, key]
        entries.append(Entry(TimelineKind.SKIPPED, f"touch {key} skipped: {reason}"))
    if step.deferrals:
        reasons = ", ".join(f"{d.day.isoformat()} {d.reason}" for d in step.deferrals)
        what = f"{step.kind} {step.touch_key}"
        if step.at is not None:
            moved_to = local_iso(state.account.timezone, step.at)
            entries.append(Entry(TimelineKind.DEFERRED, f"{what} deferred ({reasons}) to {moved_to}"))
        elif step.waiting_for == "no_calendar":
            year = step.deferrals[-1].day.year
            why = f"no holiday data for {year}: it waits until a policy refresh brings the year"
            entries.append(Entry(TimelineKind.DEFERRED, f"{what} deferred ({reasons}); {why}"))
    return Effect(state, tuple(entries))


def shadow_plan_noted(state: AccountState, now: datetime, *, same_day: bool) -> Effect:
    """For an account of a shadow arm: what the arm's own policy would do next, given the account's real
    history, recorded once per distinct plan (``shadow_plan``). Nothing is sent of it. Any other
    account: no change."""
    assignment = state.experiment
    if assignment is None or assignment.shadow_overlay is None or state.outcome is not None:
        return Effect(state)
    try:
        shadow = state.model_copy(update={"policy": assignment.shadow_overlay.applied_to(state.policy)})
        step = plan_next(shadow, now, spread=True, same_day=same_day)
    except ValueError:  # an overlay the policy now refuses, or no allowed day: nothing to compare
        return Effect(state)
    if step.plan_key == state.last_shadow_plan_key:
        return Effect(state)
    state = state.model_copy(update={"last_shadow_plan_key": step.plan_key})
    what = {
        StepKind.SMS: f"send {step.template}",
        StepKind.SERVICE_SMS: f"answer with {step.template}",
        StepKind.CALL: "create a call task",
        StepKind.SPECIALIST: "hand off to the specialists",
        StepKind.RESUME: "resume",
    }.get(step.kind, "wait")
    when = f" at {local_iso(state.account.timezone, step.at)}" if step.at is not None else ""
    detail = f"arm {assignment.arm} would {what}{when}"
    return Effect(state, (Entry(TimelineKind.SHADOW_PLAN, detail),))


def next_step(state: AccountState, step: Step, now: datetime) -> NextStep | None:
    """What ``step`` does, as the ``status`` query shows it; a reminder with the wording it would use
    at its moment (the tone's choice by days past due)."""
    if step.kind is StepKind.IDLE:
        return None
    template = step.template
    if step.kind is StepKind.SMS and template is not None:
        at = step.at or now
        template = choose_template(
            template,
            state.policy,
            days_past_due=days_past_due(state, at),
            instalment_offered=state.instalment_offered,
        )
    return NextStep(kind=str(step.kind), template=template, waiting_for=step.waiting_for)


def days_past_due(state: AccountState, now: datetime) -> int:
    return max((local_date(state, now) - state.account.due_date).days, 0)


def sms_started(state: AccountState, step: Step, now: datetime) -> tuple[Effect, SmsAction]:
    """The SMS a due step sends: a reminder's wording for the account's tone and age, and a broken
    promise recorded (the promise date passed without the money, so the reminder is the firmer one)."""
    assert step.template is not None, "an SMS step names its template"
    state = state.model_copy()
    template = step.template
    entries: tuple[Entry, ...] = ()
    if step.kind is StepKind.SMS:
        template = choose_template(
            template,
            state.policy,
            days_past_due=days_past_due(state, now),
            instalment_offered=state.instalment_offered,
        )
        if state.promise_date is not None:
            why = f"promised payment by {state.promise_date} not received; firmer reminder"
            entries = (Entry(TimelineKind.PROMISE_BROKEN, why),)
            state.promise_date = None
            state.promise_broken = True
    action = SmsAction(
        kind=ActionKind.REMINDER if step.kind is StepKind.SMS else ActionKind.SERVICE_SMS,
        template=template,
        touchpoint=state.touchpoints + 1,
        touch_key=step.touch_key,
        counts_for_escalation=step.counts_for_escalation,
    )
    return Effect(state, entries), action


def pause_ended(state: AccountState, *, hand_back_from_specialists: bool = False) -> Effect:
    """A pause with an ``until`` ran out: the cadence starts again from now. On the 1.2 rules
    (``hand_back_from_specialists``) an account the specialists paused until a date comes back to the
    automated cadence then: that is what their pause was for."""
    state = state.model_copy()
    state.paused = False
    state.paused_until = None
    if hand_back_from_specialists and hand_back(state):
        why = "pause ended at its 'until' time; handed back to automated contact, cadence restarts"
        return Effect(state, (Entry(TimelineKind.RESUMED, why),))
    return Effect(state, (Entry(TimelineKind.RESUMED, "pause ended at its 'until' time; cadence restarts"),))


def plan_broken(state: AccountState) -> Effect:
    """An instalment is unpaid after its grace: the plan ends, recorded as broken, and the account returns
    to the overdue cadence, whose first message is the firmer ``plan_broken`` (when SMS may go)."""
    plan = state.plan
    assert plan is not None
    found = plan.next_unpaid()
    state = state.model_copy()
    state.plan = plan.model_copy(update={"status": "broken"})
    state.plan_break_owed = not (state.opted_out or state.sms_undeliverable)
    what = "an instalment"
    if found is not None:
        number, instalment = found
        what = (
            f"instalment {number} of {len(state.plan.instalments)} ({instalment.left} due {instalment.due})"
        )
    why = f"{what} unpaid after its grace; the plan is broken and the overdue cadence resumes"
    return Effect(state, (Entry(TimelineKind.PLAN_BROKEN, why),))


def policy_reloaded(state: AccountState, policy: ContactPolicy, request: RefreshPolicy) -> Effect:
    """The segment's policy as resolved again, with the settings that changed named."""
    state = state.model_copy()
    old, new = state.policy.model_dump(), policy.model_dump()
    changed = sorted(name for name in new if new[name] != old.get(name))
    state.policy = policy
    why = f" ({request.reason})" if request.reason else ""
    what = ", ".join(changed) if changed else "nothing changed"
    entry = Entry(
        TimelineKind.POLICY_REFRESHED, f"segment {state.account.segment} policy reloaded{why}: {what}"
    )
    return Effect(state, (entry,))


def handoff_started(state: AccountState, step: Step) -> Handoff:
    """The hand-off a due call or specialist step makes, with the reason the other side reads first."""
    touchpoint = state.touchpoints + 1
    if step.kind is StepKind.CALL:
        return Handoff(ActionKind.CALL_TASK, touchpoint, call_reason(state), attempt=step.attempt)
    return Handoff(ActionKind.SPECIALIST, touchpoint, specialist_reason(state))


def call_reason(state: AccountState) -> str:
    """Why the phone team gets this call task: what the agent reads first."""
    if state.call_back_at is not None:
        return f"customer asked to be called back at {local_iso(state.account.timezone, state.call_back_at)}"
    if state.phone_attempt:
        return f"attempt {state.phone_attempt} got no outcome"
    if state.opted_out:
        return "customer opted out of SMS"
    if state.sms_undeliverable:
        return "number cannot receive SMS"
    return f"{state.unanswered_sms} unanswered SMS"


def specialist_reason(state: AccountState) -> str:
    """Why the specialists get the account: the reason a signal or a refusal gave, or the attempts."""
    if state.specialist_reason:
        return state.specialist_reason
    if state.phone_attempt:
        return f"{state.phone_attempt} call attempt(s) without result"
    return f"{state.unanswered_sms} unanswered SMS; segment routes to specialists"


def message_context(state: AccountState, now: datetime) -> MessageContext:
    """The only values a message may show: no name, number or full reference. An ended account owes
    nothing a message could ask for (only its opt-out confirmation goes). The consequences of being
    overdue its policy declares, which a post-due reminder states, and what picks the template's variant
    (segment, region, the policy's named variant) travel with them, so the sending activity needs
    nothing else."""
    consequences = state.policy.consequences
    return MessageContext(
        amount_due=state.amount_due if state.outcome is None else Decimal(0),
        currency=state.account.currency,
        due_date=state.account.due_date,
        reference_masked=mask_reference(state.account.account_id),
        days_past_due=days_past_due(state, now),
        promise_date=state.promise_date,
        instalment=_next_instalment(state),
        consequences=consequences if consequences.declared else None,
        variant_key=VariantKey(
            segment=state.account.segment,
            region=state.account.region,
            template_variant=state.policy.template_variant,
        ),
    )


def _next_instalment(state: AccountState) -> InstalmentShown | None:
    """The running plan's next instalment, with what is left of it; None without a running plan."""
    plan = state.plan
    found = None if plan is None or plan.status != "active" else plan.next_unpaid()
    if plan is None or found is None:
        return None
    number, instalment = found
    return InstalmentShown(
        number=number, count=len(plan.instalments), amount=instalment.left, due=instalment.due
    )
