"""Capture workflow histories of the current code into tests/histories/ for the replay test.

Run ``.venv/bin/python -m tests.capture_histories`` after a release, commit the new files, and keep
the old ones: the replay test then fails the build whenever a change would break accounts in flight
(``docs/versioning.md``). The ``1.0-*`` files are the baseline every later version must replay; the
``1.1-*`` files take the paths of the ``kindly-1.1`` patch, and the operator actions as updates; the
``1.2-*`` files those of ``kindly-1.2`` (a call-back, a specialist's account handed back); the ``1.3-*``
files those of ``kindly-1.3`` (a complaint opened by a reply, escalated, resolved). The
scenarios run on the time-skipping server, and those with updates on the dev server, with fake
customers only.

Payloads are encrypted like production's (``kindly.codec``), with the fixed, public test keys of
``tests/histories/keys.json``, so the stored histories exercise the codec on replay and stay readable
whatever keys the other tests use. Never change or drop a key in that file: add a new one and make it
current. A history of a real account fetched with ``temporal workflow show --output json`` (test data
only) holds the payloads as the server has them, encrypted with the deployment's keys: fetch it with
``--codec-endpoint`` so it is decrypted (docs/versioning.md), then it replays whatever the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from kindly.codec import data_converter
from kindly.domain.contract import AccountStatus
from kindly.domain.experiments import checked_definition
from kindly.domain.policy.model import load_policies
from kindly.keyring import load_keyring
from kindly.programs.demo import demo_accounts
from kindly.programs.dev_server import bundled_binary
from kindly.programs.temporal import ensure_search_attributes
from kindly.programs.worker import build_worker
from kindly.settings import Settings
from kindly.store import make_engine
from kindly.store.experiments import ExperimentStore
from tests.http_recorder import RecordingHttpServer
from tests.lifecycle_helpers import local_today, make_account, start

HISTORIES = Path(__file__).parent / "histories"
KEYS_FILE = HISTORIES / "keys.json"
VERSION = "1.3"


def history_encryption_settings() -> dict[str, Any]:
    """The ``Settings`` fields of the histories' key ring (``encryption_keys`` and so on)."""
    fields: dict[str, Any] = json.loads(KEYS_FILE.read_text(encoding="utf-8"))
    return fields


def history_converter() -> DataConverter:
    """The worker's data converter with the histories' keys: what captures and what replays."""
    return data_converter(load_keyring(Settings(_env_file=None, **history_encryption_settings())))


_GATEWAY: list[RecordingHttpServer] = []
"""The capture's gateway, for scenarios that make it fail."""


async def _escalation(env: WorkflowEnvironment, client: Client, queue: str) -> WorkflowHandle:  # type: ignore[type-arg]
    handle = await start(client, queue, make_account((await local_today(env)) - timedelta(days=1)))
    return await _escalate(env, handle)


async def _escalate(env: WorkflowEnvironment, handle: WorkflowHandle) -> WorkflowHandle:  # type: ignore[type-arg]
    await env.sleep(timedelta(days=1))
    await handle.signal("customer_reply", {"text": "HELP"})
    await env.sleep(timedelta(days=22))
    await handle.signal("call_outcome", {"outcome": "no_answer"})
    await env.sleep(timedelta(days=3))
    await handle.signal("repayment", {"amount": "-1", "reference": "bad"})
    await handle.signal("settle", {"amount": "900", "reference": "S-1"})
    await handle.result()
    return handle


async def _promise_pause_paid(env: WorkflowEnvironment, client: Client, queue: str) -> WorkflowHandle:  # type: ignore[type-arg]
    today = await local_today(env)
    handle = await start(client, queue, make_account(today + timedelta(days=10)))
    await env.sleep(timedelta(days=11))
    await handle.signal("promise_to_pay", {"date": (today + timedelta(days=14)).isoformat()})
    await env.sleep(timedelta(days=6))
    await handle.signal("pause", {"reason": "review"})
    await env.sleep(timedelta(days=2))
    await handle.signal("resume", {})
    await handle.signal("repayment", {"amount": "500", "reference": "P-1"})
    await env.sleep(timedelta(days=8))
    await handle.signal("repayment", {"amount": "1000", "reference": "P-2"})
    await handle.result()
    return handle


