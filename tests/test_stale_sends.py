"""A reminder still retrying through a gateway outage is cancelled when the account no longer wants it.

On the time-skipping server, with the SMS gateway answering 503: the day's reminder retries with backoff;
a signal arrives mid-retry (an opt-out, a payment, a pause, ...); the gateway recovers and an hour passes.
The gateway's own record shows nothing sent after the change except the service message it answers (or,
where the account still wants a reminder, a fresh one with a new key and the current content), and the
outbox, the timeline and the audit log show the cancellation and its reason.

A send the gateway accepted just before the change counts as sent, once. Call tasks and specialist
hand-offs retrying through an outage of their own endpoint are cancelled the same way when the account
ends (or a call ends the phone stage); their cancellation shows as ``handoff_cancelled``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import (
    AccountInput,
    Outcome,
    SignalName,
    TemplateName,
    TimelineEntry,
    TimelineKind,
)
from kindly.domain.effects import CancelReason
from kindly.settings import Settings
from kindly.store import AuditStore
from tests.conftest import TEST_POLICIES, eventually
from tests.fault_helpers import (
    FAULT_POLICIES,
    FAULT_SEGMENT,
    OutageGateway,
    OutageRequest,
    loop_clock,
    zone_at_local_hour,
)
from tests.http_recorder import RecordingHttpServer
from tests.lifecycle_helpers import make_account, start, status, timeline

OLD_PHONE = "+8613800138000"  # make_account's number
NEW_PHONE = "+8613900139001"


@pytest.fixture
def outage() -> Iterator[OutageGateway]:
    with OutageGateway() as gateway:
        yield gateway


@pytest.fixture
def outage_on() -> str:
    """The endpoint the failing gateway stands in for: ``sms``, ``phone`` or ``specialist``. The others
    stay on the recording ``gateway`` (200). A test parametrizes this fixture to move the outage."""
    return "sms"


@pytest.fixture
def http_timeout() -> float | None:
    """The worker's HTTP timeout, when a test needs a short one (a gateway that hangs); else the default."""
    return None


@pytest.fixture
def settings(
    settings: Settings, outage: OutageGateway, outage_on: str, http_timeout: float | None, tmp_path: Path
) -> Settings:
    """The shared test settings with the failing gateway on one endpoint, and the fault tests'
    segment (no holidays, no spreading: the reminder is due at once inside the window)."""
    policy_file = tmp_path / "stale-policies.json"
    policy_file.write_text(json.dumps({**TEST_POLICIES, **FAULT_POLICIES}))
    update: dict[str, Any] = {
        f"{outage_on}_webhook_url": f"{outage.url}/{outage_on}",
        "policy_file": policy_file,
    }
    if http_timeout is not None:
        update["http_timeout_seconds"] = http_timeout
    return settings.model_copy(update=update)


# --- helpers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    handle: WorkflowHandle[Any, Any]
    account: AccountInput
    today: date
    """The customer's local date when the test began."""

    def key(self, touchpoint: int) -> str:
        """The idempotency key of a touchpoint: ``<workflow id>/<first run id>/tp-N``."""
        return f"{self.handle.id}/{self.handle.result_run_id}/tp-{touchpoint}"

    def local(self, clock: time) -> datetime:
        """``clock`` on the test's first local day, in the customer's zone."""
        return datetime.combine(self.today, clock, ZoneInfo(self.account.timezone))


async def _start(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    outage: OutageGateway,
    *,
    hour: int = 10,
    due_in_days: int = -2,
) -> Started:
    """An account in a zone where it is ``hour`` o'clock now (by default 10:00: the reminder window,
    09:00-20:00, is open for ten hours more), due ``due_in_days`` from today (by default two days ago:
    the first-overdue reminder is due as soon as the window is open)."""
    outage.clock = loop_clock(asyncio.get_running_loop(), env.get_current_time)
    now = await env.get_current_time()
    zone = zone_at_local_hour(now, hour)
    today = now.astimezone(ZoneInfo(zone)).date()
    account = make_account(
        today + timedelta(days=due_in_days), timezone=zone, locale="en-US", segment=FAULT_SEGMENT
    )
    return Started(await start(client, settings.task_queue, account), account, today)


