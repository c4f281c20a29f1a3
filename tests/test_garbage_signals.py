"""Garbage to every signal and to the workflow input, on the time-skipping test server.

Signals: for every name in ``SIGNAL_MODELS`` the payloads are built systematically from one valid
example: the whole payload replaced by junk (scalars, lists, nested junk, huge strings, null), each
field replaced by each junk value, each required field removed, an unknown field added. Only payloads
that the contract refuses are sent (a junk value that happens to be valid, like ``3.5`` for an amount,
would legitimately change the account). Each must show in the timeline as ``signal_rejected`` with the
contract's own description naming the field, and change nothing: afterwards the workflow answers
``status`` as before and still credits a valid repayment.

Workflow input: the same junk in place of the account (and of each of its fields) fails the workflow
at once with a non-retryable ``InvalidAccountInput`` naming the field: no workflow task fails, so
nothing retries forever.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import (
    SIGNAL_MODELS,
    WORKFLOW_TYPE,
    AccountInput,
    AccountResult,
    Outcome,
    SignalName,
    Stage,
    TimelineKind,
)
from kindly.domain.validation import describe_validation_error
from kindly.settings import Settings
from tests.conftest import eventually
from tests.lifecycle_helpers import STARTED, local_today, make_account, start, status, timeline

HUGE = "九" * 40_000 + "x" * 60_000  # 100,000 characters, 180 KB of UTF-8
_rng = random.Random(20261123)


def _nested(depth: int) -> Any:
    """Deterministic nested junk: lists and objects of junk, ``depth`` levels deep."""
    if depth == 0:
        return _rng.choice([None, False, 0, -7, 2.5e300, "", "\x00\u202e💥", "x" * _rng.randint(1, 40)])
    if _rng.random() < 0.5:
        return [_nested(depth - 1) for _ in range(_rng.randint(1, 3))]
    return {f"k{_rng.randint(0, 99)}": _nested(depth - 1) for _ in range(_rng.randint(1, 3))}


NESTED = [_nested(depth) for depth in (1, 3, 8)] + [{"a": {"b": {"c": {"d": [[[[[[None]]]]]]}}}}]
JUNK_VALUES: list[Any] = [
    None,
    True,
    -1,
    0,
    10**30,
    3.5,
    "",
    " ",
    "\x00\u202e💥",
    "null",
    HUGE,
    [],
    ["x", 1, None],
    {},
    *NESTED,
]
JUNK_PAYLOADS: list[Any] = [
    "fifty",
    42,
    3.14,
    True,
    False,
    [],
    [{"amount": "1"}],
    HUGE,
    {"unexpected": "field"},
    {"": None},
    *NESTED,
]

VALID_SIGNALS: dict[SignalName, dict[str, Any]] = {
    SignalName.REPAYMENT: {"amount": "10.00", "reference": "R-1"},
    SignalName.CUSTOMER_REPLY: {"text": "hello"},
    SignalName.PAUSE: {"reason": "check", "until": "2030-01-01T09:00:00+08:00"},
    SignalName.RESUME: {},
    SignalName.SETTLE: {"amount": "10.00", "reference": "S-1"},
    SignalName.CLOSE: {"reason": "written off"},
    SignalName.PROMISE_TO_PAY: {"date": "2030-01-01"},
    SignalName.CALL_OUTCOME: {"outcome": "reached", "promise_date": "2030-01-01"},
    SignalName.UPDATE_CONTACT: {
        "phone": "+8613900139000",
        "timezone": "Asia/Shanghai",
        "locale": "en-US",
        "contact_after": "10:00",
        "contact_before": "18:00",
    },
    SignalName.SMS_UNDELIVERABLE: {"reason": "number does not exist"},
    SignalName.SELF_SERVICE: {"choice": "promise", "date": "2030-01-01", "touchpoint": 1},
    SignalName.REFRESH_POLICY: {"reason": "policy file changed"},
    SignalName.OPEN_COMPLAINT: {
        "channel": "console",
        "received_at": "2026-12-01T09:00:00+08:00",
        "note": "unhappy with the calls",
    },
    SignalName.ACKNOWLEDGE_COMPLAINT: {"complaint": 1, "note": "called back and explained"},
    SignalName.RESOLVE_COMPLAINT: {"complaint": 1, "outcome": "upheld", "note": "apologised"},
}
# Misspelt or invented signal names: rejected as unknown, whatever their payload.
UNKNOWN_SIGNALS = ["pasue", "REPAYMENT", "repayment ", "../../etc/passwd", "x" * 1000, "信号"]

# Well-formed payloads the workflow refuses for what they ask (the account is not paused; an
# update that changes nothing): rejected too, with these words.
REFUSED_WHEN_VALID = {
    SignalName.RESUME: "account is not paused",
    SignalName.UPDATE_CONTACT: "give at least one of phone, timezone, locale",
}


def _variants(valid: dict[str, Any], model: type[BaseModel]) -> Iterator[tuple[str, Any]]:
    """(what was broken, payload) for every systematic corruption of ``valid``; what was broken is
    the field the error must name ("payload" for the whole, "" for an object of junk fields)."""
    for junk in JUNK_PAYLOADS:
        yield ("" if isinstance(junk, dict) else "payload"), junk
    for name in model.model_fields:
        for junk in JUNK_VALUES:
            yield name, {**valid, name: junk}
        if model.model_fields[name].is_required():
            yield name, {k: v for k, v in valid.items() if k != name}
    yield "bogus", {**valid, "bogus": _nested(2)}
    yield "", None  # null: read as an empty object


def signal_cases() -> list[tuple[SignalName, Any, str]]:
    """(signal, payload, expected timeline detail) for every garbage payload of every signal."""
    assert set(VALID_SIGNALS) == set(SIGNAL_MODELS), "every signal needs a valid example here"
    cases = []
    for name, model in SIGNAL_MODELS.items():
        valid = VALID_SIGNALS[name]
        model.model_validate(valid)  # the example itself is valid
        for broken, payload in _variants(valid, model):
            try:
                model.model_validate({} if payload is None else payload)
            except ValidationError as err:
                expected = f"{name}: {describe_validation_error(err)}"
                assert broken in expected, (broken, expected)
                cases.append((name, payload, expected))
            else:
                if name in REFUSED_WHEN_VALID and not any(v is not None for v in (payload or {}).values()):
                    cases.append((name, payload, f"{name}: {REFUSED_WHEN_VALID[name]}"))
    return cases


async def _garbage_to_one_signal(
    client: Client, task_queue: str, account: AccountInput, signal: str, cases: list[tuple[Any, str]]
) -> None:
    """Send every garbage payload of one signal to a fresh account, then check it is unharmed."""
    handle = await start(client, task_queue, account)
    before = await eventually(lambda: status(handle), lambda s: s.next_touchpoint_at is not None)
    for batch in range(0, len(cases), 25):
        await asyncio.gather(*(handle.signal(signal, payload) for payload, _ in cases[batch : batch + 25]))

    entries = await eventually(
        lambda: timeline(handle),
        lambda t: sum(e.kind is TimelineKind.SIGNAL_REJECTED for e in t) >= len(cases),
        attempts=2000,
    )
    rejected = sorted(e.detail for e in entries if e.kind is TimelineKind.SIGNAL_REJECTED)
    assert rejected == sorted(detail for _, detail in cases), signal
    assert {e.kind for e in entries} == {TimelineKind.STARTED, TimelineKind.SIGNAL_REJECTED}

    # Nothing changed, the workflow still answers, and a valid signal is still processed.
    after = await status(handle)
    assert after == before, signal
    assert after.stage is Stage.PRE_DUE and not after.paused and after.amount_due == Decimal("1500.00")
    await handle.signal(SignalName.REPAYMENT, {"amount": "100.00", "reference": "GOOD-1"})
    await eventually(lambda: status(handle), lambda s: s.amount_due == Decimal("1400.00"))
    await handle.signal(SignalName.REPAYMENT, {"amount": "1400.00", "reference": "GOOD-2"})
    result = await asyncio.wait_for(handle.result(), timeout=60)
    assert result == AccountResult(outcome=Outcome.REPAID, amount_collected=Decimal("1500.00"))


async def test_garbage_to_every_signal_is_rejected_by_name_and_changes_nothing(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    cases = signal_cases()
    by_signal: dict[str, list[tuple[Any, str]]] = {}
    for name, payload, detail in cases:
        by_signal.setdefault(name, []).append((payload, detail))
    assert set(by_signal) == set(SIGNAL_MODELS)
    # Misspelt or invented names are rejected as unknown, whatever their payload.
    known = ", ".join(SignalName)
    by_signal.update(
        {
            name: [(junk, f"unknown signal {name[:64]!r}; known: {known}")]
            for name, junk in zip(UNKNOWN_SIGNALS, JUNK_PAYLOADS, strict=False)
        }
    )
    today = await local_today(env)
    # Nothing here waits for a timer: time stays put (a skip could time out busy workflow tasks).
    with env.auto_time_skipping_disabled():
        await asyncio.gather(
            *(
                _garbage_to_one_signal(
                    client, settings.task_queue, make_account(today + timedelta(days=20)), name, c
                )
                for name, c in by_signal.items()
            )
        )


async def test_a_rejection_does_not_copy_huge_input_into_the_timeline(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    handle = await start(
        client, settings.task_queue, make_account((await local_today(env)) + timedelta(days=20))
    )
    await handle.signal(SignalName.UPDATE_CONTACT, {"timezone": HUGE})
    await handle.signal(SignalName.PAUSE, {"reason": "check", HUGE: 1})
    entries = await eventually(
        lambda: timeline(handle), lambda t: sum(e.kind is TimelineKind.SIGNAL_REJECTED for e in t) == 2
    )
    details = [e.detail for e in entries if e.kind is TimelineKind.SIGNAL_REJECTED]
    assert details[0].startswith("update_contact: timezone: ")
    assert details[1].startswith("pause: ") and "Extra inputs are not permitted" in details[1]
    assert max(len(detail) for detail in details) <= 1000


def input_cases(valid: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(what was broken, input, expected error) for every garbage workflow input."""
    cases = []
    for broken, account in _variants(valid, AccountInput):
        try:
            AccountInput.model_validate(account)
        except ValidationError as err:
            expected = describe_validation_error(err)
            assert broken in expected, (broken, expected)
            cases.append((broken, account, expected))
    return cases


