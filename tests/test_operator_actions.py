"""Operator actions answer truthfully: each is a workflow update whose validator refuses what the account
cannot take, before anything is written to its history. Through the HTTP API (200 with the new status,
409 for the account's state, 422 naming the field) and the ``kindly`` CLI (exit 3 with the same reason),
on the real dev server, since the time-skipping server has no updates."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import AccountResult, workflow_id_for
from kindly.domain.search_attributes import TIME_ZONE
from kindly.settings import Settings
from tests.conftest import eventually
from tests.lifecycle_helpers import STARTED
from tests.test_api import AUTH, Api, account_body, get_status, timeline_kinds
from tests.test_cli import kindly

UPDATE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
}
_BUSY = {EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED}


async def open_account(api: Api, **overrides: Any) -> str:
    """A running account, due in 30 days, that has planned its first reminder and sleeps."""
    body = account_body(api, **overrides)
    response = await api.http.post("/accounts", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    account_id = str(body["account_id"])
    STARTED.append(api.client.get_workflow_handle(workflow_id_for(account_id), result_type=AccountResult))
    await eventually(lambda: get_status(api, account_id), lambda s: s["next_touchpoint_at"] is not None)
    return account_id


async def idle_history(api: Api, account_id: str) -> list[EventType.ValueType]:
    """The account's history once no workflow task is pending (the run sleeps)."""
    handle = api.client.get_workflow_handle(workflow_id_for(account_id))

    async def types() -> list[EventType.ValueType]:
        return [event.event_type async for event in handle.fetch_history_events()]

    return await eventually(types, lambda found: bool(found) and found[-1] not in _BUSY)


async def post(api: Api, account_id: str, action: str, body: dict[str, Any]) -> Any:
    return await api.http.post(f"/accounts/{account_id}/{action}", json=body, headers=AUTH)


def shanghai(instant: str) -> datetime:
    parsed = datetime.fromisoformat(instant)
    assert parsed.utcoffset() == timedelta(hours=8), instant
    return parsed


# --- the API ---------------------------------------------------------------------------------------


async def test_accepted_actions_answer_200_with_the_new_status(dev_api: Api) -> None:
    api = dev_api
    account_id = await open_account(api)
    until = (datetime.now().astimezone() + timedelta(days=3)).isoformat()

    paused = await post(api, account_id, "pause", {"reason": "in hospital", "until": until})
    assert paused.status_code == 200, paused.text
    status = paused.json()
    assert status["paused"] and status["stage"] == "paused"
    assert shanghai(status["paused_until"]) == datetime.fromisoformat(until).replace(microsecond=0)
    assert shanghai(status["next_touchpoint_at"]) == shanghai(status["paused_until"]), "it resumes then"
    assert status["next_step"]["kind"] == "resume"

    resumed = await post(api, account_id, "resume", {})
    assert resumed.status_code == 200 and not resumed.json()["paused"]
    assert resumed.json()["paused_until"] is None and resumed.json()["next_step"]["kind"] == "sms"

    paid = await post(api, account_id, "repayment", {"amount": "500", "reference": "P-1"})
    assert paid.status_code == 200, paid.text
    assert paid.json()["amount_due"] == "1000.00" and paid.json()["amount_collected"] == "500.00"
    assert paid.json()["currency"] == "CNY"

    promise_day = api.today + timedelta(days=10)
    promised = await post(api, account_id, "promise", {"date": promise_day.isoformat()})
    assert promised.status_code == 200 and promised.json()["promise_date"] == promise_day.isoformat()

    settled = await post(api, account_id, "settle", {"amount": "1000.00", "reference": "S-1"})
    assert settled.status_code == 200, settled.text
    final = settled.json()
    assert final["stage"] == "settled" and final["next_touchpoint_at"] is None and final["next_step"] is None
    assert {"paused", "resumed", "repayment_received", "promise", "settled"} <= set(
        await timeline_kinds(api, account_id)
    )


@pytest.mark.parametrize(
    ("action", "body", "code", "field", "words"),
    [
        ("resume", {}, 409, None, "account is not paused"),
        ("pause", {"reason": "r", "until": "2020-01-01T09:00:00+08:00"}, 422, "until", "not in the future"),
        ("settle", {"amount": "99999", "reference": "S-9"}, 422, "amount", "more than the amount due"),
        ("promise", {"date": "{far}"}, 422, "date", "more than 366 days ahead"),
        ("promise", {"date": "{past}"}, 422, "date", "is in the past"),
        ("call-outcome", {"outcome": "promise_to_pay"}, 422, "promise_date", "required"),
    ],
)
async def test_a_refused_action_says_why_and_writes_nothing(
    dev_api: Api, action: str, body: dict[str, Any], code: int, field: str | None, words: str
) -> None:
    api = dev_api
    account_id = await open_account(api)
    far, past = api.today + timedelta(days=400), api.today - timedelta(days=1)
    body = {k: v.format(far=far, past=past) if isinstance(v, str) else v for k, v in body.items()}
    before = await idle_history(api, account_id)
    timeline_before = await timeline_kinds(api, account_id)

    response = await post(api, account_id, action, body)

    assert response.status_code == code, response.text
    if code == 409:
        assert words in response.json()["detail"]
    else:
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", field] and words in error["msg"], error
    after = await idle_history(api, account_id)
    assert after == before and not UPDATE_EVENTS & set(after), "a refused update leaves no trace"
    assert await timeline_kinds(api, account_id) == timeline_before