async def _retrying_reminder(
    env: WorkflowEnvironment, client: Client, settings: Settings, outage: OutageGateway
) -> Started:
    """An account due two days ago whose first reminder the gateway refuses for a few minutes
    (several attempts, then backoff: the next attempt is minutes away)."""
    started = await _start(env, client, settings, outage)
    await env.sleep(timedelta(minutes=3))
    _assert_refused(outage.requests, started.key(1), TemplateName.FIRST_OVERDUE)
    return started


def _assert_refused(requests: list[OutageRequest], key: str, template: TemplateName | None = None) -> None:
    """Several attempts, all refused, all of one touchpoint."""
    assert len(requests) >= 3, requests
    assert {r.status for r in requests} == {503}, requests
    assert {r.body["idempotency_key"] for r in requests} == {key}, requests
    if template is not None:
        assert {r.body["template"] for r in requests} == {template}, requests


def _of(entries: list[TimelineEntry], kind: TimelineKind) -> list[TimelineEntry]:
    return [e for e in entries if e.kind is kind]


async def _until_recorded(handle: WorkflowHandle[Any, Any], kind: TimelineKind) -> None:
    await eventually(lambda: timeline(handle), lambda t: bool(_of(t, kind)))


def _accepted(requests: list[OutageRequest]) -> list[OutageRequest]:
    return [r for r in requests if r.status == 200]


async def _assert_reminder_cancelled(
    started: Started,
    store: AuditStore,
    reason: CancelReason,
    *,
    template: TemplateName = TemplateName.FIRST_OVERDUE,
    touchpoint: int = 1,
) -> None:
    """One cancellation with ``reason`` in the timeline and the audit log; the outbox row of the
    touchpoint is ``cancelled`` with the reason."""
    cancelled = _of(await timeline(started.handle), TimelineKind.REMINDER_CANCELLED)
    assert len(cancelled) == 1, cancelled
    assert cancelled[0].detail.startswith(f"reminder cancelled ({reason})"), cancelled
    assert f"{template} touchpoint {touchpoint}" in cancelled[0].detail, cancelled
    account_id = started.account.account_id
    rows = {row.touchpoint: row for row in store.outbox_for(account_id)}
    row = rows[touchpoint]
    assert (row.status, row.detail, row.template) == ("cancelled", reason, template)
    assert row.idempotency_key == started.key(touchpoint)
    audited = [a for a in store.audit_for(account_id) if a.kind == TimelineKind.REMINDER_CANCELLED]
    assert [a.detail for a in audited] == [cancelled[0].detail]


# --- the change mid-retry leaves nothing to send by SMS ------------------------------------------


@dataclass(frozen=True)
class Change:
    id: str
    signal: SignalName
    payload: Callable[[date], dict[str, Any]]
    """The signal's payload, given the customer's local date."""
    reason: CancelReason
    records: TimelineKind
    """The entry the change itself records."""
    ends: Outcome | None = None
    handoff: str | None = None
    """The hand-off that follows at once (on the recording gateway), if any."""


NOTHING_MORE_BY_SMS = [
    Change(
        "full-repayment",
        SignalName.REPAYMENT,
        lambda _: {"amount": "1500.00", "reference": "PAY-FULL"},
        CancelReason.REPAID,
        TimelineKind.REPAID,
        ends=Outcome.REPAID,
    ),
    Change(
        "settle",
        SignalName.SETTLE,
        lambda _: {"amount": "900.00", "reference": "SET-1"},
        CancelReason.SETTLED,
        TimelineKind.SETTLED,
        ends=Outcome.SETTLED,
    ),
    Change(
        "close",
        SignalName.CLOSE,
        lambda _: {"reason": "written off"},
        CancelReason.CLOSED,
        TimelineKind.CLOSED,
        ends=Outcome.CLOSED,
    ),
    Change(
        "hardship",
        SignalName.CUSTOMER_REPLY,
        lambda _: {"text": "I lost my job"},
        CancelReason.HARDSHIP,
        TimelineKind.HANDED_TO_PERSON,
        handoff="/specialist",
    ),
    Change(
        "dispute",
        SignalName.CUSTOMER_REPLY,
        lambda _: {"text": "this is not my loan"},
        CancelReason.DISPUTE,
        TimelineKind.HANDED_TO_PERSON,
        handoff="/specialist",
    ),
    Change(
        "promise-to-pay",
        SignalName.PROMISE_TO_PAY,
        lambda today: {"date": (today + timedelta(days=5)).isoformat()},
        CancelReason.PROMISE_TO_PAY,
        TimelineKind.PROMISE,
    ),
    Change(
        "sms-undeliverable",
        SignalName.SMS_UNDELIVERABLE,
        lambda _: {"reason": "carrier: number not in service"},
        CancelReason.SMS_UNDELIVERABLE,
        TimelineKind.SMS_UNDELIVERABLE,
        handoff="/phone",
    ),
]


