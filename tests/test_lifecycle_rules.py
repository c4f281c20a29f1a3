"""Contact rules, delivery semantics and bad input, over simulated weeks on the real test server."""

from __future__ import annotations

from datetime import time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import WORKFLOW_TYPE, Stage
from kindly.domain.policy.calendars import load_calendar
from kindly.settings import Settings
from kindly.store import AuditStore
from tests.conftest import eventually, sms_requests
from tests.http_recorder import RecordingHttpServer
from tests.lifecycle_helpers import (
    STARTED,
    days,
    kinds,
    local_clock,
    local_today,
    make_account,
    start,
    status,
    timeline,
)


@pytest.mark.parametrize(("timezone", "locale"), [("Asia/Shanghai", "zh-CN"), ("America/New_York", "en-US")])
async def test_no_sms_outside_the_window_in_the_customers_zone(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    timezone: str,
    locale: str,
) -> None:
    today = await local_today(env, timezone)
    handle = await start(
        client,
        settings.task_queue,
        make_account(today + timedelta(days=8), timezone=timezone, locale=locale),
    )
    # Replies arriving at all hours ask for HELP; those answers may use the wider service window.
    for _ in range(5):
        await env.sleep(timedelta(days=7, hours=5))
        await handle.signal("customer_reply", {"text": "HELP"})
    await env.sleep(days(2))
    entries = await timeline(handle)
    sent = [e for e in entries if e.kind == "sms_sent"]
    assert len(sent) >= 8
    for entry in sent:
        at = local_clock(entry)
        assert at.utcoffset() == at.astimezone(ZoneInfo(timezone)).utcoffset()
        local = at.time()
        if entry.detail.startswith("help"):
            assert time(8) <= local < time(22), entry
        else:
            assert time(9) <= local < time(20), entry
    local_days = [local_clock(e).date() for e in sent if not e.detail.startswith("help")]
    assert len(local_days) == len(set(local_days)), "at most one reminder per local day"


async def test_a_holiday_is_skipped(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    today = await local_today(env)
    calendar = load_calendar("cn")
    holiday = next((d for d in sorted(calendar.holidays) if d > today + timedelta(days=1)), None)
    if holiday is None:
        pytest.skip("the shipped cn calendar has no future holiday left: add the next year's data")
    # The due-day reminder falls on the holiday; the standard segment uses the cn calendar.
    handle = await start(client, settings.task_queue, make_account(holiday, segment="standard"))
    after_break = holiday
    while calendar.is_holiday(after_break):
        after_break += timedelta(days=1)
    await env.sleep((holiday - today).days * timedelta(days=1) + timedelta(days=1))
    entries = await timeline(handle)
    assert "deferred" in kinds(entries) or "skipped" in kinds(entries)
    for entry in entries:
        if entry.kind == "sms_sent":
            assert not calendar.is_holiday(local_clock(entry).date()), entry


async def test_gateway_5xx_is_retried_with_the_same_key_and_sends_once(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    gateway.respond_with(503, 500)
    today = await local_today(env)
    handle = await start(client, settings.task_queue, make_account(today - timedelta(days=1)))
    await env.sleep(days(1))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
    attempts = gateway.requests_to("/sms")
    assert len(attempts) == 3
    assert len({r.json()["idempotency_key"] for r in attempts}) == 1
    assert len({r.headers["idempotency-key"] for r in attempts}) == 1


async def test_gateway_4xx_is_not_retried_and_is_audited(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    gateway: RecordingHttpServer,
    store: AuditStore,
) -> None:
    gateway.respond_with(422)
    today = await local_today(env)
    account = make_account(today - timedelta(days=1))
    handle = await start(client, settings.task_queue, account)
    await env.sleep(days(1))
    await eventually(lambda: timeline(handle), lambda t: "sms_failed" in kinds(t))
    assert len(gateway.requests_to("/sms")) == 1
    assert (await status(handle)).sms_sent == 0
    failed = [row for row in store.audit_for(account.account_id) if row.kind == "sms_failed"]
    assert len(failed) == 1 and failed[0].outcome == "rejected"
    # The cadence goes on: the next touch a week later is sent normally.
    await env.sleep(days(7))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)


async def test_every_decision_reaches_the_audit_log(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    gateway: RecordingHttpServer,
    store: AuditStore,
) -> None:
    today = await local_today(env)
    account = make_account(today - timedelta(days=1))
    handle = await start(client, settings.task_queue, account)
    await env.sleep(days(1))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
    await handle.signal("pause", {"reason": "operator check"})
    await handle.signal("resume", {})
    await handle.signal("close", {"reason": "test over"})
    await handle.result()
    audited = [row.kind for row in store.audit_for(account.account_id)]
    for kind in ("started", "sms_sent", "paused", "resumed", "closed"):
        assert kind in audited, (kind, audited)
    assert audited.count("sms_sent") == 1
    sms_row = next(r for r in store.audit_for(account.account_id) if r.kind == "sms_sent")
    assert sms_row.template == "first_overdue" and sms_row.provider_message_id
    outbox = store.outbox_for(account.account_id)
    assert [(o.status, o.touchpoint) for o in outbox] == [("sent", 1)]


async def test_starting_an_open_account_again_does_not_create_a_second_workflow(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    today = await local_today(env)
    account = make_account(today + timedelta(days=20))
    first = await start(client, settings.task_queue, account)
    again = await start(client, settings.task_queue, account)
    assert again.id == first.id == f"overdue-{account.account_id}"
    assert again.result_run_id == first.result_run_id


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "Mars/Olympus_Mons"),
        ("phone", "13800138000"),
        ("locale", "fr-FR"),
        ("amount_due", "-10"),
        ("due_date", "2026-02-30"),
    ],
)
async def test_bad_start_input_fails_clearly_naming_the_field(
    env: WorkflowEnvironment, client: Client, settings: Settings, field: str, value: str
) -> None:
    good = make_account((await local_today(env)) + timedelta(days=3)).model_dump(mode="json")
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        args=[{**good, field: value}],
        id=f"overdue-bad-{field}",
        task_queue=settings.task_queue,
    )
    STARTED.append(handle)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    assert field in cause.message


