"""The simulator's fidelity: scripted accounts do in ``kindly.simulator`` what they do on Temporal.

Fidelity here means: an account given the same input, started at the same instant under the same
policies, and sent the same signals at the same instants, makes the same SMS sends (the same templates
in the same order) and the same hand-offs (call tasks, the specialist hand-off) at the same instants in
the simulator (``kindly.simulator.run.trace_account`` in a ``ScriptedWorld``) as in the real
``OverdueAccountWorkflow``, run by a real Kindly worker on Temporal's time-skipping test server, its SMS
going through Kindly's send activity to a local HTTP gateway. The workflow's actions are read from its
timeline (``sms_sent``, ``escalated_phone``, ``escalated_specialist``) before the horizon's end.

Resolution: one second, beyond the worker's own time. The timeline shows instants to the second
(``local_iso`` drops the fraction), and the workflow acts a little after the instant it planned, by time
its worker spends and the simulator does not: a signal reaches the run a moment after ``env.sleep``
returns; an action's entry is stamped once its activity has returned (as is ``phone_requested_at``, from
which the next call is timed); and Temporal starts a timer when the workflow task that asked for it
completes, while the timer's duration was reckoned from the task's start (``workflow.now()``), so the run
acts late by that task's time. That is milliseconds, but a run's first task loads the workflow into a
fresh sandbox and prepares the account in a local activity, and on a loaded machine a task can take a
second or more. So an action matches when the workflow's instant is not before the simulator's second
and is later by less than a second plus the run's longest workflow task, measured from its history; any
other difference is a mismatch. The runs start one at a time, each once the one before has planned, so
that their first tasks do not queue behind one another; they start at an hour when no account may be
contacted, so that nothing is due at the start instant itself.

The scripts: a quiet account through the whole ladder (pre-due, overdue, three unanswered, two call tasks
without outcome, the specialists); a STOP, then a call-back at the customer's time; a broken promise; a
partial then a full payment; ``no_answer`` then ``reached`` in the phone stage; a New York account over a
federal holiday; a birthday in the reminder window, then HELP; a pause with an end; a mainland account
over a public holiday; an instalment plan broken; hardship, then the specialists handing the account
back; a STOP at night and a payment before the morning (the confirmation goes after the end); a number
that cannot receive SMS, then a new one. Signals never land on an action the account would take anyway
(``too_close_to_a_signal``), so that no result depends on which of two simultaneous events comes first;
an action at a signal's instant is one the signal caused. Instants that follow call tasks are taken from
a first simulation of the account; the same instants then go to both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import AccountInput, SignalName, TimelineEntry, TimelineKind
from kindly.domain.policy.calendars import load_calendar
from kindly.domain.policy.model import load_policies
from kindly.settings import Settings
from kindly.simulator import Happening, Horizon, ResponseModel, Scenario, ScriptedWorld, trace_account
from tests.http_recorder import RecordingHttpServer
from tests.lifecycle_helpers import start, status, timeline

HORIZON_DAYS = 90
"""Long enough for the quiet account's whole ladder, and for a holiday up to two months ahead with a few
reminders after it."""
SETTLE = timedelta(hours=1)
"""Simulated time the runs go on past the horizon before their timelines are read, so that an action
begun just before the end has finished; actions at or after the end are not compared."""
RESOLUTION = timedelta(seconds=1)
START_CLOCK = time(12, 40)
"""The UTC time of day the accounts start: 20:40 in Shanghai, 07:40 (08:40 in summer) in New York, when no
account's window is open, so that no action is due at the start and the stories are the same whatever
the hour the test runs."""
NEAR_A_SIGNAL = timedelta(minutes=1)
"""How near a scripted signal no action the account takes without it may fall."""
SHANGHAI = "Asia/Shanghai"
NEW_YORK = "America/New_York"
ACTION_KINDS = {
    TimelineKind.SMS_SENT: "sms",
    TimelineKind.ESCALATED_PHONE: "call_task",
    TimelineKind.ESCALATED_SPECIALIST: "specialist",
}


@dataclass(frozen=True)
class Action:
    """An SMS (with its template) or a hand-off, at its instant."""

    kind: str
    at: datetime
    template: str | None = None

    def matches(self, actual: Action, slack: timedelta) -> bool:
        """``actual`` (the workflow's, to the second) is this action (the simulator's): the same kind and
        template, not before this one's second, and later by less than a second plus ``slack`` (the run's
        longest workflow task, ``longest_task``)."""
        same = (self.kind, self.template) == (actual.kind, actual.template)
        return same and -RESOLUTION < actual.at - self.at < RESOLUTION + slack

    def shown(self, zone: ZoneInfo) -> str:
        what = self.kind if self.template is None else f"{self.kind} {self.template}"
        return f"{what} {self.at.astimezone(zone).isoformat(timespec='milliseconds')}"


class Simulator:
    """``trace_account`` with the worker's policies and settings, from the test's start instant."""

    def __init__(self, settings: Settings, start_at: datetime) -> None:
        policies = load_policies(
            settings.policy_file, continue_as_new_after_events=settings.continue_as_new_after_events
        )
        self.scenario = Scenario(policies, ResponseModel())
        self.horizon = Horizon(start=start_at, days=HORIZON_DAYS, seed=0, zone="UTC")
        self.settings = settings

    def actions(self, account: AccountInput, signals: Sequence[Happening]) -> list[Action]:
        trace = trace_account(account, ScriptedWorld(signals), self.scenario, self.horizon, self.settings)
        return [Action(entry.kind, entry.at, entry.template) for entry in trace]


Derived = Callable[[Simulator, "Script"], tuple[Happening, ...]]


@dataclass(frozen=True)
class Script:
    """One account and the signals it receives; ``then`` adds signals timed from its simulated actions."""

    story: str
    account: AccountInput
    signals: tuple[Happening, ...] = ()
    then: Derived | None = None

    def completed(self, simulator: Simulator) -> Script:
        if self.then is None:
            return self
        return replace(self, signals=(*self.signals, *self.then(simulator, self)), then=None)


# --- the scripts -------------------------------------------------------------------------------------


def account(number: int, due: date, **overrides: Any) -> AccountInput:
    fields: dict[str, Any] = {
        "account_id": f"LN-FIDELITY-{number:02d}",
        "customer_name": "Wang Xiaoming",
        "phone": f"+86138001380{number:02d}",  # a number each: an opt-out is kept per number
        "timezone": SHANGHAI,
        "locale": "zh-CN",
        "amount_due": Decimal("1500.00"),
        "currency": "CNY",
        "due_date": due,
        "segment": "plain",
    }
    fields.update(overrides)
    return AccountInput.model_validate(fields)


def local(zone: str, day: date, clock: str) -> datetime:
    """``clock`` on ``day`` in ``zone``, as an aware UTC instant."""
    return datetime.combine(day, time.fromisoformat(clock), ZoneInfo(zone)).astimezone(UTC)


def signal(at: datetime, name: SignalName, **payload: Any) -> Happening:
    return Happening(at, name, payload)


def scripts(start_at: datetime) -> list[Script]:
    """The accounts, their dates relative to the start's local date (Shanghai's; New York's for the US
    account), so that any day and hour the test runs gives the same stories."""
    today = start_at.astimezone(ZoneInfo(SHANGHAI)).date()

    def day(days: int) -> date:
        return today + timedelta(days=days)

    def on(days: int, clock: str) -> datetime:
        return local(SHANGHAI, day(days), clock)

    found = [
        Script(
            "quiet: pre-due, overdue, three unanswered, two call tasks without outcome, specialists",
            account(1, day(8)),
        ),
        Script(
            "STOP: the confirmation at once, calls, a call-back at the customer's time",
            account(2, day(-2)),
            (signal(on(2, "15:31:17"), SignalName.CUSTOMER_REPLY, text="STOP"),),
            then=call_back_after_first_call,
        ),
        Script(
            "a promise to pay, broken: the firmer reminder after its grace",
            account(3, day(-3)),
            (signal(on(2, "16:07:13"), SignalName.PROMISE_TO_PAY, date=day(4).isoformat()),),
        ),
        Script(
            "a partial payment, then the rest: the account ends",
            account(4, day(-1)),
            (
                signal(on(2, "17:11:09"), SignalName.REPAYMENT, amount="500.00", reference="FID-4-1"),
                signal(on(12, "13:45:21"), SignalName.REPAYMENT, amount="1000.00", reference="FID-4-2"),
            ),
        ),
        Script(
            "call outcomes: no answer, another call, reached, back to SMS",
            account(5, day(-20)),
            then=no_answer_then_reached,
        ),
        us_holiday(start_at),
        Script(
            "a birthday on the first overdue day, then HELP",
            birthday_account(day(10)),
            (signal(on(16, "14:23:41"), SignalName.CUSTOMER_REPLY, text="HELP"),),
        ),
        Script(
            "a pause with an end: nothing until it, then the cadence restarts",
            account(8, day(-2)),
            (
                signal(
                    on(2, "15:43:29"),
                    SignalName.PAUSE,
                    reason="customer in hospital",
                    until=on(9, "10:30:00").isoformat(),
                ),
            ),
        ),
        Script(
            "an instalment plan: the first instalment paid, the second not, the plan broken",
            account(10, day(-5)),
            (
                signal(
                    on(2, "14:52:37"),
                    SignalName.SELF_SERVICE,
                    choice="plan",
                    date=day(6).isoformat(),
                    instalments=3,
                ),
                signal(on(5, "16:18:43"), SignalName.REPAYMENT, amount="500.00", reference="FID-10-1"),
            ),
        ),
        Script(
            "hardship: the specialists at once; they hand the account back and the cadence restarts",
            account(11, day(-4)),
            (
                signal(on(3, "13:36:52"), SignalName.CUSTOMER_REPLY, text="I lost my job"),
                signal(on(10, "15:05:33"), SignalName.RESUME),
            ),
        ),
        Script(
            "STOP at night, paid in full before the morning: the confirmation still goes, after the end",
            account(12, day(-3)),
            (
                signal(on(3, "23:12:47"), SignalName.CUSTOMER_REPLY, text="退订"),
                signal(on(4, "02:26:31"), SignalName.REPAYMENT, amount="1500.00", reference="FID-12-1"),
            ),
        ),
        Script(
            "a number that cannot receive SMS, then a new number: the SMS come back",
            account(13, day(-6)),
            (
                signal(on(2, "15:12:19"), SignalName.SMS_UNDELIVERABLE, reason="carrier: not in service"),
                signal(on(4, "16:44:05"), SignalName.UPDATE_CONTACT, phone="+8613900139013"),
            ),
        ),
    ]
    block = holiday_block("cn", day(3), day(HORIZON_DAYS - 30))
    if block is not None:
        first, last = block
        story = f"mainland holiday {first}..{last} on the first overdue day: the reminder waits it out"
        found.append(Script(story, account(9, first - timedelta(days=1), segment="standard")))
    return found


def holiday_block(calendar_name: str, first: date, last: date) -> tuple[date, date] | None:
    """The longest run of consecutive public holidays starting between ``first`` and ``last`` (the
    earliest of equally long ones): its first and last day."""
    calendar = load_calendar(calendar_name)
    best: tuple[date, date] | None = None
    for day in sorted(d for d in calendar.holidays if first <= d <= last):
        if calendar.is_holiday(day - timedelta(days=1)):
            continue
        end = day
        while calendar.is_holiday(end + timedelta(days=1)):
            end += timedelta(days=1)
        if best is None or end - day > best[1] - best[0]:
            best = (day, end)
    return best


def us_holiday(start_at: datetime) -> Script:
    """A New York account whose first overdue day is the next federal holiday at least a week away."""
    today = start_at.astimezone(ZoneInfo(NEW_YORK)).date()
    calendar = load_calendar("us")
    holiday = min((d for d in calendar.holidays if d >= today + timedelta(days=7)), default=None)
    if holiday is None:
        pytest.skip("the shipped us calendar has no holiday left: add the next year's data")
    due = holiday - timedelta(days=1)
    us_account = account(
        6,
        due,
        phone="+12125550106",
        timezone=NEW_YORK,
        locale="en-US",
        currency="USD",
        amount_due=Decimal("820.00"),
        segment="us_standard",
    )
    reply_at = local(NEW_YORK, due + timedelta(days=5), "18:19:23")
    reply = signal(reply_at, SignalName.CUSTOMER_REPLY, text="ok thanks")
    return Script(f"US federal holiday {holiday} on the first overdue day, a reply", us_account, (reply,))


def birthday_account(due: date) -> AccountInput:
    """Born on the day after ``due`` (1990), the first overdue day; not on 29 February."""
    birthday = due + timedelta(days=1)
    if (birthday.month, birthday.day) == (2, 29):
        due, birthday = due + timedelta(days=1), birthday + timedelta(days=1)
    return account(7, due, birthday=date(1990, birthday.month, birthday.day))


def first_call(actions: list[Action], after: datetime) -> datetime:
    calls = [action.at for action in actions if action.kind == "call_task" and action.at >= after]
    assert calls, f"the script expects a call task after {after}; the simulator gave {actions}"
    return calls[0]


def no_answer_then_reached(simulator: Simulator, script: Script) -> tuple[Happening, ...]:
    """``no_answer`` hours after the first call task, ``reached`` hours after the next one."""
    start_at = simulator.horizon.start
    first = first_call(simulator.actions(script.account, script.signals), start_at)
    no_answer = signal(
        first + timedelta(hours=3, minutes=7, seconds=11), SignalName.CALL_OUTCOME, outcome="no_answer"
    )
    second = first_call(simulator.actions(script.account, (*script.signals, no_answer)), no_answer.at)
    reached_at = second + timedelta(hours=4, minutes=13, seconds=17)
    return no_answer, signal(reached_at, SignalName.CALL_OUTCOME, outcome="reached")


def call_back_after_first_call(simulator: Simulator, script: Script) -> tuple[Happening, ...]:
    """Two and a half hours after the first call task, the customer asks for a call two days later at
    17:45 local."""
    first = first_call(simulator.actions(script.account, script.signals), simulator.horizon.start)
    when = local(
        script.account.timezone, first.astimezone(ZoneInfo(script.account.timezone)).date(), "17:45:00"
    )
    call_back_at = (when + timedelta(days=2)).isoformat()
    outcome_at = first + timedelta(hours=2, minutes=31, seconds=7)
    return (signal(outcome_at, SignalName.CALL_OUTCOME, outcome="call_back", call_back_at=call_back_at),)


def too_close_to_a_signal(simulator: Simulator, script: Script) -> list[str]:
    """Actions the account would take anyway (given only the signals before) near one of its signals."""
    close: list[str] = []
    for index, happening in enumerate(script.signals):
        for action in simulator.actions(script.account, script.signals[:index]):
            if abs(action.at - happening.at) < NEAR_A_SIGNAL:
                close.append(f"{action.kind} {action.template} at {action.at} is near {happening.signal}")
    return close


# --- running and comparing ---------------------------------------------------------------------------


async def sleep_until(env: WorkflowEnvironment, at: datetime) -> None:
    delay = at - await env.get_current_time()
    if delay > timedelta(0):
        await env.sleep(delay)


async def start_clock(env: WorkflowEnvironment) -> datetime:
    """The server's time once it is ``START_CLOCK`` (today's or tomorrow's)."""
    now = await env.get_current_time()
    at = datetime.combine(now.date(), START_CLOCK, UTC)
    await sleep_until(env, at if at > now else at + timedelta(days=1))
    return await env.get_current_time()


