"""What Kindly does when the SMS provider refuses a message without sending it.

* **Its per-number frequency limit** (``FrequencyLimitedError``, e.g. Alibaba Cloud's
  ``isv.BUSINESS_LIMIT_CONTROL``): the touch is deferred to the next day's window and recorded so (in the
  timeline and the audit log, and as a ``provider_limit`` deferral); the outbox claim is released, so the
  next day the same touchpoint goes with the same idempotency key.
* **The lender's account** (``ProviderAccountError``: balance, signature, credentials): one provider alarm
  opens (an ERROR in the log, no personal data), every later send is held without reaching the provider
  (the circuit), the touches wait for their next windows, and once an operator clears the alarm
  (``kindly alarms clear``) the next window sends. ``GET /alarms`` and ``kindly alarms`` show it, and so
  does the console's dashboard.

The provider is a scripted stand-in at the ``SmsProvider`` boundary (the real Alibaba Cloud and Tencent
Cloud providers are tested against their sandboxes elsewhere); everything else is real: the time-skipping
Temporal server, a worker, the database, the API and the CLI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Replayer
from typer.testing import CliRunner

import kindly.programs.worker as worker_module
from activities.messaging import PROVIDER_ALARMS
from activities.sms_providers import OutgoingSms, ProviderReceipt
from kindly.domain.completions import (
    FREQUENCY_LIMITED,
    PROVIDER_BLOCKED,
    SmsAction,
    sms_finished,
    sms_result,
)
from kindly.domain.contract import AccountInput, TemplateName, TimelineEntry, TimelineKind
from kindly.domain.effects import ActionKind
from kindly.domain.policy.model import BUILT_IN_POLICIES
from kindly.domain.policy.schedule import DEFERRAL_REASONS
from kindly.domain.state import AccountState
from kindly.errors import DeliveryError, FrequencyLimitedError, ProviderAccountError
from kindly.programs.cli import app as cli_app
from kindly.settings import Settings
from kindly.store import AuditLog, AuditStore, ProviderAlarms, make_engine
from tests.conftest import eventually
from tests.fault_helpers import zone_at_local_hour
from tests.lifecycle_helpers import make_account, start, status, timeline
from tests.test_api import AUTH, api_settings, serving
from tests.test_cli import cli_env
from tests.test_console_auth import console_site, signed_in
from tests.test_messaging import ACCOUNT, KEY, activities, decision, keys, request
from workflows.metrics import DEFERRALS, SMS_SENT, WorkflowMetrics
from workflows.overdue_account import OverdueAccountWorkflow

LIMIT = "isv.BUSINESS_LIMIT_CONTROL"
BALANCE = "isv.AMOUNT_NOT_ENOUGH"
WINDOW = (time(9), time(20))
"""The plain segment's reminder window, in the customer's time."""
PHONE = "+8613800138000"


@dataclass
class Call:
    sms: OutgoingSms
    at: datetime
    """When the attempt was scheduled: the test server's simulated time inside a worker."""


@dataclass
class ScriptedProvider:
    """An SMS provider that refuses its next sends as scripted (``refuse``), then takes every message;
    it keeps every call, so a test counts what reached the provider."""

    name: str = "aliyun"
    refusals: list[DeliveryError] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def refuse(self, *errors: DeliveryError) -> None:
        self.refusals.extend(errors)

    async def send(self, sms: OutgoingSms) -> ProviderReceipt:
        at = activity.info().current_attempt_scheduled_time if activity.in_activity() else datetime.now(UTC)
        self.calls.append(Call(sms, at))
        if self.refusals:
            raise self.refusals.pop(0)
        return ProviderReceipt(provider=self.name, provider_message_id=f"ali-{len(self.calls)}")


# --- the completions, pure ------------------------------------------------------------------------

DUE = date(2026, 11, 20)
TODAY = date(2026, 11, 25)
WINDOW_END = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
FOLLOW_UP = SmsAction(
    kind=ActionKind.REMINDER,
    template=TemplateName.FOLLOW_UP,
    touchpoint=4,
    touch_key="follow_up",
    counts_for_escalation=True,
)
HELP = SmsAction(kind=ActionKind.SERVICE_SMS, template=TemplateName.HELP, touchpoint=4)