@pytest.mark.parametrize("change", NOTHING_MORE_BY_SMS, ids=lambda change: change.id)
async def test_a_change_mid_retry_cancels_the_reminder_and_nothing_more_goes_by_sms(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    outage: OutageGateway,
    gateway: RecordingHttpServer,
    store: AuditStore,
    change: Change,
) -> None:
    started = await _retrying_reminder(env, client, settings, outage)
    handle = started.handle
    before = len(outage.requests)
    await handle.signal(change.signal, change.payload(started.today))
    await _until_recorded(handle, TimelineKind.REMINDER_CANCELLED)
    outage.recover()
    await env.sleep(timedelta(hours=1))

    assert outage.requests[before:] == []  # no further attempt, so nothing reached the gateway
    await _assert_reminder_cancelled(started, store, change.reason)
    entries = await timeline(handle)
    assert _of(entries, change.records), entries
    assert not _of(entries, TimelineKind.SMS_SENT)
    final = await status(handle)
    assert final.sms_sent == 0 and final.unanswered_sms == 0
    assert [r.path for r in gateway.requests] == ([change.handoff] if change.handoff else [])
    if change.handoff:
        escalated = (
            TimelineKind.ESCALATED_SPECIALIST
            if change.handoff == "/specialist"
            else TimelineKind.ESCALATED_PHONE
        )
        assert len(_of(entries, escalated)) == 1, entries
        # The cancelled reminder used up touchpoint 1: the hand-off has the next number.
        assert gateway.requests[0].json()["idempotency_key"] == started.key(2)
    if change.ends is not None:
        assert (await handle.result()).outcome is change.ends


async def test_pause_mid_retry_cancels_the_reminder_and_resume_sends_a_fresh_one(
    env: WorkflowEnvironment, client: Client, settings: Settings, outage: OutageGateway, store: AuditStore
) -> None:
    started = await _retrying_reminder(env, client, settings, outage)
    handle = started.handle
    before = len(outage.requests)
    await handle.signal(SignalName.PAUSE, {"reason": "complaint under review"})
    await _until_recorded(handle, TimelineKind.REMINDER_CANCELLED)
    outage.recover()
    await env.sleep(timedelta(hours=1))
    assert outage.requests[before:] == []
    await _assert_reminder_cancelled(started, store, CancelReason.PAUSED)

    # Nothing goes out while paused, not the next day either.
    await env.sleep(timedelta(days=1))
    assert outage.requests[before:] == []
    paused = await status(handle)
    assert paused.paused and paused.sms_sent == 0

    # Resumed: the account still wants its reminder, which goes with a touchpoint of its own.
    await handle.signal(SignalName.RESUME, {})
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
    await env.sleep(timedelta(hours=1))
    after = outage.requests[before:]
    assert [(r.status, r.body["idempotency_key"], r.body["template"]) for r in after] == [
        (200, started.key(2), TemplateName.FIRST_OVERDUE)
    ]
    rows = {row.touchpoint: row for row in store.outbox_for(started.account.account_id)}
    assert (rows[1].status, rows[2].status) == ("cancelled", "sent")
    assert (await status(handle)).sms_sent == 1


# --- the change mid-retry still wants a reminder: a fresh one, new key, current content -----------


