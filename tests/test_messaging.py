"""The ``send_sms`` activity against a real SQLite database: the request's decisions are written
whatever the outcome (with the outbox claim when the SMS goes out, on their own when the window has
closed or the template fails), and a retried activity neither texts twice nor doubles an audit row."""

from __future__ import annotations

import datetime as dt
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.inputs import AuditRecord, SendSmsInput
from activities.messaging import MessagingActivities
from activities.sms_providers import ConsoleSmsProvider
from kindly.domain.contract import TemplateName
from kindly.domain.messages.context import MessageContext
from kindly.domain.messages.rendering import MessageRenderer, build_template_environment
from kindly.store import AuditStore, make_engine

ACCOUNT = "LN-1"
KEY = "wf-1/run-1/tp-1"


@pytest.fixture
def store(tmp_path: Path) -> AuditStore:
    return AuditStore(make_engine(f"sqlite:///{tmp_path / 'kindly.db'}"))


def activities(
    store: AuditStore, outbox: io.StringIO, override_dir: Path | None = None
) -> MessagingActivities:
    renderer = MessageRenderer(
        build_template_environment(override_dir),
        brand="Kindly Finance",
        hotline="400-000-0000",
        repayment_channels=["the app"],
    )
    return MessagingActivities(ConsoleSmsProvider(outbox), renderer, store)


def decision(key: str) -> AuditRecord:
    return AuditRecord(
        event_key=f"{KEY}/{key}", account_id=ACCOUNT, at=datetime.now(UTC), kind="scheduled", detail=key
    )


def request(*decisions: AuditRecord, not_after: datetime | None = None) -> SendSmsInput:
    return SendSmsInput(
        account_id=ACCOUNT,
        idempotency_key=KEY,
        touchpoint=1,
        template=TemplateName.FIRST_OVERDUE,
        locale="en-US",
        to="+8613800138000",
        context=MessageContext(
            amount_due=Decimal("1200.00"),
            currency="CNY",
            due_date=dt.date(2026, 12, 15),
            reference_masked="****0001",
            days_past_due=3,
        ),
        not_after=not_after,
        decisions=list(decisions),
    )


def keys(store: AuditStore) -> list[str]:
    return [row.event_key.removeprefix(f"{KEY}/") for row in store.audit_for(ACCOUNT)]


async def test_sent_sms_writes_decisions_outbox_and_audit_once(store: AuditStore) -> None:
    sent = io.StringIO()
    messaging = activities(store, sent)
    result = await ActivityEnvironment().run(messaging.send_sms, request(decision("d1"), decision("d2")))
    assert (result.status, result.provider_message_id) == ("sent", f"console-{KEY}")
    assert keys(store) == ["d1", "d2", "sms_sent"]
    [row] = store.outbox_for(ACCOUNT)
    assert (row.status, row.attempts, row.provider_message_id) == ("sent", 1, f"console-{KEY}")
    # A retry (same decisions, one more): no second SMS, no doubled row, the attempt counted.
    again = await ActivityEnvironment().run(
        messaging.send_sms, request(decision("d1"), decision("d2"), decision("d3"))
    )
    assert (again.status, again.provider_message_id) == ("duplicate", f"console-{KEY}")
    assert again.segments == result.segments
    assert keys(store) == ["d1", "d2", "sms_sent", "d3"]
    assert [row.attempts for row in store.outbox_for(ACCOUNT)] == [2]
    assert sent.getvalue().count("[sms]") == 1


async def test_closed_window_writes_the_decisions_and_sends_nothing(store: AuditStore) -> None:
    sent = io.StringIO()
    closed = request(decision("d1"), not_after=datetime.now(UTC) - timedelta(minutes=1))
    result = await ActivityEnvironment().run(activities(store, sent).send_sms, closed)
    assert result.status == "window_closed"
    assert keys(store) == ["d1"]
    assert store.outbox_for(ACCOUNT) == []
    assert sent.getvalue() == ""


async def test_template_error_writes_the_decisions_and_fails_the_activity(
    store: AuditStore, tmp_path: Path
) -> None:
    overrides = tmp_path / "templates" / "en-US"
    overrides.mkdir(parents=True)
    (overrides / f"{TemplateName.FIRST_OVERDUE}.txt.j2").write_text("Pay {{ no_such_variable }}")
    sent = io.StringIO()
    messaging = activities(store, sent, tmp_path / "templates")
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(messaging.send_sms, request(decision("d1"), decision("d2")))
    assert raised.value.type == "TemplateError"
    assert keys(store) == ["d1", "d2"]
    assert store.outbox_for(ACCOUNT) == []
    assert sent.getvalue() == ""
    # The retries fail the same way and write nothing twice.
    with pytest.raises(ApplicationError):
        await ActivityEnvironment().run(messaging.send_sms, request(decision("d1"), decision("d2")))
    assert keys(store) == ["d1", "d2"]


async def test_send_without_decisions(store: AuditStore) -> None:
    result = await ActivityEnvironment().run(activities(store, io.StringIO()).send_sms, request())
    assert result.status == "sent"
    assert keys(store) == ["sms_sent"]