async def test_a_credited_payment_and_an_ended_account_are_409(dev_api: Api) -> None:
    api = dev_api
    account_id = await open_account(api)
    first = await post(api, account_id, "repayment", {"amount": "100", "reference": "P-7"})
    assert first.status_code == 200
    again = await post(api, account_id, "repayment", {"amount": "100", "reference": "P-7"})
    assert again.status_code == 409 and "payment P-7 was already credited" in again.json()["detail"]
    assert (await get_status(api, account_id))["amount_due"] == "1400.00", "credited once"

    closed = await post(api, account_id, "close", {"reason": "written off"})
    assert closed.status_code == 200 and closed.json()["stage"] == "closed"
    await api.client.get_workflow_handle(workflow_id_for(account_id)).result()
    late = await post(api, account_id, "pause", {"reason": "x"})
    assert late.status_code == 409 and "closed (completed)" in late.json()["detail"], late.text
    unknown = await post(api, "NO-SUCH-ACCOUNT", "resume", {})
    assert unknown.status_code == 404, unknown.text


async def test_the_contact_and_policy_actions_answer_with_the_status(dev_api: Api) -> None:
    api = dev_api
    account_id = await open_account(api)
    moved = await post(api, account_id, "contact", {"timezone": "America/New_York"})
    assert moved.status_code == 200, moved.text
    offset = datetime.fromisoformat(moved.json()["next_touchpoint_at"]).utcoffset()
    assert offset == timedelta(hours=-5), "December in New York: its instants now carry its offset"
    handle = api.client.get_workflow_handle(workflow_id_for(account_id))
    await eventually(
        handle.describe, lambda found: found.typed_search_attributes.get(TIME_ZONE) == "America/New_York"
    )
    empty = await post(api, account_id, "contact", {})
    assert empty.status_code == 422 and "give at least one of" in empty.text
    refreshed = await post(api, account_id, "refresh-policy", {"reason": "new cadence"})
    assert refreshed.status_code == 200, refreshed.text
    assert "policy_refreshed" in await timeline_kinds(api, account_id)


async def test_a_signal_is_refused_as_the_update_is(dev_api: Api) -> None:
    """The signals stay for the Temporal CLI and webhooks; they take the same checks, recorded."""
    api = dev_api
    account_id = await open_account(api)
    handle = api.client.get_workflow_handle(workflow_id_for(account_id))
    await handle.signal("settle", {"amount": "99999", "reference": "S-SIG"})
    timeline = await eventually(
        lambda: api.http.get(f"/accounts/{account_id}/timeline", headers=AUTH),
        lambda r: "signal_rejected" in r.text,
    )
    [rejected] = [entry for entry in timeline.json() if entry["kind"] == "signal_rejected"]
    assert rejected["detail"] == "settle: amount: 99999 is more than the amount due (1500.00 CNY)"
    assert (await get_status(api, account_id))["stage"] == "pre_due"


# --- the CLI ---------------------------------------------------------------------------------------


async def test_the_cli_shows_the_new_status_and_exits_3_when_refused(
    dev_env: WorkflowEnvironment, dev_api: Api, settings: Settings
) -> None:
    account_id = await open_account(dev_api)

    paused = await kindly(dev_env, settings, "pause", account_id, "--reason", "dispute")
    assert paused.exit_code == 0 and "pause: done" in paused.output, paused.output
    assert (await kindly(dev_env, settings, "resume", account_id)).exit_code == 0
    done = await kindly(dev_env, settings, "pay", account_id, "--amount", "250", "--reference", "PAY-1")
    assert done.exit_code == 0, done.output
    assert "repayment: done" in done.output and "1250.00" in done.output

    for args, reason in (
        (["pay", account_id, "--amount", "1", "--reference", "PAY-1"], "payment PAY-1 was already credited"),
        (["resume", account_id], "account is not paused"),
        (["settle", account_id, "--amount", "99999", "--reference", "S"], "amount: 99999 is more than"),
        (["pause", account_id, "--reason", "r", "--until", "2020-01-01T09:00:00+08:00"], "until: "),
        (["promise", account_id, "--date", "2099-01-01"], "date: 2099-01-01 is more than 366 days ahead"),
    ):
        refused = await kindly(dev_env, settings, *args)
        assert refused.exit_code == 3, refused.output
        assert refused.output.startswith("error: refused: ") and reason in refused.output, refused.output

    status = await get_status(dev_api, account_id)
    assert Decimal(status["amount_due"]) == Decimal("1250.00") and not status["paused"]

    closed = await kindly(dev_env, settings, "close", account_id, "--reason", "written off")
    assert closed.exit_code == 0 and "closed" in closed.output
    await dev_api.client.get_workflow_handle(workflow_id_for(account_id)).result()
    ended = await kindly(dev_env, settings, "resume", account_id)
    assert ended.exit_code == 3 and "closed (completed)" in ended.output, ended.output
    unknown = await kindly(dev_env, settings, "resume", "NO-SUCH-ACCOUNT")
    assert unknown.exit_code == 1 and "no workflow for account 'NO-SUCH-ACCOUNT'" in unknown.output