async def test_new_number_mid_retry_cancels_the_old_send_and_the_reminder_goes_to_the_new_number(
    env: WorkflowEnvironment, client: Client, settings: Settings, outage: OutageGateway, store: AuditStore
) -> None:
    started = await _retrying_reminder(env, client, settings, outage)
    handle = started.handle
    before = len(outage.requests)
    await handle.signal(SignalName.UPDATE_CONTACT, {"phone": NEW_PHONE})
    await _until_recorded(handle, TimelineKind.REMINDER_CANCELLED)
    outage.recover()
    await env.sleep(timedelta(hours=1))

    old_key, new_key = started.key(1), started.key(2)
    requests = outage.requests
    to_old = [r for r in requests if r.body["idempotency_key"] == old_key]
    assert {(r.status, r.body["to"]) for r in to_old} == {(503, OLD_PHONE)}, to_old
    assert {(r.body["idempotency_key"], r.body["to"]) for r in requests[before:]} == {(new_key, NEW_PHONE)}
    accepted = _accepted(requests)
    assert [(r.body["idempotency_key"], r.body["to"], r.body["template"]) for r in accepted] == [
        (new_key, NEW_PHONE, TemplateName.FIRST_OVERDUE)
    ]
    await _assert_reminder_cancelled(started, store, CancelReason.NUMBER_CHANGED)
    entries = await timeline(handle)
    assert _of(entries, TimelineKind.CONTACT_UPDATED)
    sent = _of(entries, TimelineKind.SMS_SENT)
    assert len(sent) == 1 and sent[0].detail.startswith(f"{TemplateName.FIRST_OVERDUE} touchpoint 2"), sent
    rows = {row.touchpoint: row for row in store.outbox_for(started.account.account_id)}
    assert rows[2].status == "sent"
    final = await status(handle)
    assert final.sms_sent == 1 and final.unanswered_sms == 1


async def test_partial_payment_mid_retry_sends_the_new_amount_the_same_day(
    env: WorkflowEnvironment, client: Client, settings: Settings, outage: OutageGateway, store: AuditStore
) -> None:
    started = await _retrying_reminder(env, client, settings, outage)
    handle = started.handle
    stale = outage.requests
    assert all("CNY 1,500.00" in r.body["body"] for r in stale), stale[0].body
    before = len(stale)
    await handle.signal(SignalName.REPAYMENT, {"amount": "500.00", "reference": "PAY-PART"})
    await _until_recorded(handle, TimelineKind.REMINDER_CANCELLED)
    outage.recover()
    await env.sleep(timedelta(hours=1))

    after = outage.requests[before:]
    assert {r.body["idempotency_key"] for r in after} == {started.key(2)}, after
    accepted = _accepted(outage.requests)
    assert len(accepted) == 1, outage.requests
    fresh = accepted[0]
    assert fresh.body["idempotency_key"] == started.key(2)
    assert fresh.body["template"] == TemplateName.FIRST_OVERDUE
    assert "CNY 1,000.00" in fresh.body["body"] and "1,500.00" not in fresh.body["body"], fresh.body
    # The same local day: the daily cap (one reminder a day) did not count the cancelled one.
    zone = ZoneInfo(started.account.timezone)
    assert fresh.simulated_at.astimezone(zone).date() == stale[0].simulated_at.astimezone(zone).date()
    await _assert_reminder_cancelled(started, store, CancelReason.AMOUNT_CHANGED)
    entries = await timeline(handle)
    assert not _of(entries, TimelineKind.DEFERRED), entries
    assert len(_of(entries, TimelineKind.SMS_SENT)) == 1
    final = await status(handle)
    assert final.sms_sent == 1 and str(final.amount_due) == "1000.00"


# --- a send the gateway took just before the change counts, once ---------------------------------


async def _advance_until(env: WorkflowEnvironment, done: Callable[[], bool], *, step: timedelta) -> None:
    """Advance simulated time in small steps until ``done`` (at most an hour of it)."""
    for _ in range(int(timedelta(hours=1) / step)):
        if done():
            return
        await env.sleep(step)
    assert done(), "the condition never held within an hour of simulated time"