def account_state(**fields: Any) -> AccountState:
    account = AccountInput(
        account_id="ACC-1",
        customer_name="Li Lei",
        phone=PHONE,
        timezone="Asia/Shanghai",
        locale="zh-CN",
        amount_due=Decimal("1200.00"),
        due_date=DUE,
    )
    state = AccountState.for_new_account(account, BUILT_IN_POLICIES["standard"], DUE, opted_out=False)
    defaults: dict[str, Any] = {
        "touchpoints": 3,
        "sms_sent": 3,
        "unanswered_sms": 2,
        "done_touches": ["D-7", "D-0", "D+1"],
        "sms_days": [DUE - timedelta(days=7), DUE, DUE + timedelta(days=1)],
        "last_touch_date": DUE + timedelta(days=1),
        "pending_service": [TemplateName.HELP],
    }
    return state.model_copy(update=defaults | fields)


@pytest.mark.parametrize("action", [FOLLOW_UP, HELP])
@pytest.mark.parametrize("status_", [FREQUENCY_LIMITED, PROVIDER_BLOCKED])
def test_a_provider_refusal_defers_the_touch_to_the_next_window_and_nothing_else(
    status_: str, action: SmsAction
) -> None:
    state = account_state()
    before = state.model_dump()
    effect = sms_finished(state, action, status_, segments=0, detail=LIMIT, today=TODAY, not_after=WINDOW_END)
    assert state.model_dump() == before, "the input state was changed in place"
    # Only the wait changes: the touchpoint stays unused (the same key goes next time), a service reply
    # stays owed, no cap, cadence or escalation counts it.
    assert effect.state.model_dump() == state.model_copy(update={"sms_not_before": WINDOW_END}).model_dump()
    [entry] = effect.entries
    assert entry.kind is TimelineKind.DEFERRED
    assert not entry.audited, "the activity wrote no row of it: the audit trail writes it"
    assert effect.stale is None and not effect.store_opt_out


def test_the_timeline_says_which_refusal_with_the_providers_code() -> None:
    limited = sms_finished(
        account_state(),
        FOLLOW_UP,
        FREQUENCY_LIMITED,
        segments=0,
        detail=LIMIT,
        today=TODAY,
        not_after=WINDOW_END,
    )
    assert limited.entries[0].detail == f"follow_up deferred: provider frequency limit ({LIMIT}); next window"
    blocked = sms_finished(
        account_state(), FOLLOW_UP, PROVIDER_BLOCKED, segments=0, detail=BALANCE, today=TODAY, not_after=None
    )
    assert blocked.entries[0].detail == (
        f"follow_up held: sending stopped by a provider alarm ({BALANCE}); next window"
    )


def test_without_a_window_end_the_touch_waits_for_the_next_local_day() -> None:
    effect = sms_finished(
        account_state(), FOLLOW_UP, FREQUENCY_LIMITED, segments=0, detail=LIMIT, today=TODAY, not_after=None
    )
    assert effect.state.sms_not_before == datetime(2026, 11, 26, tzinfo=ZoneInfo("Asia/Shanghai"))


@dataclass(frozen=True)
class Result:
    status: str
    segments: int = 0
    detail: str = ""
    retry_after_seconds: int | None = None


def test_the_activitys_answer_is_read_as_sms_finished_reads_it() -> None:
    state = account_state()
    for answer in (
        Result("sent", 2),
        Result("rejected", 1, "bad number"),
        Result(FREQUENCY_LIMITED, 0, LIMIT),
    ):
        via_result = sms_result(state, FOLLOW_UP, answer, today=TODAY, not_after=WINDOW_END)
        direct = sms_finished(
            state,
            FOLLOW_UP,
            answer.status,
            segments=answer.segments,
            detail=answer.detail,
            today=TODAY,
            not_after=WINDOW_END,
        )
        assert via_result.state.model_dump() == direct.state.model_dump()
        assert via_result.entries == direct.entries