def workflow_actions(entries: list[TimelineEntry], end: datetime) -> list[Action]:
    """The sends (the template from the detail, ``<template> touchpoint N (...)``) and the hand-offs
    before ``end``."""
    found: list[Action] = []
    for entry in entries:
        kind = ACTION_KINDS.get(entry.kind)
        at = datetime.fromisoformat(entry.at)
        if kind is None or at >= end:
            continue
        template = entry.detail.split(" touchpoint ")[0] if kind == "sms" else None
        found.append(Action(kind, at, template))
    return found


async def longest_task(handle: WorkflowHandle[Any, Any]) -> timedelta:
    """The longest of the run's workflow tasks, from its start to its completion. Tasks are paired by their
    scheduled event: the test server leaves a completion's ``started_event_id`` unset."""
    started: dict[int, datetime] = {}
    longest = timedelta(0)
    for event in (await handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            task = event.workflow_task_started_event_attributes.scheduled_event_id
            started[task] = event.event_time.ToDatetime()
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            task = event.workflow_task_completed_event_attributes.scheduled_event_id
            longest = max(longest, event.event_time.ToDatetime() - started[task])
    return longest


def difference(script: Script, expected: list[Action], actual: list[Action], slack: timedelta) -> str | None:
    """Both lists side by side, differing rows marked ``!=``; None when they match."""
    if len(expected) == len(actual) and all(
        e.matches(a, slack) for e, a in zip(expected, actual, strict=True)
    ):
        return None
    zone = ZoneInfo(script.account.timezone)
    lines = [
        f"{script.account.account_id} ({script.story}): simulator (expected) | workflow (actual); "
        f"the workflow may be late by up to {slack.total_seconds():.3f} s (its longest task) more"
    ]
    lines += [
        f"   signal {h.signal} at {h.at.astimezone(zone).isoformat()}: {h.payload}" for h in script.signals
    ]
    width = max((len(action.shown(zone)) for action in expected), default=1)
    for index in range(max(len(expected), len(actual))):
        left = expected[index].shown(zone) if index < len(expected) else "-"
        right = actual[index].shown(zone) if index < len(actual) else "-"
        same = index < min(len(expected), len(actual)) and expected[index].matches(actual[index], slack)
        lines.append(f"{'  ' if same else '!='} {index:2d} {left:<{width}} | {right}")
    return "\n".join(lines)


async def test_the_simulator_sends_and_escalates_as_the_workflow_does(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    start_at = await start_clock(env)
    planned = scripts(start_at)
    # The runs start before anything is simulated, each once the one before has planned: a run's first
    # timer starts when its first task ends, late by that task's time, which must not grow with a
    # queue of first tasks (each loads the workflow into a fresh sandbox and prepares the account).
    handles: dict[str, WorkflowHandle[Any, Any]] = {}
    for script in planned:
        handle = await start(client, settings.task_queue, script.account)
        await status(handle)
        handles[script.account.account_id] = handle
    simulator = Simulator(settings, start_at)
    accounts = [script.completed(simulator) for script in planned]
    for script in accounts:
        close = too_close_to_a_signal(simulator, script)
        assert not close, f"{script.account.account_id} ({script.story}): {close}"
    expected = {s.account.account_id: simulator.actions(s.account, s.signals) for s in accounts}

    due = sorted(((h.at, s.account.account_id, h) for s in accounts for h in s.signals), key=lambda d: d[0])
    for at, account_id, happening in due:
        await sleep_until(env, at)
        assert isinstance(happening.payload, dict)
        await handles[account_id].signal(str(happening.signal), happening.payload)
    end = simulator.horizon.end
    await sleep_until(env, end + SETTLE)

    differences: list[str] = []
    sent = 0
    for script in accounts:
        account_id = script.account.account_id
        entries = await timeline(handles[account_id])
        sent += sum(entry.kind == TimelineKind.SMS_SENT for entry in entries)
        slack = await longest_task(handles[account_id])
        found = difference(script, expected[account_id], workflow_actions(entries, end), slack)
        if found is not None:
            differences.append(found)
    assert not differences, "the simulator and the workflow differ:\n\n" + "\n\n".join(differences)
    # Every SMS the workflows recorded went through the send activity to the gateway, once.
    keys = {request.json()["idempotency_key"] for request in gateway.requests_to("/sms")}
    assert len(keys) == sent
