"""A complaint's life on the real time-skipping Temporal server: opened by the customer's reply, contact
held, the acknowledgement's deadline missed and escalated by the workflow's own timer, resolved, and
contact resumed by an operator; and what the audit log keeps of it."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import Stage
from kindly.settings import Settings
from kindly.store import AuditStore
from tests.conftest import eventually, sms_requests
from tests.http_recorder import RecordingHttpServer
from tests.lifecycle_helpers import days, kinds, local_today, make_account, start, status, timeline


async def test_a_complaint_from_reply_to_resumed_contact(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    gateway: RecordingHttpServer,
    store: AuditStore,
) -> None:
    account = make_account((await local_today(env)) - timedelta(days=1))
    handle = await start(client, settings.task_queue, account)
    await env.sleep(days(1))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)

    await handle.signal("customer_reply", {"text": "天天发短信，我要投诉你们，打12378"})
    held = await eventually(lambda: status(handle), lambda s: s.contact_held_for_complaint)
    assert held.stage is Stage.PAUSED and held.paused is False
    (complaint,) = held.complaints
    assert complaint.channel == "sms_reply" and complaint.acknowledged_at is None

    # The acknowledgement's deadline passes unmet: the workflow's timer escalates it, and nothing is sent.
    await env.sleep(days(4))
    late = await eventually(
        lambda: status(handle), lambda s: s.complaints[0].acknowledgement_overdue_at is not None
    )
    assert late.complaints[0].acknowledgement_overdue_at == complaint.acknowledge_by
    assert len(sms_requests(gateway)) == 1, "no reminder while the complaint is open"

    await handle.signal(
        "acknowledge_complaint", {"complaint": 1, "note": "called back, explained the reminders"}
    )
    await handle.signal(
        "resolve_complaint", {"complaint": 1, "outcome": "partly_upheld", "note": "fewer reminders agreed"}
    )
    resolved = await eventually(lambda: status(handle), lambda s: s.complaints[0].resolved_at is not None)
    assert resolved.contact_held_for_complaint, "contact waits for an operator after the resolution"
    await env.sleep(days(8))
    assert len(sms_requests(gateway)) == 1

    await handle.signal("resume", {})
    await env.sleep(days(1))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 2)

    entries = await timeline(handle)
    assert [k for k in kinds(entries) if k.startswith("complaint") or k == "resumed"] == [
        "complaint_opened",
        "complaint_acknowledgement_overdue",
        "complaint_acknowledged",
        "complaint_resolved",
        "resumed",
    ]
    audited = await eventually(
        lambda: _audit(store, account.account_id),
        lambda rows: "resumed" in [kind for kind, _ in rows],
    )
    details = " ".join(detail for _, detail in audited)
    assert "complaint 1 opened (sms_reply)" in details
    assert "note: called back, explained the reminders" in details
    assert "resolved: partly_upheld, after its deadline" not in details, "resolved within its 15 days"
    for personal in (account.customer_name, account.phone, "投诉你们", "12378"):
        assert personal not in details


async def test_an_operator_opens_a_complaint_received_weeks_ago_and_both_deadlines_are_late_at_once(
    env: WorkflowEnvironment,
    client: Client,
    settings: Settings,
    gateway: RecordingHttpServer,
    store: AuditStore,
) -> None:
    account = make_account((await local_today(env)) - timedelta(days=1))
    handle = await start(client, settings.task_queue, account)
    await env.sleep(days(1))
    await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
    received = (await env.get_current_time()) - timedelta(days=30)
    await handle.signal(
        "open_complaint", {"channel": "console", "received_at": received.isoformat(), "note": "letter"}
    )
    current = await eventually(
        lambda: status(handle),
        lambda s: bool(s.complaints) and s.complaints[0].resolution_overdue_at is not None,
    )
    assert current.complaints[0].acknowledgement_overdue_at is not None
    entries = [str(e.kind) for e in await timeline(handle)]
    assert entries.count("complaint_acknowledgement_overdue") == 1
    assert entries.count("complaint_resolution_overdue") == 1


async def _audit(store: AuditStore, account_id: str) -> list[tuple[str, str]]:
    return [(entry.kind, entry.detail) for entry in store.audit_for(account_id)]