@pytest.mark.parametrize("http_timeout", [0.5])
async def test_a_cancelled_send_whose_answers_were_lost_counts_as_sent(
    env: WorkflowEnvironment, client: Client, settings: Settings, outage: OutageGateway, store: AuditStore
) -> None:
    """A gateway that hangs past the client's timeout may have taken the message: cancelled then, it is
    counted as sent (the cap holds the day; the cadence moves on), never sent again under a new key."""
    outage.hang(10_000)
    started = await _start(env, client, settings, outage)
    await env.sleep(timedelta(minutes=3))
    assert len(outage.requests) >= 2 and {r.status for r in outage.requests} == {None}, outage.requests
    await started.handle.signal(SignalName.PAUSE, {"reason": "customer in hospital"})
    await _until_recorded(started.handle, TimelineKind.REMINDER_CANCELLED)
    await started.handle.signal(SignalName.RESUME, {})
    outage.recover()
    await env.sleep(timedelta(hours=3))

    assert _accepted(outage.requests) == [], outage.requests  # nothing more the same day
    entries = await timeline(started.handle)
    [maybe] = _of(entries, TimelineKind.SMS_SENT)
    assert "may have reached the customer" in maybe.detail, entries
    [row] = store.outbox_for(started.account.account_id)
    assert (row.status, row.detail) == ("cancelled", "paused; an attempt's answer was lost")
    current = await status(started.handle)
    assert current.sms_sent == 1 and current.next_touchpoint_at is not None
    assert current.next_touchpoint_at.astimezone(ZoneInfo(started.account.timezone)).date() > started.today


async def test_a_send_accepted_just_before_a_pause_counts_as_sent_once(
    env: WorkflowEnvironment, client: Client, settings: Settings, outage: OutageGateway, store: AuditStore
) -> None:
    started = await _retrying_reminder(env, client, settings, outage)
    handle = started.handle
    before = len(outage.requests)
    # The next attempt reaches the gateway, which takes it but keeps its answer. The clock skips only up
    # to shortly before that attempt (the backoff doubles), then on in small steps: the held attempt must
    # not run into its start-to-close timeout on the skipping clock.
    outage.hold_next()
    refused = outage.requests
    next_attempt = refused[-1].simulated_at + 2 * (refused[-1].simulated_at - refused[-2].simulated_at)
    await env.sleep(max(next_attempt - timedelta(seconds=10) - await env.get_current_time(), timedelta(0)))
    await _advance_until(env, outage.holding.is_set, step=timedelta(seconds=5))
    held = outage.requests[before:]
    assert [(r.status, r.body["idempotency_key"]) for r in held] == [(200, started.key(1))]

    await handle.signal(SignalName.PAUSE, {"reason": "complaint under review"})

    def cancel_requested(events: list[Any]) -> bool:
        return any(e.HasField("activity_task_cancel_requested_event_attributes") for e in events)

    # The workflow asked Temporal to cancel the send while the gateway held the accepted request.
    await eventually(lambda: handle.fetch_history(), lambda h: cancel_requested(list(h.events)))
    outage.release()
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)

    entries = await timeline(handle)
    assert not _of(entries, TimelineKind.REMINDER_CANCELLED), entries
    sent = _of(entries, TimelineKind.SMS_SENT)
    assert len(sent) == 1 and sent[0].detail.startswith(f"{TemplateName.FIRST_OVERDUE} touchpoint 1"), sent
    assert _of(entries, TimelineKind.PAUSED)
    rows = {row.touchpoint: row for row in store.outbox_for(started.account.account_id)}
    assert list(rows) == [1] and rows[1].status == "sent", rows

    # Never sent twice: not after recovery, not after the pause ends.
    outage.recover()
    await env.sleep(timedelta(hours=1))
    await handle.signal(SignalName.RESUME, {})
    await _until_recorded(handle, TimelineKind.RESUMED)
    await env.sleep(timedelta(hours=1))
    assert outage.requests[before:] == held
    assert [r.body["idempotency_key"] for r in _accepted(outage.requests)] == [started.key(1)]
    final = await status(handle)
    assert final.sms_sent == 1 and not final.paused
    assert not _of(await timeline(handle), TimelineKind.REMINDER_CANCELLED)