async def _failure_of(client: Client, task_queue: str, account: Any) -> tuple[ApplicationError, list[Any]]:
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        WORKFLOW_TYPE, args=[account], id=f"overdue-garbage-{uuid.uuid4().hex[:12]}", task_queue=task_queue
    )
    STARTED.append(handle)
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=60)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError), (cause, repr(account)[:300])
    events = [event.event_type async for event in handle.fetch_history_events()]
    return cause, events


async def test_garbage_workflow_input_fails_at_once_naming_the_field(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    valid = make_account((await local_today(env)) + timedelta(days=3)).model_dump(mode="json")
    cases = input_cases(valid)
    assert len(cases) > 100
    for batch in range(0, len(cases), 20):
        chunk = cases[batch : batch + 20]
        # A failure needs no timer: time stays put (a skip could time out busy workflow tasks).
        with env.auto_time_skipping_disabled():
            outcomes = await asyncio.gather(
                *(_failure_of(client, settings.task_queue, a) for _, a, _ in chunk)
            )
        for (broken, _, expected), (cause, events) in zip(chunk, outcomes, strict=True):
            assert cause.type == "InvalidAccountInput" and cause.non_retryable, cause
            assert cause.message == f"invalid account input: {expected}", (broken, cause.message)
            assert broken in cause.message
            # Failed by the first workflow task: none failed and was retried.
            assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events, broken
            assert events.count(EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED) == 1, broken
            assert events[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED


async def _first_outcome(handle: WorkflowHandle[Any, Any]) -> list[Any]:
    return [event.event_type async for event in handle.fetch_history_events()]


def _ended_or_task_failed(events: list[Any]) -> bool:
    return bool(
        {EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED}
        & set(events)
    )


@pytest.mark.parametrize(
    "args",
    [
        pytest.param("none", id="no-argument"),
        pytest.param("state", id="garbage-state"),
        pytest.param("extra", id="extra-arguments"),
    ],
)
async def test_garbage_workflow_arguments_fail_at_once(
    env: WorkflowEnvironment, client: Client, settings: Settings, args: str
) -> None:
    valid = make_account((await local_today(env)) + timedelta(days=3)).model_dump(mode="json")
    choices: dict[str, list[Any]] = {
        "none": [],
        "state": [valid, {"timeline": "junk"}],
        "extra": [valid, None, "junk", 42],
    }
    arguments = choices[args]
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        WORKFLOW_TYPE,
        args=arguments,
        id=f"overdue-garbage-{uuid.uuid4().hex[:12]}",
        task_queue=settings.task_queue,
    )
    STARTED.append(handle)
    with env.auto_time_skipping_disabled():
        events = await eventually(lambda: _first_outcome(handle), _ended_or_task_failed, attempts=1200)
    if EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED in events:
        failed = [
            e.workflow_task_failed_event_attributes.failure
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        ]
        error = await client.data_converter.decode_failure(failed[0])
        pytest.fail(f"the workflow task fails and is retried instead: {error!r}")
    assert events[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