async def _long_life(env: WorkflowEnvironment, client: Client, queue: str) -> WorkflowHandle:  # type: ignore[type-arg]
    """Weeks of reminders and replies (the run continues as new), a policy refresh, a settlement."""
    handle = await start(client, queue, make_account((await local_today(env)) - timedelta(days=1)))
    for week in range(5):
        await env.sleep(timedelta(days=14))
        await handle.signal("customer_reply", {"text": f"I will pay soon ({week})"})
    await handle.signal("refresh_policy", {"reason": "capture"})
    await env.sleep(timedelta(days=14))
    await handle.signal("settle", {"amount": "1200", "reference": "S-LONG"})
    await handle.result()
    return handle


async def _reply_retried_then(
    env: WorkflowEnvironment, client: Client, queue: str, reply: str, name: str, payload: dict[str, Any]
) -> WorkflowHandle:  # type: ignore[type-arg]
    """An account weeks from its first reminder; the customer's ``reply`` is answered while the gateway
    is down; once the answer has been refused a few times, signal ``name``; then the gateway recovers."""
    gateway = _GATEWAY[0]
    # A number of its own: an opt-out is stored per number, and another scenario's STOP would carry over.
    phone = f"+861390013{len(gateway.requests):04d}"
    account = make_account((await local_today(env)) + timedelta(days=20), phone=phone)
    handle = await start(client, queue, account)
    gateway.clear()
    gateway.respond_with(*[503] * 1000)
    await handle.signal("customer_reply", {"text": reply})
    for _ in range(300):  # the service window may open hours from now
        if len(gateway.requests_to("/sms")) >= 3:
            break
        await env.sleep(timedelta(minutes=10))
    await handle.signal(name, payload)
    await env.sleep(timedelta(minutes=5))
    gateway.clear()
    return handle


async def _stale_send_cancelled(env: WorkflowEnvironment, client: Client, queue: str) -> WorkflowHandle:  # type: ignore[type-arg]
    """A HELP reply retrying through a gateway outage when the customer replies STOP: the reply is
    cancelled and only the opt-out confirmation goes."""
    handle = await _reply_retried_then(env, client, queue, "HELP", "customer_reply", {"text": "STOP"})
    await env.sleep(timedelta(days=1))
    await handle.signal("close", {"reason": "capture"})
    await handle.result()
    return handle


async def _confirmation_after_end(env: WorkflowEnvironment, client: Client, queue: str) -> WorkflowHandle:  # type: ignore[type-arg]
    """STOP, the confirmation retrying through an outage, then payment in full: the confirmation is
    cancelled (its amount is no longer true) and goes, without an amount, before the run completes."""
    payment = {"amount": "1500", "reference": "END-1"}
    handle = await _reply_retried_then(env, client, queue, "STOP", "repayment", payment)
    await handle.result()
    return handle


async def _night_start(env: WorkflowEnvironment, client: Client, queue: str) -> WorkflowHandle:  # type: ignore[type-arg]
    """The demo's night-time account: its reminder due today waits for the morning (a deferral of the
    same day), goes, and a payment in full ends the account."""
    now = await env.get_current_time()
    [night] = [account for account in demo_accounts(now) if account.account_id.endswith("-NIGHT")]
    handle = await start(client, queue, night.model_copy(update={"segment": "plain"}))
    await env.sleep(timedelta(days=1))
    await handle.signal("repayment", {"amount": str(night.amount_due), "reference": "NIGHT-1"})
    await handle.result()
    return handle


async def _operator_updates(env: WorkflowEnvironment, client: Client, queue: str) -> WorkflowHandle:  # type: ignore[type-arg]
    """Operator actions as updates (the dev server's): a pause, a refused pause that leaves no trace, a
    resume, a payment and a settlement."""
    handle = await start(client, queue, make_account((await local_today(env)) + timedelta(days=20)))
    await handle.execute_update("pause", {"reason": "capture"}, result_type=AccountStatus)
    with contextlib.suppress(WorkflowUpdateFailedError):
        await handle.execute_update("pause", {"reason": "late", "until": "2020-01-01T00:00:00+00:00"})
    await handle.execute_update("resume", {}, result_type=AccountStatus)
    await handle.execute_update("repayment", {"amount": "100", "reference": "P-U"}, result_type=AccountStatus)
    await handle.execute_update("settle", {"amount": "500", "reference": "S-U"}, result_type=AccountStatus)
    await handle.result()
    return handle