# --- service replies ------------------------------------------------------------------------------


async def test_opt_out_mid_retry_cancels_the_reminder_and_only_the_confirmation_goes(
    env: WorkflowEnvironment, client: Client, settings: Settings, outage: OutageGateway, store: AuditStore
) -> None:
    started = await _retrying_reminder(env, client, settings, outage)
    handle = started.handle
    before = len(outage.requests)
    await handle.signal("customer_reply", {"text": "STOP"})
    await _until_recorded(handle, TimelineKind.REMINDER_CANCELLED)
    outage.recover()
    await env.sleep(timedelta(hours=1))
    after = outage.requests[before:]
    assert {r.body["template"] for r in after} <= {TemplateName.OPT_OUT_CONFIRMATION}, after
    assert [r.status for r in after if r.status == 200] == [200]
    await _assert_reminder_cancelled(started, store, CancelReason.OPTED_OUT)
    final = await status(handle)
    assert final.sms_sent == 1 and final.unanswered_sms == 0
    rows = {row.touchpoint: row for row in store.outbox_for(final.account_id)}
    assert rows[2].status == "sent" and rows[2].template == TemplateName.OPT_OUT_CONFIRMATION


@pytest.mark.parametrize(
    ("first", "then", "help_cancelled"),
    [("HELP", "STOP", True), ("STOP", "HELP", False)],
    ids=["help-then-stop", "stop-then-help"],
)
async def test_help_and_stop_during_an_outage_only_the_confirmation_goes_once(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    outage: OutageGateway,
    store: AuditStore,
    first: str,
    then: str,
    help_cancelled: bool,
) -> None:
    # The first reminder is weeks away: the only messages are the replies the customer asked for.
    started = await _start(env, client, settings, outage, due_in_days=30)
    handle = started.handle
    await handle.signal(SignalName.CUSTOMER_REPLY, {"text": first})
    await env.sleep(timedelta(minutes=3))
    retried = TemplateName.HELP if first == "HELP" else TemplateName.OPT_OUT_CONFIRMATION
    _assert_refused(outage.requests, started.key(1), retried)

    await handle.signal(SignalName.CUSTOMER_REPLY, {"text": then})
    await eventually(lambda: timeline(handle), lambda t: len(_of(t, TimelineKind.REPLY_RECEIVED)) == 2)
    if help_cancelled:
        await _until_recorded(handle, TimelineKind.REMINDER_CANCELLED)
        await _assert_reminder_cancelled(
            started, store, CancelReason.OPTED_OUT, template=TemplateName.HELP, touchpoint=1
        )
    outage.recover()
    await env.sleep(timedelta(hours=1))

    confirmation = started.key(2 if help_cancelled else 1)
    accepted = _accepted(outage.requests)
    assert [(r.body["template"], r.body["idempotency_key"]) for r in accepted] == [
        (TemplateName.OPT_OUT_CONFIRMATION, confirmation)
    ], outage.requests
    entries = await timeline(handle)
    assert len(_of(entries, TimelineKind.REMINDER_CANCELLED)) == (1 if help_cancelled else 0), entries
    assert len(_of(entries, TimelineKind.SMS_SENT)) == 1 and _of(entries, TimelineKind.OPTED_OUT)
    rows = {row.idempotency_key: row for row in store.outbox_for(started.account.account_id)}
    assert rows[confirmation].status == "sent"
    assert (await status(handle)).sms_sent == 1

    # The workflow stays healthy, and over the next days nothing else goes: no HELP, no reminder.
    await env.sleep(timedelta(days=1))
    assert (await status(handle)).sms_sent == 1
    await env.sleep(timedelta(days=2))
    final = await status(handle)
    assert final.sms_sent == 1 and final.unanswered_sms == 0
    assert _accepted(outage.requests) == accepted
    assert TemplateName.HELP not in {r.body["template"] for r in _accepted(outage.requests)}
    assert len(_of(await timeline(handle), TimelineKind.SMS_SENT)) == 1


