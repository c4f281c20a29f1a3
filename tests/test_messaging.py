"""The ``send_sms`` activity against a real SQLite database: the request's decisions are written
whatever the outcome (with the outbox claim when the SMS goes out, on their own when the window has
closed or the template fails), a retried activity neither texts twice nor doubles an audit row, and a
reminder ends with its touchpoint's self-service link, the same on every attempt."""

from __future__ import annotations

import datetime as dt
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.composition import FreeTextComposer
from activities.inputs import AuditRecord, SendSmsInput
from activities.messaging import MessagingActivities
from activities.sms_providers import ConsoleSmsProvider, SmsProvider, WebhookSmsProvider
from kindly.domain.contract import TemplateName
from kindly.domain.messages.context import MessageContext
from kindly.domain.messages.links import is_token
from kindly.domain.messages.rendering import MessageRenderer, build_template_environment
from kindly.keyring import KeyRing
from kindly.store import AuditStore, LinkTarget, SelfServiceLinks, make_engine
from kindly.store.self_service_links import SELF_SERVICE_LINK_TABLE
from tests.http_recorder import RecordingHttpServer

ACCOUNT = "LN-1"
KEY = "wf-1/run-1/tp-1"
BASE_URL = "https://pay.lender.example"
LIFETIME = timedelta(days=30)
KEYRING = KeyRing(keys={"k1": b"k" * 32}, current_id="k1", hash_key=b"h" * 32)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'kindly.db'}")


@pytest.fixture
def store(engine: Engine) -> AuditStore:
    return AuditStore(engine)


def activities(
    engine: Engine, outbox: io.StringIO | SmsProvider, override_dir: Path | None = None
) -> MessagingActivities:
    renderer = MessageRenderer(
        build_template_environment(override_dir),
        brand="Kindly Finance",
        hotline="400-000-0000",
        repayment_channels=["the app"],
    )
    provider = ConsoleSmsProvider(outbox) if isinstance(outbox, io.StringIO) else outbox
    return MessagingActivities(
        provider,
        FreeTextComposer(renderer),
        AuditStore(engine),
        SelfServiceLinks(engine, KEYRING),
        public_base_url=BASE_URL,
        link_lifetime=LIFETIME,
    )


def decision(key: str) -> AuditRecord:
    return AuditRecord(
        event_key=f"{KEY}/{key}", account_id=ACCOUNT, at=datetime.now(UTC), kind="scheduled", detail=key
    )


def request(
    *decisions: AuditRecord,
    not_after: datetime | None = None,
    template: TemplateName = TemplateName.FIRST_OVERDUE,
    key: str = KEY,
) -> SendSmsInput:
    return SendSmsInput(
        account_id=ACCOUNT,
        idempotency_key=key,
        touchpoint=1,
        template=template,
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


async def test_sent_sms_writes_decisions_outbox_and_audit_once(store: AuditStore, engine: Engine) -> None:
    sent = io.StringIO()
    messaging = activities(engine, sent)
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


async def test_closed_window_writes_the_decisions_and_sends_nothing(
    store: AuditStore, engine: Engine
) -> None:
    sent = io.StringIO()
    closed = request(decision("d1"), not_after=datetime.now(UTC) - timedelta(minutes=1))
    result = await ActivityEnvironment().run(activities(engine, sent).send_sms, closed)
    assert result.status == "window_closed"
    assert keys(store) == ["d1"]
    assert store.outbox_for(ACCOUNT) == []
    assert sent.getvalue() == ""


async def test_template_error_writes_the_decisions_and_fails_the_activity(
    store: AuditStore, engine: Engine, tmp_path: Path
) -> None:
    overrides = tmp_path / "templates" / "en-US"
    overrides.mkdir(parents=True)
    (overrides / f"{TemplateName.FIRST_OVERDUE}.txt.j2").write_text("Pay {{ no_such_variable }}")
    sent = io.StringIO()
    messaging = activities(engine, sent, tmp_path / "templates")
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


async def test_send_without_decisions(store: AuditStore, engine: Engine) -> None:
    result = await ActivityEnvironment().run(activities(engine, io.StringIO()).send_sms, request())
    assert result.status == "sent"
    assert keys(store) == ["sms_sent"]


# --- the self-service link ------------------------------------------------------------------------


def link_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(SELF_SERVICE_LINK_TABLE)).scalar_one())


async def test_a_retried_reminder_sends_the_same_link(engine: Engine) -> None:
    """The gateway refuses the first attempt (503) and takes the retry: both carry one link, which
    leads to the account's touchpoint, and the workflow's result holds no link."""
    with RecordingHttpServer() as gateway:
        gateway.respond_with(503)
        async with httpx.AsyncClient() as client:
            messaging = activities(engine, WebhookSmsProvider(client, f"{gateway.url}/sms"))
            with pytest.raises(ApplicationError) as refused:
                await ActivityEnvironment().run(messaging.send_sms, request())
            assert refused.value.type == "TransientDeliveryError"
            result = await ActivityEnvironment().run(messaging.send_sms, request())
        first, retry = (sent.json()["body"] for sent in gateway.requests_to("/sms"))
    assert result.status == "sent"
    assert first == retry
    ending = f"Reply STOP to opt out. Pay, promise or choose a plan: {BASE_URL}/p/"
    token = first.rsplit(ending, 1)[-1]
    assert ending in first and is_token(token)  # the message ends with the whole token
    target = SelfServiceLinks(engine, KEYRING).resolve(token, datetime.now(UTC))
    assert isinstance(target, LinkTarget) and (target.account_id, target.touchpoint) == (ACCOUNT, 1)
    assert link_rows(engine) == 1
    assert token not in result.model_dump_json()


async def test_each_touchpoint_gets_its_own_link(engine: Engine) -> None:
    sent = io.StringIO()
    messaging = activities(engine, sent)
    await ActivityEnvironment().run(messaging.send_sms, request(key="wf-1/run-1/tp-1"))
    await ActivityEnvironment().run(messaging.send_sms, request(key="wf-1/run-1/tp-2"))
    links = [line.rsplit("/p/", 1)[1].split()[0] for line in sent.getvalue().splitlines() if "/p/" in line]
    assert len(links) == 2 and links[0] != links[1]


@pytest.mark.parametrize("template", [TemplateName.HELP, TemplateName.OPT_OUT_CONFIRMATION])
async def test_a_service_message_carries_no_link(engine: Engine, template: TemplateName) -> None:
    sent = io.StringIO()
    result = await ActivityEnvironment().run(activities(engine, sent).send_sms, request(template=template))
    assert result.status == "sent"
    assert "/p/" not in sent.getvalue() and BASE_URL not in sent.getvalue()
    assert link_rows(engine) == 0


async def test_no_link_is_issued_once_the_window_closed(engine: Engine) -> None:
    closed = request(not_after=datetime.now(UTC) - timedelta(minutes=1))
    result = await ActivityEnvironment().run(activities(engine, io.StringIO()).send_sms, closed)
    assert result.status == "window_closed"
    assert link_rows(engine) == 0
