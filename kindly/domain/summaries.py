"""Plain-words descriptions of where an account stands, for the Web UI's current details.

They name stages, counts and times in the customer's zone, never a name, phone or amount of
personal detail; they are built outside the workflow sandbox because they format local times.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from kindly.domain.contract import AccountInput, Stage
from kindly.domain.policy.schedule import Step, StepKind
from kindly.domain.state import AccountState


def _when(state: AccountState, step: Step) -> str:
    if step.at is None:
        return "further notice"
    zone = state.account.timezone
    local = step.at.astimezone(ZoneInfo(zone))
    return f"{local.day} {local:%b %H:%M} {zone}"


def describe_position(state: AccountState, step: Step, stage: Stage) -> str:
    """One sentence: what the account waits for and until when."""
    when = _when(state, step)
    if stage in (Stage.REPAID, Stage.SETTLED, Stage.CLOSED):
        return f"Ended: {stage}."
    if step.kind is StepKind.COMPLAINT_DEADLINE:
        which = (step.touch_key or "").removeprefix("complaint-")
        return f"Contact held for a complaint; its {which} is due by {when}."
    if step.kind is StepKind.IDLE:
        if state.complaint_hold:
            return "Contact held for a complaint: until an operator resumes it after its resolution."
        if state.paused:
            return "Paused by an operator: no contact until resumed."
        return "With the specialist team: waiting for repayment, settlement or closure."
    if step.kind is StepKind.RESUME:
        return f"Paused by an operator until {when}; the cadence then restarts."
    if step.kind is StepKind.SERVICE_SMS:
        return f"Answering the customer ({step.template}) at {when}."
    if step.kind is StepKind.CALL:
        if state.phone_attempt:
            return f"Waiting for the outcome of call attempt {state.phone_attempt} until {when}."
        return f"Escalating to the phone team at {when} after {state.unanswered_sms} unanswered SMS."
    if step.kind is StepKind.SPECIALIST:
        return f"Handing over to the specialist team at {when}."
    if stage is Stage.PROMISE:
        return f"Promise to pay by {state.promise_date}: contact held until {when}."
    if state.unanswered_sms:
        return f"Waiting for a reply to SMS {state.sms_sent} until {when}; then {step.template}."
    return f"Next: {step.template} reminder at {when}."


def start_summary(account: AccountInput) -> str:
    """The workflow's static summary in the Web UI: what kind of account it is, never who. The segment,
    the due date and the locale; the workflow id already names the account."""
    return (
        f"Overdue account, segment {account.segment}, due {account.due_date.isoformat()} ({account.locale})"
    )
