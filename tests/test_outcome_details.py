"""The analytics read the audit log's detail texts (``kindly.analytics.details``): checked here against
the texts the domain itself writes, so that a change of wording fails this test instead of quietly
skewing a report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kindly.analytics import details
from kindly.domain import actions, complaint_effects
from kindly.domain.complaints import ComplaintChannel
from kindly.domain.completions import SmsAction, sms_finished
from kindly.domain.contract import AccountInput, SignalName, TemplateName, TimelineKind
from kindly.domain.effects import ActionKind, Effect, apply_signal
from kindly.domain.experiments import Assignment
from kindly.domain.policy.model import BUILT_IN_POLICIES
from kindly.domain.policy.schedule import Step, StepKind
from kindly.domain.state import AccountState, start_entries

DUE = date(2026, 11, 20)
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
ACCOUNT = AccountInput(
    account_id="ACC-1",
    customer_name="Li Lei",
    phone="+8613800138000",
    timezone="Asia/Shanghai",
    locale="zh-CN",
    amount_due=Decimal("1200.00"),
    due_date=DUE,
    segment="big spenders, north",
    currency="CNY",
)


def state() -> AccountState:
    return AccountState.for_new_account(
        ACCOUNT, BUILT_IN_POLICIES["standard"], DUE - timedelta(days=10), opted_out=False
    )


def written(effect: Effect, kind: TimelineKind) -> str:
    [detail] = [entry.detail for entry in effect.entries if entry.kind == kind]
    return detail


def signal(name: SignalName, payload: dict[str, Any], account: AccountState | None = None) -> Effect:
    return apply_signal(account or state(), name, payload, NOW)


def test_the_start_and_an_experiment_arm() -> None:
    entries = dict(
        start_entries(ACCOUNT, opted_out=True, experiment=Assignment(experiment="tone-2026", arm="gentle"))
    )
    assert details.started(entries[TimelineKind.STARTED]) == details.Started(
        segment="big spenders, north", amount_due=Decimal("1200.00"), currency="CNY", due_date=DUE
    )
    assert details.experiment_arm(entries[TimelineKind.EXPERIMENT_ASSIGNED]) == ("tone-2026", "gentle")
    shadow = dict(
        start_entries(ACCOUNT, opted_out=False, experiment=Assignment(experiment="x", arm="b", shadow=True))
    )
    assert details.experiment_arm(shadow[TimelineKind.EXPERIMENT_ASSIGNED]) == ("x", "b")
    assert details.started("segment standard, 12 CNY due soon") is None


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("STOP", "opt_out"),
        ("HELP", "help"),
        ("I lost my job", "hardship"),
        ("not my loan", "dispute"),
        ("ok", "other"),
    ],
)
def test_a_reply_and_its_intent(text: str, intent: str) -> None:
    effect = signal(SignalName.CUSTOMER_REPLY, {"text": text})
    assert details.reply_intent(written(effect, TimelineKind.REPLY_RECEIVED)) == intent
    if intent in ("hardship", "dispute"):
        assert details.handed_intent(written(effect, TimelineKind.HANDED_TO_PERSON)) == intent


def test_money_received_and_settled() -> None:
    paid = signal(SignalName.REPAYMENT, {"amount": "200.50", "reference": "PAY (1); x"})
    assert details.repayment_amount(written(paid, TimelineKind.REPAYMENT_RECEIVED)) == Decimal("200.50")
    settled = signal(SignalName.SETTLE, {"amount": "900.00", "reference": "SET-(7)"})
    assert details.settlement_amount(written(settled, TimelineKind.SETTLED)) == Decimal("900.00")
    assert details.repayment_amount("received something") is None


def test_promises_by_the_customer_and_on_the_phone_and_a_broken_one() -> None:
    by = (NOW + timedelta(days=3)).date()
    promised = signal(SignalName.PROMISE_TO_PAY, {"date": by.isoformat()})
    assert details.promised_date(written(promised, TimelineKind.PROMISE)) == by
    called = signal(SignalName.CALL_OUTCOME, {"outcome": "promise_to_pay", "promise_date": by.isoformat()})
    assert details.promised_date(written(called, TimelineKind.PROMISE)) == by
    step = Step(kind=StepKind.SMS, template=TemplateName.FOLLOW_UP, touch_key="follow_up")
    broken, _ = actions.sms_started(promised.state, step, NOW + timedelta(days=5))
    assert [entry.kind for entry in broken.entries] == [TimelineKind.PROMISE_BROKEN]


def test_the_template_of_a_sent_sms() -> None:
    action = SmsAction(kind=ActionKind.REMINDER, template=TemplateName.FIRST_OVERDUE, touchpoint=3)
    effect = sms_finished(state(), action, "sent", segments=2, detail="", today=NOW.date())
    assert details.sms_template(written(effect, TimelineKind.SMS_SENT)) == "first_overdue"


def test_each_entry_of_a_complaint_names_its_number() -> None:
    opened = complaint_effects.complaint_opened(state(), ComplaintChannel.CONSOLE, NOW, note="rude caller")
    assert details.complaint_number(written(opened, TimelineKind.COMPLAINT_OPENED)) == 1
    passed = complaint_effects.deadlines_passed(opened.state, NOW + timedelta(days=60))
    assert [(entry.kind, details.complaint_number(entry.detail)) for entry in passed.entries] == [
        (TimelineKind.COMPLAINT_ACKNOWLEDGEMENT_OVERDUE, 1),
        (TimelineKind.COMPLAINT_RESOLUTION_OVERDUE, 1),
    ]
    assert details.complaint_number("complaints are welcome") is None