@pytest.mark.parametrize(
    ("change", "payload", "outcome"),
    [
        (SignalName.REPAYMENT, {"amount": "1500.00", "reference": "PAID-1"}, Outcome.REPAID),
        (SignalName.CLOSE, {"reason": "written off"}, Outcome.CLOSED),
    ],
)
async def test_an_account_that_ends_while_its_opt_out_confirmation_retries_still_sends_it(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    outage: OutageGateway,
    store: AuditStore,
    change: SignalName,
    payload: dict[str, Any],
    outcome: Outcome,
) -> None:
    """The confirmation stating what is outstanding is no longer true once the account ends: it is
    cancelled, and goes again, without an amount, before the workflow completes."""
    started = await _start(env, client, settings, outage, due_in_days=30)
    handle = started.handle
    await handle.signal(SignalName.CUSTOMER_REPLY, {"text": "STOP"})
    await env.sleep(timedelta(minutes=3))
    _assert_refused(outage.requests, started.key(1), TemplateName.OPT_OUT_CONFIRMATION)
    assert "1,500.00" in outage.requests[0].body["body"]

    await handle.signal(change, payload)
    await _until_recorded(handle, TimelineKind.REMINDER_CANCELLED)
    await _assert_reminder_cancelled(
        started, store, CancelReason(outcome.value), template=TemplateName.OPT_OUT_CONFIRMATION
    )
    outage.recover()
    await env.sleep(timedelta(hours=1))

    accepted = _accepted(outage.requests)
    assert [(r.body["template"], r.body["idempotency_key"]) for r in accepted] == [
        (TemplateName.OPT_OUT_CONFIRMATION, started.key(2))
    ], outage.requests
    assert "1,500.00" not in accepted[0].body["body"] and "opted out" in accepted[0].body["body"]
    assert (await handle.result()).outcome is outcome


# --- hand-offs retrying through an outage of their own endpoint ----------------------------------


async def _first_reminder_sent(
    env: WorkflowEnvironment, client: Client, settings: Settings, outage: OutageGateway
) -> Started:
    """An account due two days ago whose first reminder went (SMS are on the recording gateway)."""
    started = await _start(env, client, settings, outage)
    await eventually(lambda: status(started.handle), lambda s: s.sms_sent == 1)
    return started


async def _assert_handoff_cancelled(
    started: Started, store: AuditStore, what: str, reason: CancelReason, *, touchpoint: int
) -> None:
    detail = f"{what} cancelled ({reason}): touchpoint {touchpoint}"
    cancelled = _of(await timeline(started.handle), TimelineKind.HANDOFF_CANCELLED)
    assert [e.detail for e in cancelled] == [detail], cancelled
    audited = [
        a for a in store.audit_for(started.account.account_id) if a.kind == TimelineKind.HANDOFF_CANCELLED
    ]
    assert [a.detail for a in audited] == [detail]


async def _retrying_call_task(
    env: WorkflowEnvironment, client: Client, settings: Settings, outage: OutageGateway
) -> Started:
    """03:00 for a customer two days overdue whose number cannot receive SMS: the first step is a call
    task when the window opens (09:00), and the phone system refuses it for a few minutes."""
    started = await _start(env, client, settings, outage, hour=3)
    handle = started.handle
    await handle.signal(SignalName.SMS_UNDELIVERABLE, {"reason": "carrier: number not in service"})
    await _until_recorded(handle, TimelineKind.SMS_UNDELIVERABLE)
    await env.sleep(started.local(time(9, 3)) - await env.get_current_time())
    _assert_refused(outage.requests, started.key(1))
    assert {r.path for r in outage.requests} == {"/phone"}
    return started


