"""Account lifecycles over weeks of simulated time, on the real time-skipping Temporal server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import (
    AccountInput,
    AccountResult,
    AccountStatus,
    Outcome,
    Stage,
    TimelineKind,
)
from kindly.errors import ConfigurationError
from kindly.programs.worker import build_worker
from kindly.settings import Settings
from tests.conftest import eventually, sms_requests
from tests.http_recorder import RecordingHttpServer
from tests.lifecycle_helpers import days, kinds, local_today, make_account, start, status, timeline


async def test_pre_due_reminder_then_paid_in_full(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    today = await local_today(env)
    account = make_account(today + timedelta(days=10))
    handle = await start(client, settings.task_queue, account)
    await env.sleep(days(4))
    current = await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
    assert current.stage is Stage.PRE_DUE
    sent = sms_requests(gateway)
    assert [m["template"] for m in sent] == ["pre_due"]
    assert sent[0]["to"] == account.phone
    assert "Wang" not in sent[0]["body"] and account.account_id not in sent[0]["body"]
    assert account.account_id[-4:] in sent[0]["body"]

    await handle.signal("repayment", {"amount": "1500.00", "reference": "PAY-1"})
    result = await handle.result()
    assert result.outcome is Outcome.REPAID
    assert result.amount_collected == Decimal("1500.00")
    assert "repaid" in kinds(await timeline(handle))


async def _overdue_account_with_first_sms(
    env: WorkflowEnvironment, client: Client, settings: Settings, **overrides: Any
) -> tuple[AccountInput, WorkflowHandle[Any, AccountResult]]:
    """An account one day overdue whose first-overdue SMS has just gone out."""
    today = await local_today(env, overrides.get("timezone", "Asia/Shanghai"))
    account = make_account(today - timedelta(days=1), **overrides)
    handle = await start(client, settings.task_queue, account)
    await env.sleep(days(1))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
    return account, handle


async def test_three_unanswered_sms_escalate_to_phone_then_specialist(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    account, handle = await _overdue_account_with_first_sms(env, client, settings)
    await env.sleep(days(7))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 2)
    await env.sleep(days(7))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 3)
    assert (await status(handle)).unanswered_sms == 3
    assert gateway.requests_to("/phone") == []

    await env.sleep(days(7))
    current = await eventually(lambda: status(handle), lambda s: s.stage is Stage.PHONE)
    assert current.sms_sent == 3, "the fourth touch is a call, not an SMS"
    calls = [r.json() for r in gateway.requests_to("/phone")]
    assert [c["attempt"] for c in calls] == [1]
    assert calls[0]["account_id"] == account.account_id and calls[0]["phone"] == account.phone

    await handle.signal("call_outcome", {"outcome": "no_answer"})
    await eventually(lambda: env.sleep(timedelta(hours=1)), lambda _: len(gateway.requests_to("/phone")) == 2)
    assert gateway.requests_to("/phone")[1].json()["attempt"] == 2
    await handle.signal("call_outcome", {"outcome": "no_answer"})
    current = await eventually(lambda: status(handle), lambda s: s.stage is Stage.SPECIALIST)
    handoff = gateway.requests_to("/specialist")[0].json()
    assert handoff["account_id"] == account.account_id and "phone" not in handoff
    assert {"escalated_phone", "call_outcome", "escalated_specialist"} <= set(kinds(await timeline(handle)))
    keys = [r.json()["idempotency_key"] for r in gateway.requests]
    assert len(keys) == len(set(keys)), "every touchpoint has its own idempotency key"
    await handle.signal("close", {"reason": "sold to agency"})
    assert (await handle.result()).outcome is Outcome.CLOSED


async def test_call_without_outcome_gets_second_attempt_after_two_days(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    _, handle = await _overdue_account_with_first_sms(env, client, settings)
    await env.sleep(days(21))
    await eventually(lambda: status(handle), lambda s: s.stage is Stage.PHONE)
    await env.sleep(days(3))
    await eventually(lambda: env.sleep(timedelta(hours=1)), lambda _: len(gateway.requests_to("/phone")) == 2)
    await env.sleep(days(3))
    await eventually(lambda: status(handle), lambda s: s.stage is Stage.SPECIALIST)
    await handle.signal("settle", {"amount": "900", "reference": "SET-1"})
    result = await handle.result()
    assert result.outcome is Outcome.SETTLED and result.amount_collected == Decimal("900")


async def test_reply_resets_unanswered_count(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    _, handle = await _overdue_account_with_first_sms(env, client, settings)
    await env.sleep(days(7))
    await eventually(lambda: status(handle), lambda s: s.unanswered_sms == 2)
    await handle.signal("customer_reply", {"text": "I will pay on Friday"})
    await eventually(lambda: status(handle), lambda s: s.unanswered_sms == 0)
    for _ in range(2):
        await env.sleep(days(7))
    current = await eventually(lambda: status(handle), lambda s: s.sms_sent == 4)
    assert current.stage is Stage.OVERDUE and current.unanswered_sms == 2
    assert gateway.requests_to("/phone") == []
    entries = await timeline(handle)
    reply = next(e for e in entries if e.kind == "reply_received")
    assert "Friday" not in reply.detail, "reply text may hold personal data and stays out"


async def test_partial_then_full_repayment(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    _, handle = await _overdue_account_with_first_sms(env, client, settings)
    await handle.signal("repayment", {"amount": 500, "reference": "P-1"})
    await handle.signal("repayment", {"amount": 500, "reference": "P-1"})  # the same payment again
    current = await eventually(lambda: status(handle), lambda s: s.amount_due == Decimal("1000.00"))
    assert current.unanswered_sms == 0
    await env.sleep(days(7))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 2)
    assert "1,000.00" in sms_requests(gateway)[-1]["body"]
    await handle.signal("repayment", {"amount": "1000.00", "reference": "P-2"})
    result = await handle.result()
    assert result.outcome is Outcome.REPAID and result.amount_collected == Decimal("1500.00")
    rejected = [e for e in await timeline(handle) if e.kind == "signal_rejected"]
    assert len(rejected) == 1 and "already credited" in rejected[0].detail


async def test_pause_and_resume_restart_cadence_without_a_burst(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    _, handle = await _overdue_account_with_first_sms(env, client, settings)
    await handle.signal("pause", {"reason": "customer in hospital"})
    current = await eventually(lambda: status(handle), lambda s: s.paused)
    assert current.stage is Stage.PAUSED and current.next_touchpoint_at is None
    await env.sleep(days(30))
    assert len(sms_requests(gateway)) == 1
    await handle.signal("resume", {})
    await env.sleep(days(1))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 2)
    await env.sleep(days(3))
    assert len(sms_requests(gateway)) == 2, "four weeks of missed touches became one message"
    await env.sleep(days(4))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 3)
    assert {"paused", "resumed"} <= set(kinds(await timeline(handle)))


async def test_pause_until_ends_by_itself(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    _, handle = await _overdue_account_with_first_sms(env, client, settings)
    until = (await env.get_current_time()) + days(10)
    await handle.signal("pause", {"reason": "dispute review", "until": until.isoformat()})
    await env.sleep(days(11))
    await eventually(lambda: status(handle), lambda s: not s.paused and s.sms_sent == 2)


async def test_promise_kept(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    _, handle = await _overdue_account_with_first_sms(env, client, settings)
    promised = await local_today(env) + timedelta(days=10)
    await handle.signal("promise_to_pay", {"date": promised.isoformat()})
    await eventually(lambda: status(handle), lambda s: s.stage is Stage.PROMISE)
    await env.sleep(days(9))
    assert len(sms_requests(gateway)) == 1, "no contact while a promise stands"
    await handle.signal("repayment", {"amount": "1500", "reference": "P-9"})
    assert (await handle.result()).outcome is Outcome.REPAID


async def test_broken_promise_resumes_with_firmer_template(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    _, handle = await _overdue_account_with_first_sms(env, client, settings)
    promised = await local_today(env) + timedelta(days=10)
    await handle.signal("promise_to_pay", {"date": promised.isoformat()})
    await env.sleep(days(10))
    assert len(sms_requests(gateway)) == 1
    await env.sleep(days(2))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 2)
    assert sms_requests(gateway)[-1]["template"] == "broken_promise"
    assert "promise_broken" in kinds(await timeline(handle))


async def test_stop_opts_out_with_one_confirmation_then_phone(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    _, handle = await _overdue_account_with_first_sms(env, client, settings)
    await handle.signal("customer_reply", {"text": " stop "})
    await env.sleep(timedelta(hours=14))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 2)
    assert sms_requests(gateway)[-1]["template"] == "opt_out_confirmation"
    await env.sleep(days(8))
    await eventually(lambda: status(handle), lambda s: s.stage is Stage.PHONE)
    assert len(sms_requests(gateway)) == 2, "nothing by SMS after the confirmation"
    await handle.signal("customer_reply", {"text": "HELP"})
    await env.sleep(days(1))
    assert len(sms_requests(gateway)) == 2, "an opted-out customer gets no HELP text either"


async def test_help_gets_one_reply_with_hotline(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    _, handle = await _overdue_account_with_first_sms(env, client, settings)
    await handle.signal("customer_reply", {"text": "帮助"})
    await handle.signal("customer_reply", {"text": "help"})
    await env.sleep(timedelta(hours=14))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 2)
    help_sms = sms_requests(gateway)[-1]
    assert help_sms["template"] == "help" and settings.hotline in help_sms["body"]
    await env.sleep(days(1))
    assert [m["template"] for m in sms_requests(gateway)].count("help") == 1


async def test_settle_and_close_end_the_workflow(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    _, settled = await _overdue_account_with_first_sms(env, client, settings)
    await settled.signal("settle", {"amount": "1200.00", "reference": "S-1"})
    result = await settled.result()
    assert result.outcome is Outcome.SETTLED and result.amount_collected == Decimal("1200.00")
    _, closed = await _overdue_account_with_first_sms(env, client, settings)
    await closed.signal("close", {"reason": "written off"})
    assert (await closed.result()).outcome is Outcome.CLOSED
    assert (await status(closed)).stage is Stage.CLOSED


async def test_hardship_reply_hands_the_account_to_a_person(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    _, handle = await _overdue_account_with_first_sms(env, client, settings)
    await handle.signal("customer_reply", {"text": "我失业了，暂时还不起"})
    current = await eventually(lambda: status(handle), lambda s: s.stage is Stage.SPECIALIST)
    handoff = gateway.requests_to("/specialist")[0].json()
    assert "hardship" in handoff["reason"]
    await env.sleep(days(30))
    assert len(sms_requests(gateway)) == 1 and current.sms_sent == 1, "no automated contact after it"
    entries = await timeline(handle)
    assert "handed_to_person" in kinds(entries)
    assert all("失业" not in e.detail for e in entries), "the reply's words stay out of the timeline"


async def test_opt_out_is_stored_and_survives_a_new_workflow_for_the_same_number(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    _, first = await _overdue_account_with_first_sms(env, client, settings)
    await first.signal("customer_reply", {"text": "UNSUBSCRIBE"})
    await env.sleep(timedelta(hours=14))
    await eventually(lambda: status(first), lambda s: s.sms_sent == 2)  # the one confirmation
    today = await local_today(env)
    second = await start(client, settings.task_queue, make_account(today - timedelta(days=1)))
    entries = await eventually(lambda: timeline(second), lambda t: "opted_out" in kinds(t))
    opted_out = next(e for e in entries if e.kind is TimelineKind.OPTED_OUT)
    assert "earlier" in opted_out.detail
    await env.sleep(days(2))
    assert len(sms_requests(gateway)) == 2, "the new workflow sends nothing to the opted-out number"
    assert (await status(second)).stage is Stage.PHONE


@pytest.mark.parametrize(
    ("segment", "reply"), [("plain", "This is not my loan"), ("own_words", "I filed a CHARGEBACK")]
)
async def test_dispute_reply_hands_the_account_to_a_person(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    gateway: RecordingHttpServer,
    segment: str,
    reply: str,
) -> None:
    _, handle = await _overdue_account_with_first_sms(env, client, settings, segment=segment)
    await handle.signal("customer_reply", {"text": reply})
    await eventually(lambda: status(handle), lambda s: s.stage is Stage.SPECIALIST)
    assert "dispute" in gateway.requests_to("/specialist")[0].json()["reason"]


async def test_worker_refuses_to_start_when_templates_exceed_the_segment_limit(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    strict = settings.model_copy(update={"max_sms_segments": 1})
    with pytest.raises(ConfigurationError) as refused:
        async with build_worker(env.client, strict):
            pass
    assert "segments" in str(refused.value)


async def test_instalment_offer_goes_once_after_the_first_overdue_weeks(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    _, handle = await _overdue_account_with_first_sms(env, client, settings)
    for sent in range(2, 6):
        await env.sleep(days(7))
        await eventually(lambda: status(handle), sms_count(sent))
        await handle.signal("customer_reply", {"text": "ok"})  # answered: no phone escalation
    templates = [m["template"] for m in sms_requests(gateway)]
    assert templates == ["first_overdue", "follow_up", "follow_up", "instalment_offer", "follow_up"]


def sms_count(expected: int) -> Callable[[AccountStatus], bool]:
    """A predicate bound to ``expected`` now, not to a loop variable later."""
    return lambda current: current.sms_sent == expected