def test_a_minutes_limit_is_tried_again_a_minute_later_and_a_days_in_the_next_window() -> None:
    state = account_state()
    refused_at = WINDOW_END - timedelta(hours=2)
    minute = Result(FREQUENCY_LIMITED, 0, LIMIT, retry_after_seconds=60)
    soon = sms_result(state, FOLLOW_UP, minute, today=TODAY, not_after=WINDOW_END, now=refused_at)
    assert soon.state.sms_not_before == refused_at + timedelta(minutes=1)
    assert "again at" in soon.entries[0].detail
    # An hour's limit met in the window's last minutes: the next window, not the night.
    late = WINDOW_END - timedelta(minutes=5)
    hour = Result(FREQUENCY_LIMITED, 0, LIMIT, retry_after_seconds=3600)
    later = sms_result(state, FOLLOW_UP, hour, today=TODAY, not_after=WINDOW_END, now=late)
    assert later.state.sms_not_before == WINDOW_END
    day = sms_result(
        state, FOLLOW_UP, Result(FREQUENCY_LIMITED, 0, LIMIT), today=TODAY, not_after=WINDOW_END, now=late
    )
    assert day.state.sms_not_before == WINDOW_END and "next window" in day.entries[0].detail
    assert soon.state.touchpoints == state.touchpoints  # the touchpoint's key goes again


class _Counter:
    def __init__(self, adds: list[tuple[str, int, dict[str, str]]], name: str) -> None:
        self._adds, self._name = adds, name

    def add(self, value: int, attributes: dict[str, str]) -> None:
        self._adds.append((self._name, value, attributes))


class _Meter:
    def __init__(self) -> None:
        self.adds: list[tuple[str, int, dict[str, str]]] = []

    def create_counter(self, name: str, description: str, unit: str) -> _Counter:
        return _Counter(self.adds, name)

    def with_additional_attributes(self, attributes: dict[str, str]) -> _Meter:
        return self  # an activity's meter adds the activity's own attributes, which these tests ignore


def test_a_provider_refusal_counts_as_a_deferral_in_the_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    meter = _Meter()
    monkeypatch.setattr(workflow, "metric_meter", lambda: meter)
    metrics = WorkflowMetrics()
    for outcome in ("sent", FREQUENCY_LIMITED, PROVIDER_BLOCKED):
        metrics.sms("follow_up", outcome)
    assert [(name, attributes) for name, _, attributes in meter.adds if name == DEFERRALS] == [
        (DEFERRALS, {"reason": "provider_limit"}),
        (DEFERRALS, {"reason": "provider_alarm"}),
    ]
    assert [attributes["outcome"] for name, _, attributes in meter.adds if name == SMS_SENT] == [
        "sent",
        FREQUENCY_LIMITED,
        PROVIDER_BLOCKED,
    ]
    assert {"provider_limit", "provider_alarm"} <= DEFERRAL_REASONS


# --- the activity, on SQLite ------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Any) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'activity.db'}")
    yield engine
    engine.dispose()


async def test_a_frequency_limited_send_releases_its_claim_and_the_same_key_goes_later(
    engine: Engine,
) -> None:
    provider = ScriptedProvider()
    provider.refuse(FrequencyLimitedError("触发号码天级流控 for 13800138000", code=LIMIT))
    messaging, store = activities(engine, provider), AuditStore(engine)
    limited = await ActivityEnvironment().run(messaging.send_sms, request(decision("d1")))
    assert (limited.status, limited.detail, limited.provider_message_id) == (FREQUENCY_LIMITED, LIMIT, None)
    assert keys(store) == ["d1"], "the decisions are written, no row says the SMS was sent or failed"
    [row] = store.outbox_for(ACCOUNT)
    assert (row.status, row.attempts) == ("pending", 1), "released: nothing went out"
    assert ProviderAlarms(engine).alarms() == [], "a number's limit is not the lender's account"
    # The next window: the same touchpoint's key is claimed again and the message goes, once.
    sent = await ActivityEnvironment().run(messaging.send_sms, request(decision("d1"), decision("d2")))
    assert sent.status == "sent"
    [row] = store.outbox_for(ACCOUNT)
    assert (row.status, row.attempts) == ("sent", 2)
    assert [call.sms.idempotency_key for call in provider.calls] == [KEY, KEY]
    assert keys(store) == ["d1", "d2", "sms_sent"]