@pytest.mark.parametrize("outage_on", ["phone"])
@pytest.mark.parametrize(
    ("signal", "payload", "reason", "ends"),
    [
        (
            SignalName.REPAYMENT,
            lambda _: {"amount": "1500.00", "reference": "PAY-FULL"},
            CancelReason.REPAID,
            Outcome.REPAID,
        ),
        (SignalName.CALL_OUTCOME, lambda _: {"outcome": "reached"}, CancelReason.REACHED, None),
        (
            SignalName.PROMISE_TO_PAY,
            lambda today: {"date": (today + timedelta(days=5)).isoformat()},
            CancelReason.PROMISE_TO_PAY,
            None,
        ),
    ],
    ids=["repaid", "reached", "promise-to-pay"],
)
async def test_a_call_task_retrying_is_cancelled_when_the_account_no_longer_needs_it(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    outage: OutageGateway,
    gateway: RecordingHttpServer,
    store: AuditStore,
    signal: SignalName,
    payload: Callable[[date], dict[str, Any]],
    reason: CancelReason,
    ends: Outcome | None,
) -> None:
    started = await _retrying_call_task(env, client, settings, outage)
    handle = started.handle
    before = len(outage.requests)
    await handle.signal(signal, payload(started.today))
    await _until_recorded(handle, TimelineKind.HANDOFF_CANCELLED)
    outage.recover()
    await env.sleep(timedelta(hours=1))

    # The cancelled task made no further attempt: its key never got a 200.
    cancelled_key = started.key(1)
    assert not [r for r in outage.requests[before:] if r.body["idempotency_key"] == cancelled_key]
    assert not [r for r in _accepted(outage.requests) if r.body["idempotency_key"] == cancelled_key]
    await _assert_handoff_cancelled(started, store, "call task attempt 1", reason, touchpoint=1)
    entries = await timeline(handle)
    assert gateway.requests == []  # no SMS either
    if ends is not None:
        assert outage.requests[before:] == [] and not _of(entries, TimelineKind.ESCALATED_PHONE)
        assert (await handle.result()).outcome is ends
    else:
        assert _of(
            entries, TimelineKind.CALL_OUTCOME if reason is CancelReason.REACHED else TimelineKind.PROMISE
        )


@pytest.mark.parametrize("outage_on", ["phone"])
async def test_no_new_call_task_right_after_the_customer_was_reached(
    env: WorkflowEnvironment, client: Client, settings: Settings, outage: OutageGateway
) -> None:
    started = await _retrying_call_task(env, client, settings, outage)
    before = len(outage.requests)
    await started.handle.signal(SignalName.CALL_OUTCOME, {"outcome": "reached"})
    await _until_recorded(started.handle, TimelineKind.HANDOFF_CANCELLED)
    outage.recover()
    await env.sleep(timedelta(hours=1))
    entries = await timeline(started.handle)
    assert not _of(entries, TimelineKind.ESCALATED_PHONE), [(e.at, e.kind, e.detail) for e in entries]
    assert outage.requests[before:] == []


@pytest.mark.parametrize("outage_on", ["specialist"])
async def test_a_specialist_handoff_retrying_is_cancelled_when_the_account_is_settled(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    outage: OutageGateway,
    gateway: RecordingHttpServer,
    store: AuditStore,
) -> None:
    started = await _first_reminder_sent(env, client, settings, outage)
    handle = started.handle
    # Hardship: the account goes to the specialists at once, whose system refuses the hand-off.
    await handle.signal(SignalName.CUSTOMER_REPLY, {"text": "I lost my job"})
    await env.sleep(timedelta(minutes=3))
    _assert_refused(outage.requests, started.key(2))
    assert {r.path for r in outage.requests} == {"/specialist"}
    before = len(outage.requests)

    await handle.signal(SignalName.SETTLE, {"amount": "900.00", "reference": "SET-1"})
    await _until_recorded(handle, TimelineKind.HANDOFF_CANCELLED)
    outage.recover()
    await env.sleep(timedelta(hours=1))

    assert outage.requests[before:] == [] and not _accepted(outage.requests)
    await _assert_handoff_cancelled(started, store, "specialist hand-off", CancelReason.SETTLED, touchpoint=2)
    entries = await timeline(handle)
    assert not _of(entries, TimelineKind.ESCALATED_SPECIALIST), entries
    assert _of(entries, TimelineKind.HANDED_TO_PERSON) and _of(entries, TimelineKind.SETTLED)
    assert [r.path for r in gateway.requests] == ["/sms"]
    assert (await handle.result()).outcome is Outcome.SETTLED