async def _experiment_shadow(env: WorkflowEnvironment, client: Client, queue: str) -> WorkflowHandle:  # type: ignore[type-arg]
    """An account of a shadow arm (the capture's experiment on segment ``shadowed``): it acts as the
    champion and records what the arm would do, through reminders and a payment in full."""
    today = await local_today(env)
    handle = await start(client, queue, make_account(today + timedelta(days=8), segment="shadowed"))
    await env.sleep(timedelta(days=9))
    await handle.signal("repayment", {"amount": "1500", "reference": "SHADOW-1"})
    await handle.result()
    return handle


async def _call_back(env: WorkflowEnvironment, client: Client, queue: str) -> WorkflowHandle:  # type: ignore[type-arg]
    """Three unanswered reminders, a call task, a customer who asks to be called back the next
    afternoon: the call-back's task comes then (beyond the policy's attempts), nobody answers it, and
    a settlement ends the account."""
    handle = await start(client, queue, make_account((await local_today(env)) - timedelta(days=1)))
    await env.sleep(timedelta(days=22))
    now = await env.get_current_time()
    tomorrow = (now + timedelta(days=1)).astimezone(ZoneInfo("Asia/Shanghai")).date()
    at = datetime.combine(tomorrow, time(15, 0), ZoneInfo("Asia/Shanghai"))
    await handle.signal("call_outcome", {"outcome": "call_back", "call_back_at": at.isoformat()})
    await env.sleep(timedelta(days=2))
    await handle.signal("call_outcome", {"outcome": "no_answer"})
    await env.sleep(timedelta(hours=1))
    await handle.signal("settle", {"amount": "900", "reference": "S-CB"})
    await handle.result()
    return handle


async def _specialist_hand_back(env: WorkflowEnvironment, client: Client, queue: str) -> WorkflowHandle:  # type: ignore[type-arg]
    """A customer reports hardship, the specialists take the account, then hand it back to the automated
    cadence (a resume); its next reminder goes and a payment in full ends it."""
    handle = await start(client, queue, make_account((await local_today(env)) - timedelta(days=1)))
    await env.sleep(timedelta(days=1))
    await handle.signal("customer_reply", {"text": "hardship: I lost my job"})
    await env.sleep(timedelta(days=1))
    await handle.signal("resume", {})
    await env.sleep(timedelta(days=8))
    await handle.signal("repayment", {"amount": "1500", "reference": "HB-1"})
    await handle.result()
    return handle


async def _complaint(env: WorkflowEnvironment, client: Client, queue: str) -> WorkflowHandle:  # type: ignore[type-arg]
    """A reply that complains opens a complaint and holds contact; its acknowledgement's deadline passes
    (escalated by the workflow's timer); it is acknowledged and resolved, an operator resumes contact,
    the next reminder goes and a payment in full ends the account."""
    handle = await start(client, queue, make_account((await local_today(env)) - timedelta(days=1)))
    await env.sleep(timedelta(days=1))
    await handle.signal("customer_reply", {"text": "我要投诉 12378"})
    await env.sleep(timedelta(days=4))
    await handle.signal("acknowledge_complaint", {"complaint": 1, "note": "capture"})
    await handle.signal("resolve_complaint", {"complaint": 1, "outcome": "upheld", "note": "capture"})
    await env.sleep(timedelta(days=1))
    await handle.signal("resume", {})
    await env.sleep(timedelta(days=2))
    await handle.signal("repayment", {"amount": "1500", "reference": "C-1"})
    await handle.result()
    return handle


async def _complaint_updates(env: WorkflowEnvironment, client: Client, queue: str) -> WorkflowHandle:  # type: ignore[type-arg]
    """Complaints as updates (the dev server's): one opened, a second refused, acknowledged, resolved,
    a resume, and a settlement."""
    handle = await start(client, queue, make_account((await local_today(env)) + timedelta(days=20)))
    await handle.execute_update("open_complaint", {"channel": "console"}, result_type=AccountStatus)
    with contextlib.suppress(WorkflowUpdateFailedError):
        await handle.execute_update("open_complaint", {"channel": "api"})
    await handle.execute_update(
        "acknowledge_complaint", {"complaint": 1, "note": "capture"}, result_type=AccountStatus
    )
    resolve = {"complaint": 1, "outcome": "not_upheld", "note": "capture"}
    await handle.execute_update("resolve_complaint", resolve, result_type=AccountStatus)
    await handle.execute_update("resume", {}, result_type=AccountStatus)
    await handle.execute_update("settle", {"amount": "500", "reference": "S-C"}, result_type=AccountStatus)
    await handle.result()
    return handle