async def test_malformed_signals_are_rejected_and_the_workflow_carries_on(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    today = await local_today(env)
    handle = await start(client, settings.task_queue, make_account(today - timedelta(days=1)))
    bad = [
        ("repayment", {"amount": "-5", "reference": "X"}, "amount"),
        ("repayment", "fifty", "payload"),
        ("customer_reply", {"txt": "hi"}, "text"),
        ("pause", {"reason": "x", "until": "tomorrow"}, "until"),
        ("promise_to_pay", {"date": "2020-01-01"}, "date"),
        ("call_outcome", {"outcome": "maybe"}, "outcome"),
        ("call_outcome", {"outcome": "promise_to_pay"}, "promise_date"),
        ("update_contact", {"timezone": "Nowhere/City"}, "timezone"),
        ("update_contact", {"locale": "xx"}, "locale"),
        ("resume", {}, "not paused"),
        ("settle", {"amount": "abc", "reference": "S"}, "amount"),
    ]
    for name, payload, _ in bad:
        await handle.signal(name, payload)
    rejected = await eventually(
        lambda: timeline(handle),
        lambda t: sum(e.kind == "signal_rejected" for e in t) == len(bad),
    )
    details = [e.detail for e in rejected if e.kind == "signal_rejected"]
    for (name, _, field), detail in zip(bad, details, strict=True):
        assert detail.startswith(name) and field in detail, (field, detail)
    await env.sleep(days(1))
    current = await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
    assert current.stage is Stage.OVERDUE and current.amount_due == Decimal("1500.00")
    await handle.signal("update_contact", {"phone": "+8613900139000", "locale": "en-US"})
    await env.sleep(days(7))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 2)
    last = sms_requests(gateway)[-1]
    assert last["to"] == "+8613900139000" and "Dear customer" in last["body"]


async def test_customers_stated_window_narrows_contact(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    today = await local_today(env)
    handle = await start(
        client,
        settings.task_queue,
        make_account(today + timedelta(days=8), contact_after="15:00", contact_before="17:00"),
    )
    await env.sleep(days(10))
    changed_at = await env.get_current_time()
    await handle.signal("update_contact", {"contact_after": "11:00", "contact_before": "12:00"})
    await env.sleep(days(10))
    sent = [e for e in await timeline(handle) if e.kind == "sms_sent"]
    assert len(sent) >= 3
    for entry in sent:
        local = local_clock(entry).time()
        if local_clock(entry) < changed_at:
            assert time(15) <= local < time(17), entry
        else:
            assert time(11) <= local < time(12), entry
    assert any(local_clock(e) >= changed_at for e in sent), "a reminder after the change was checked"


async def test_decisions_reach_the_audit_log_without_waiting_for_the_next_send(
    env: WorkflowEnvironment, client: Client, settings: Settings, store: AuditStore
) -> None:
    today = await local_today(env)
    account = make_account(today + timedelta(days=20))  # first reminder in about two weeks
    handle = await start(client, settings.task_queue, account)
    await eventually(lambda: status(handle), lambda s: s.next_touchpoint_at is not None)

    async def audited() -> list[str]:
        return [row.kind for row in store.audit_for(account.account_id)]

    assert "started" in await eventually(audited, lambda kinds_: "started" in kinds_)