async def test_a_refused_account_opens_one_alarm_and_holds_every_later_send(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    provider = ScriptedProvider()
    provider.refuse(ProviderAccountError(f"账户余额不足 (sending to {PHONE})", code=BALANCE))
    messaging, store, alarms = activities(engine, provider), AuditStore(engine), ProviderAlarms(engine)
    meter, environment = _Meter(), ActivityEnvironment()
    environment.metric_meter = meter  # type: ignore[assignment]
    with caplog.at_level(logging.ERROR, logger="kindly.alarms"):
        blocked = await environment.run(messaging.send_sms, request(decision("d1")))
    assert (blocked.status, blocked.detail) == (PROVIDER_BLOCKED, BALANCE)
    [alarm] = alarms.alarms()
    assert (alarm.provider, alarm.code, alarm.count) == ("aliyun", BALANCE, 1)
    assert PHONE not in alarm.message and "13800138000" not in alarm.message
    [logged] = [record for record in caplog.records if record.name == "kindly.alarms"]
    assert logged.levelno == logging.ERROR
    text = logged.getMessage()
    assert f"provider alarm {alarm.id} opened" in text and "aliyun" in text and BALANCE in text
    assert ACCOUNT not in text and "13800138000" not in text and KEY not in text
    assert meter.adds == [(PROVIDER_ALARMS, 1, {"provider": "aliyun", "code": BALANCE})]
    [row] = store.outbox_for(ACCOUNT)
    assert (row.status, row.attempts) == ("pending", 1), "released: nothing went out"

    # The circuit: later sends, of this touchpoint or another account's, do not reach the provider.
    other = request(decision("d2"), key="wf-2/run-2/tp-1")
    for held_request in (request(decision("d1")), other):
        held = await ActivityEnvironment().run(messaging.send_sms, held_request)
        assert (held.status, held.detail) == (PROVIDER_BLOCKED, BALANCE)
    assert len(provider.calls) == 1
    assert "d2" in [entry.event_key.rsplit("/", 1)[-1] for entry in AuditLog(engine).audit_for(ACCOUNT)]
    assert [entry.attempts for entry in store.outbox_for(ACCOUNT)] == [1], "held before the claim"
    assert alarms.alarms()[0].count == 1, "a held send is not another refusal"

    # Cleared: the next send goes.
    assert alarm.id is not None
    alarms.clear(alarm.id, "ops", datetime.now(UTC))
    sent = await ActivityEnvironment().run(messaging.send_sms, request(decision("d1")))
    assert sent.status == "sent" and len(provider.calls) == 2


async def test_an_alarm_another_worker_opened_holds_sends_within_seconds(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker trusts "no alarm" for a few seconds (one query per send saved); an open alarm never."""
    import activities.messaging as messaging_module

    clock = [1000.0]
    monkeypatch.setattr(messaging_module, "monotonic", lambda: clock[0])
    provider = ScriptedProvider()
    messaging = activities(engine, provider)
    first = await ActivityEnvironment().run(messaging.send_sms, request(key="wf-1/run-1/tp-1"))
    assert first.status == "sent"
    ProviderAlarms(engine).raise_alarm("aliyun", BALANCE, "balance", datetime.now(UTC))
    soon = await ActivityEnvironment().run(messaging.send_sms, request(key="wf-1/run-1/tp-2"))
    assert soon.status == "sent", "within the recheck the worker has not asked again"
    clock[0] += messaging_module.CIRCUIT_RECHECK_SECONDS
    later = await ActivityEnvironment().run(messaging.send_sms, request(key="wf-1/run-1/tp-3"))
    assert later.status == PROVIDER_BLOCKED and len(provider.calls) == 2


# --- accounts on the time-skipping server ---------------------------------------------------------


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
def settings(settings: Settings, provider: ScriptedProvider, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The shared test settings; the worker the ``client`` fixture builds sends through ``provider``."""
    monkeypatch.setattr(worker_module, "build_sms_provider", lambda _settings, _http: provider)
    return settings


def _local(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


def _in_window(moment: datetime) -> bool:
    return WINDOW[0] <= moment.time() < WINDOW[1]


async def _sleep_until(env: WorkflowEnvironment, moment: datetime) -> None:
    await env.sleep(max(moment - await env.get_current_time(), timedelta(seconds=1)))


async def _overdue_account(
    env: WorkflowEnvironment, client: Client, settings: Settings, zone: str
) -> tuple[WorkflowHandle[Any, Any], datetime]:
    """An account due yesterday, in ``zone``; its first-overdue reminder's planned moment."""
    today = _local(await env.get_current_time(), zone).date()
    account = make_account(today - timedelta(days=1), timezone=zone, locale="en-US")
    handle = await start(client, settings.task_queue, account)
    planned = await eventually(lambda: status(handle), lambda s: s.next_touchpoint_at is not None)
    assert planned.next_touchpoint_at is not None
    return handle, planned.next_touchpoint_at


def _details(entries: list[TimelineEntry], text: str) -> list[TimelineEntry]:
    return [entry for entry in entries if entry.kind is TimelineKind.DEFERRED and text in entry.detail]


async def _next_touch(handle: WorkflowHandle[Any, Any], zone: str, after: date) -> datetime:
    """The next touch's moment, once the account has planned it for a day after ``after``."""
    current = await eventually(
        lambda: status(handle),
        lambda s: s.next_touchpoint_at is not None and _local(s.next_touchpoint_at, zone).date() > after,
    )
    assert current.next_touchpoint_at is not None
    return current.next_touchpoint_at


async def test_a_frequency_limited_reminder_goes_the_next_day_with_the_same_key(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    provider: ScriptedProvider,
    store: AuditStore,
) -> None:
    provider.refuse(FrequencyLimitedError("触发号码天级流控Permits:10", code=LIMIT))
    zone = zone_at_local_hour(await env.get_current_time(), 3)
    handle, planned = await _overdue_account(env, client, settings, zone)
    today = _local(planned, zone).date()
    key = f"{handle.id}/{handle.result_run_id}/tp-1"

    await _sleep_until(env, planned + timedelta(minutes=30))
    entries = await eventually(
        lambda: timeline(handle), lambda found: bool(_details(found, "frequency limit"))
    )
    [deferred] = _details(entries, "frequency limit")
    assert deferred.detail == f"first_overdue deferred: provider frequency limit ({LIMIT}); next window"
    tomorrow = await _next_touch(handle, zone, after=today)
    assert _local(tomorrow, zone).date() == today + timedelta(days=1) and _in_window(_local(tomorrow, zone))
    assert (await status(handle)).sms_sent == 0
    [row] = store.outbox_for(handle.id.removeprefix("overdue-"))
    assert (row.idempotency_key, row.status, row.attempts) == (key, "pending", 1)
    # The audit log has it too, written by the run's audit trail.
    audited = await eventually(
        lambda: asyncio.to_thread(store.audit_for, handle.id.removeprefix("overdue-")),
        lambda rows: any(r.kind == "deferred" and r.detail == deferred.detail for r in rows),
    )
    assert [r.kind for r in audited if "frequency limit" in r.detail] == ["deferred"]

    # The next day's window: the same touchpoint, so the same key, goes once.
    await _sleep_until(env, tomorrow + timedelta(minutes=30))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
    assert [call.sms.idempotency_key for call in provider.calls] == [key, key]
    sent_at = _local(provider.calls[1].at, zone)
    assert sent_at.date() == today + timedelta(days=1) and _in_window(sent_at), sent_at
    [row] = store.outbox_for(handle.id.removeprefix("overdue-"))
    assert (row.status, row.attempts) == ("sent", 2)
    sent = [e for e in await timeline(handle) if e.kind is TimelineKind.SMS_SENT]
    assert [e.detail.split(" (")[0] for e in sent] == ["first_overdue touchpoint 1"]

    # The new branch replays: its history rebuilds the same decisions.
    history = await handle.fetch_history()
    replayer = Replayer(workflows=[OverdueAccountWorkflow], data_converter=client.data_converter)
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure


async def _held_twice(handle: WorkflowHandle[Any, Any]) -> None:
    await eventually(lambda: timeline(handle), lambda found: len(_details(found, "provider alarm")) == 2)


async def _sent_once(handle: WorkflowHandle[Any, Any]) -> None:
    await eventually(lambda: status(handle), lambda current: current.sms_sent == 1)


async def _cli(env: WorkflowEnvironment, settings: Settings, *args: str) -> Any:
    runner = CliRunner()
    environment = cli_env(env, settings)
    return await asyncio.to_thread(lambda: runner.invoke(cli_app, list(args), env=environment))


async def test_a_refused_account_holds_every_send_until_an_operator_clears_the_alarm(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    provider: ScriptedProvider,
    store: AuditStore,
) -> None:
    provider.refuse(ProviderAccountError("账户余额不足", code=BALANCE))
    alarms = ProviderAlarms(make_engine(settings.database_url))
    zone = zone_at_local_hour(await env.get_current_time(), 3)
    first, planned = await _overdue_account(env, client, settings, zone)
    today = _local(planned, zone).date()
    held = f"first_overdue held: sending stopped by a provider alarm ({BALANCE}); next window"

    # The refusal opens one alarm, and the touch waits for tomorrow's window.
    await _sleep_until(env, planned + timedelta(minutes=30))
    await eventually(lambda: timeline(first), lambda found: bool(_details(found, "provider alarm")))
    [alarm] = alarms.alarms()
    assert (alarm.provider, alarm.code, alarm.count) == ("aliyun", BALANCE, 1) and len(provider.calls) == 1
    await _next_touch(first, zone, after=today)

    # An account that comes due meanwhile is held without reaching the provider.
    second, planned_second = await _overdue_account(env, client, settings, zone)
    await _sleep_until(env, planned_second + timedelta(minutes=30))
    entries = await eventually(
        lambda: timeline(second), lambda found: bool(_details(found, "provider alarm"))
    )
    assert [e.detail for e in _details(entries, "provider alarm")] == [held]
    assert len(provider.calls) == 1 and alarms.alarms()[0].count == 1
    audited = await eventually(
        lambda: asyncio.to_thread(store.audit_for, second.id.removeprefix("overdue-")),
        lambda rows: any(r.kind == "deferred" and r.detail == held for r in rows),
    )
    assert audited

    # Operators see it: the API, the CLI.
    async with serving(env, client, settings, api_settings()) as api:
        assert (await api.http.get("/alarms")).status_code == 401
        listed = await api.http.get("/alarms", headers=AUTH)
        assert listed.status_code == 200, listed.text
        [shown] = listed.json()
        assert (shown["id"], shown["provider"], shown["code"], shown["open"]) == (
            alarm.id,
            "aliyun",
            BALANCE,
            True,
        )
        assert shown["count"] == 1 and shown["cleared_by"] is None
    listing = await _cli(env, settings, "alarms")
    assert listing.exit_code == 0, listing.output
    assert f"alarm {alarm.id}: aliyun {BALANCE} (open)" in listing.output

    # The next day the alarm is still open: both touches are held again, nothing reaches the provider.
    tomorrow = max(await _next_touch(first, zone, after=today), await _next_touch(second, zone, after=today))
    await _sleep_until(env, tomorrow + timedelta(minutes=30))
    for handle in (first, second):
        await _held_twice(handle)
    assert len(provider.calls) == 1

    # Cleared (the account was topped up): the next window sends both, the first with its first key.
    cleared = await _cli(env, settings, "alarms", "clear", str(alarm.id), "--by", "ops")
    assert cleared.exit_code == 0, cleared.output
    assert f"alarm {alarm.id} (aliyun {BALANCE}) cleared by ops" in cleared.output
    assert (await _cli(env, settings, "alarms")).output.startswith("no open provider alarm")
    everything = await _cli(env, settings, "alarms", "--all")
    assert (
        f"alarm {alarm.id}: aliyun {BALANCE} (cleared " in everything.output and "by ops" in everything.output
    )
    day_after = today + timedelta(days=1)
    next_window = max(
        await _next_touch(first, zone, after=day_after), await _next_touch(second, zone, after=day_after)
    )
    await _sleep_until(env, next_window + timedelta(minutes=30))
    for handle in (first, second):
        await _sent_once(handle)
    assert len(provider.calls) == 3
    assert provider.calls[0].sms.idempotency_key == f"{first.id}/{first.result_run_id}/tp-1"
    assert provider.calls[0].sms.idempotency_key in {call.sms.idempotency_key for call in provider.calls[1:]}
    assert alarms.alarms() == []
    async with serving(env, client, settings, api_settings()) as api:
        assert (await api.http.get("/alarms", headers=AUTH)).json() == []
        [past] = (await api.http.get("/alarms", params={"all": "true"}, headers=AUTH)).json()
        assert (past["id"], past["open"], past["cleared_by"]) == (alarm.id, False, "ops")


async def test_the_dashboard_shows_a_banner_for_each_open_alarm(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    """On the dev server, whose visibility counts the dashboard's open accounts."""
    alarms = ProviderAlarms(make_engine(settings.database_url))
    alarm, _ = alarms.raise_alarm("aliyun", BALANCE, "<b>balance</b> for 13800138000", datetime.now(UTC))
    async with console_site(dev_env.client, settings) as site, signed_in(site, "sam") as http:
        page = await http.get("/dashboard")
        assert page.status_code == 200, page.text[:500]
        banner = page.text.split(f'id="alarm-{alarm.id}"', 1)[1].split("</div>", 1)[0]
        assert f"SMS sending is stopped: aliyun refused the lender&#39;s account ({BALANCE})." in banner
        assert f"kindly alarms clear {alarm.id}" in banner and "&lt;b&gt;balance&lt;/b&gt;" in banner
        assert "13800138000" not in page.text
        chinese = await http.get("/dashboard", headers={"accept-language": "zh-CN"})
        assert "短信发送已停止" in chinese.text
        assert alarm.id is not None
        alarms.clear(alarm.id, "ops", datetime.now(UTC))
        assert 'id="alarm-' not in (await http.get("/dashboard")).text


def test_the_alarm_commands_say_what_they_did(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    alarms = ProviderAlarms(make_engine(url))
    alarm, _ = alarms.raise_alarm(
        "tencent", "FailedOperation.InsufficientBalance", "[余额不足]", datetime.now(UTC)
    )
    env = {"COLLECTIONS_DATABASE_URL": url, "USER": "ops-user", "LOGNAME": "ops-user"}
    runner = CliRunner()
    listed = runner.invoke(cli_app, ["alarms"], env=env)
    assert listed.exit_code == 0 and "[余额不足]" in listed.output, listed.output
    unknown = runner.invoke(cli_app, ["alarms", "clear", "999"], env=env)
    assert unknown.exit_code == 1 and "no provider alarm 999" in unknown.output
    cleared = runner.invoke(cli_app, ["alarms", "clear", str(alarm.id)], env=env)
    assert cleared.exit_code == 0 and "cleared by ops-user" in cleared.output, cleared.output
    again = runner.invoke(cli_app, ["alarms", "clear", str(alarm.id), "--by", "someone-else"], env=env)
    assert again.exit_code == 0 and "already cleared by ops-user" in again.output
    assert alarms.get(alarm.id or 0).cleared_by == "ops-user"
    blank = runner.invoke(cli_app, ["alarms", "clear", str(alarm.id), "--by", " "], env=env)
    assert blank.exit_code == 2