SHADOW_EXPERIMENT = {
    "name": "capture-shadow",
    "segments": ["shadowed"],
    "champion": "champion",
    "arms": [
        {"name": "champion", "weight": 1},
        # Nearly every account: the scenario's account is the shadow arm's.
        {"name": "later", "weight": 100_000, "shadow": True, "overlay": {"pre_due_days": [3, 0]}},
    ],
}


Scenario = Callable[[WorkflowEnvironment, Client, str], Awaitable[WorkflowHandle]]  # type: ignore[type-arg]

SCENARIOS: dict[str, Scenario] = {
    "escalation": _escalation,
    "promise_pause_paid": _promise_pause_paid,
    "long_life": _long_life,
    "stale_send_cancelled": _stale_send_cancelled,
    "confirmation_after_end": _confirmation_after_end,
    "night_start": _night_start,
    "experiment_shadow": _experiment_shadow,
    "call_back": _call_back,
    "specialist_hand_back": _specialist_hand_back,
    "complaint": _complaint,
}
"""Scenarios on the time-skipping server."""
UPDATE_SCENARIOS: dict[str, Scenario] = {
    "operator_updates": _operator_updates,
    "complaint_updates": _complaint_updates,
}
"""Scenarios on the dev server, which takes workflow updates (in real time: they must be quick)."""


async def main(only: Sequence[str] = ()) -> None:
    """Capture every scenario, or those named (``python -m tests.capture_histories long_life``)."""
    HISTORIES.mkdir(exist_ok=True)
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=bundled_binary("temporal-test-server"),
        data_converter=history_converter(),
    )
    try:
        await _capture(env, {n: s for n, s in SCENARIOS.items() if not only or n in only})
    finally:
        await env.shutdown()
    chosen = {n: s for n, s in UPDATE_SCENARIOS.items() if not only or n in only}
    if chosen:
        dev = await WorkflowEnvironment.start_local(
            dev_server_existing_path=bundled_binary("temporal"), data_converter=history_converter(), ui=False
        )
        try:
            await _capture(dev, chosen)
        finally:
            await dev.shutdown()


async def _capture(env: WorkflowEnvironment, scenarios: dict[str, Scenario]) -> None:
    await ensure_search_attributes(env.client, env.client.namespace)
    with RecordingHttpServer() as gateway, tempfile.TemporaryDirectory() as folder:
        policies = Path(folder) / "policies.json"
        segments = {"plain": {"holiday_calendar": None}, "shadowed": {"holiday_calendar": None}}
        policies.write_text(json.dumps(segments))
        settings = Settings(
            _env_file=None,
            task_queue=f"capture-{uuid.uuid4().hex[:8]}",
            database_url=f"sqlite:///{folder}/kindly.db",
            sms_provider="webhook",
            sms_webhook_url=f"{gateway.url}/sms",
            phone_webhook_url=f"{gateway.url}/phone",
            specialist_webhook_url=f"{gateway.url}/specialist",
            policy_file=policies,
            continue_as_new_after_events=100,
            **history_encryption_settings(),
        )
        _GATEWAY[:] = [gateway]
        ExperimentStore(make_engine(settings.database_url)).start(
            checked_definition(SHADOW_EXPERIMENT, load_policies(policies)),
            at=datetime.now(UTC) - timedelta(days=1),
        )
        async with build_worker(env.client, settings) as worker, worker:
            for name, scenario in scenarios.items():
                handle = await scenario(env, env.client, settings.task_queue)
                # The first run: for a run that continued as new, the history up to that point.
                first_run = env.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
                history = await first_run.fetch_history()
                path = HISTORIES / f"{VERSION}-{name}.json"
                path.write_text(history.to_json(), encoding="utf-8")
                print(f"captured {path} ({len(history.events)} events)")
                # And the run that ended it, when it continued as new: a run on carried state.
                last_run = env.client.get_workflow_handle(handle.id)
                last = await last_run.fetch_history()
                if last.run_id != history.run_id:
                    path = HISTORIES / f"{VERSION}-{name}-last_run.json"
                    path.write_text(last.to_json(), encoding="utf-8")
                    print(f"captured {path} ({len(last.events)} events)")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
