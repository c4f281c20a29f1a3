"""Daily figures (``kindly.programs.figures``): counted per local day from the audit log on SQLite and
PostgreSQL, and served by ``kindly figures`` and ``GET /figures`` against the real dev server."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, inspect, text
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import TimelineKind
from kindly.programs.api.app import create_app
from kindly.programs.api.settings import ApiSettings
from kindly.programs.figures import (
    MAX_DAYS,
    WAITING_FOR_CALENDAR,
    ComplaintRates,
    complaint_rates,
    daily_figures,
    day_figures,
)
from kindly.settings import Settings
from kindly.store import DELIVERY_RECEIPT, AuditEntry, AuditStore, make_engine
from kindly.store.audit import CONSOLE_ACTION
from tests.asgi_server import serving
from tests.conftest import eventually
from tests.databases import database_url  # noqa: F401  (SQLite and PostgreSQL, a fixture)
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)
from tests.test_cli import kindly, one_account_portfolio
from tests.test_database import engine  # noqa: F401  (a migrated database, a fixture)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
_keys = itertools.count(1)


def event(
    account_id: str,
    at: str,
    kind: TimelineKind | str,
    template: str | None = None,
    outcome: str | None = None,
    detail: str = "-",
) -> AuditEntry:
    return AuditEntry(
        event_key=f"test/{next(_keys)}",
        account_id=account_id,
        at=datetime.fromisoformat(at),
        kind=str(kind),
        detail=detail,
        template=template,
        outcome=outcome,
    )


def test_a_day_counts_the_events_of_its_own_hours_in_the_operators_zone(engine: Engine) -> None:  # noqa: F811
    # 1 December in Shanghai runs from 30 November 16:00 to 1 December 16:00 UTC.
    AuditStore(engine).append(
        [
            event("A-1", "2026-11-30T15:59:59+00:00", TimelineKind.SMS_SENT, "pre_due"),  # 30 Nov there
            event("A-1", "2026-11-30T16:00:00+00:00", TimelineKind.SMS_SENT, "due_today"),
            event("A-1", "2026-12-01T09:00:00+00:00", TimelineKind.SMS_SENT, "first_overdue"),
            event("A-2", "2026-12-01T10:00:00+00:00", TimelineKind.SMS_SENT, "first_overdue"),
            event("A-2", "2026-12-01T11:00:00+00:00", TimelineKind.REPLY_RECEIVED),
            event("A-3", "2026-12-01T12:00:00+00:00", TimelineKind.ESCALATED_PHONE),
            event("A-4", "2026-12-01T15:59:59.999000+00:00", TimelineKind.STARTED),
            event("A-5", "2026-12-01T16:00:00+00:00", TimelineKind.SETTLED),  # 2 Dec there
            event("A-1", "2026-12-01T09:00:05+00:00", DELIVERY_RECEIPT, outcome="delivered"),
            event("A-2", "2026-12-01T10:00:05+00:00", DELIVERY_RECEIPT, outcome="undelivered"),
            event("A-2", "2026-12-01T16:00:05+00:00", DELIVERY_RECEIPT, outcome="delivered"),  # 2 Dec there
            event("A-9", "2026-12-01T13:00:00+00:00", CONSOLE_ACTION, outcome="refused"),  # a person's
        ]
    )
    day = day_figures(engine, date(2026, 12, 1), SHANGHAI)
    assert day.timezone == "Asia/Shanghai"
    assert day.events(TimelineKind.SMS_SENT) == 3
    sent = next(figure for figure in day.figures if figure.kind == TimelineKind.SMS_SENT)
    assert sent.accounts == 2 and sent.label == "SMS sent"
    assert day.sms_by_template == {"due_today": 1, "first_overdue": 2}
    assert day.receipts_by_status == {"delivered": 1, "undelivered": 1}
    assert day.events(TimelineKind.REPLY_RECEIVED) == 1
    assert day.events(TimelineKind.ESCALATED_PHONE) == 1
    assert day.events(TimelineKind.STARTED) == 1
    assert day.events(TimelineKind.SETTLED) == 0
    assert day.accounts_touched == 4, "a console action is not the account being worked by Kindly"

    # The same rows by UTC's calendar: the 16:00 UTC settlement is 1 December, the early send is not.
    utc = day_figures(engine, date(2026, 12, 1), ZoneInfo("UTC"))
    assert utc.events(TimelineKind.SMS_SENT) == 2 and utc.events(TimelineKind.SETTLED) == 1


def test_the_day_the_clocks_go_back_has_25_hours(engine: Engine) -> None:  # noqa: F811
    # New York, 1 November 2026: 04:00 UTC (EDT) to 05:00 UTC the next day (EST).
    AuditStore(engine).append(
        [
            event("B-1", "2026-11-01T03:59:00+00:00", TimelineKind.PAUSED),  # 31 October there
            event("B-1", "2026-11-01T04:00:00+00:00", TimelineKind.RESUMED),
            event("B-1", "2026-11-02T04:30:00+00:00", TimelineKind.SMS_SENT, "follow_up"),  # 23:30 EST
            event("B-1", "2026-11-02T05:00:00+00:00", TimelineKind.CLOSED),  # 2 November
        ]
    )
    day = day_figures(engine, date(2026, 11, 1), NEW_YORK)
    assert [day.events(kind) for kind in (TimelineKind.PAUSED, TimelineKind.RESUMED)] == [0, 1]
    assert day.events(TimelineKind.SMS_SENT) == 1 and day.events(TimelineKind.CLOSED) == 0


def test_sends_waiting_for_a_holiday_calendar_are_counted_on_their_own_line(engine: Engine) -> None:  # noqa: F811
    def deferred(account_id: str, at: str, detail: str) -> AuditEntry:
        return event(account_id, at, TimelineKind.DEFERRED, detail=detail)

    waiting = "sms follow_up D+28 deferred (2028-01-01 no_calendar, 2028-01-02 no_calendar) to {}"
    AuditStore(engine).append(
        [
            deferred("W-1", "2027-12-30T01:00:00+00:00", waiting.format("2028-01-03T09:00:00+08:00")),
            deferred("W-1", "2027-12-30T05:00:00+00:00", waiting.format("2028-01-04T09:00:00+08:00")),
            deferred(
                "W-2",
                "2027-12-30T06:00:00+00:00",
                "sms pre_due D-7 deferred (2027-12-31 holiday, "
                "2028-01-01 no_calendar) to 2028-01-02T09:00:00+08:00",
            ),
            deferred(
                "W-3",
                "2027-12-30T07:00:00+00:00",
                "sms follow_up D+7 deferred (2027-10-01 holiday) to 2027-10-08T09:42:00+08:00",
            ),
            deferred("W-4", "2027-12-30T08:00:00+00:00", "a reason named noXcalendar"),  # "_" is no wildcard
            event("W-5", "2027-12-30T09:00:00+00:00", TimelineKind.SKIPPED, detail="after no_calendar"),
            deferred("W-6", "2027-12-30T16:00:00+00:00", waiting.format("-")),  # 31 December in Shanghai
        ]
    )
    day = day_figures(engine, date(2027, 12, 30), SHANGHAI)
    assert day.events(TimelineKind.DEFERRED) == 5
    assert day.waiting_for_calendar.model_dump() == {
        "kind": "deferred",
        "label": "sends waiting for a holiday calendar",
        "events": 3,
        "accounts": 2,
    }
    assert day.waiting_for_calendar.label == WAITING_FOR_CALENDAR
    next_day = day_figures(engine, date(2027, 12, 31), SHANGHAI)
    assert (next_day.waiting_for_calendar.events, next_day.waiting_for_calendar.accounts) == (1, 1)
    quiet = day_figures(engine, date(2027, 12, 29), SHANGHAI)
    assert (quiet.waiting_for_calendar.events, quiet.waiting_for_calendar.accounts) == (0, 0)


def test_a_range_is_oldest_first_and_refuses_days_past_its_limits(engine: Engine) -> None:  # noqa: F811
    AuditStore(engine).append([event("C-1", "2026-12-02T01:00:00+00:00", TimelineKind.OPTED_OUT)])
    week = daily_figures(engine, date(2026, 12, 3), 3, ZoneInfo("UTC"))
    assert [d.day for d in week] == [date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)]
    assert [d.events(TimelineKind.OPTED_OUT) for d in week] == [0, 1, 0]
    for last_day, days in ((date(2026, 12, 3), 0), (date(2026, 12, 3), MAX_DAYS + 1), (date.max, 1)):
        with pytest.raises(ValueError, match="days must"):
            daily_figures(engine, last_day, days, ZoneInfo("UTC"))
    with pytest.raises(ValueError, match="days must lie between"):
        daily_figures(engine, date(1, 1, 3), 5, ZoneInfo("UTC"))


def test_complaints_are_counted_and_weighed_per_1000_sms_of_the_same_period(engine: Engine) -> None:  # noqa: F811
    sms = [
        event(f"D-{n}", f"2026-12-01T0{n % 8}:00:00+00:00", TimelineKind.SMS_SENT, "follow_up")
        for n in range(8)
    ]
    AuditStore(engine).append(
        [
            *sms,
            event(
                "D-1", "2026-12-01T09:00:00+00:00", TimelineKind.COMPLAINT_OPENED, detail="complaint 1 opened"
            ),
            event(
                "D-2", "2026-12-01T10:00:00+00:00", TimelineKind.COMPLAINT_OPENED, detail="complaint 1 opened"
            ),
            event("D-1", "2026-12-02T09:00:00+00:00", TimelineKind.COMPLAINT_ACKNOWLEDGEMENT_OVERDUE),
            event("D-1", "2026-12-02T09:30:00+00:00", TimelineKind.SMS_SENT, "pre_due"),
            event("D-2", "2026-12-03T09:00:00+00:00", TimelineKind.COMPLAINT_RESOLUTION_OVERDUE),
        ]
    )
    first, second, third = daily_figures(engine, date(2026, 12, 3), 3, ZoneInfo("UTC"))
    opened = next(figure for figure in first.figures if figure.kind == TimelineKind.COMPLAINT_OPENED)
    assert (opened.label, opened.events, opened.accounts) == ("complaints opened", 2, 2)
    assert first.complaints_per_1000_sms == ComplaintRates(
        opened=250.0, acknowledged_late=0.0, resolved_late=0.0
    )
    assert second.events(TimelineKind.COMPLAINT_ACKNOWLEDGEMENT_OVERDUE) == 1
    assert second.complaints_per_1000_sms == ComplaintRates(
        opened=0.0, acknowledged_late=1000.0, resolved_late=0.0
    )
    assert third.events(TimelineKind.COMPLAINT_RESOLUTION_OVERDUE) == 1
    assert third.complaints_per_1000_sms == ComplaintRates(
        opened=None, acknowledged_late=None, resolved_late=None
    ), "no SMS that day: nothing to weigh by"
    # The whole range: 2 opened, 1 acknowledged late, 1 resolved late against 9 SMS.
    whole = complaint_rates(lambda kind: sum(day.events(kind) for day in (first, second, third)))
    assert whole == ComplaintRates(opened=222.22, acknowledged_late=111.11, resolved_late=111.11)


def test_an_older_audit_log_gets_the_index_the_figures_count_by(database_url: str) -> None:  # noqa: F811
    older = make_engine(database_url)
    with older.begin() as connection:
        connection.execute(text("DROP INDEX ix_audit_log_at"))
        connection.execute(text("DROP TABLE alembic_version"))  # as before migrations
    assert "ix_audit_log_at" not in {i["name"] for i in inspect(older).get_indexes("audit_log")}
    older.dispose()
    upgraded = make_engine(database_url)
    assert "ix_audit_log_at" in {i["name"] for i in inspect(upgraded).get_indexes("audit_log")}
    upgraded.dispose()


async def test_cli_and_api_show_todays_figures_and_open_accounts_by_stage(
    dev_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    today = datetime.now(UTC).astimezone(SHANGHAI).date()
    path = one_account_portfolio(tmp_path, "FIG-1", today)
    imported = await kindly(dev_env, settings, "import", str(path))
    assert imported.exit_code == 0, imported.output

    async def report() -> dict[str, Any]:
        printed = await kindly(
            dev_env, settings, "figures", "--timezone", "Asia/Shanghai", "--days", "2", "--json"
        )
        assert printed.exit_code == 0, printed.output
        answer: dict[str, Any] = json.loads(printed.output)
        return answer

    def started_and_counted(r: dict[str, Any]) -> bool:
        # Findable from its start; its "started" entry comes once its run has prepared itself.
        started = next(f for f in r["days"][-1]["figures"] if f["kind"] == "started")
        return bool(r["open_by_stage"]["pre_due"] >= 1 and started["events"] >= 1)

    shown = await eventually(report, started_and_counted, attempts=800)
    assert shown["timezone"] == "Asia/Shanghai" and len(shown["days"]) == 2
    assert shown["days"][1]["day"] == today.isoformat()
    started = next(f for f in shown["days"][1]["figures"] if f["kind"] == "started")
    assert started == {"kind": "started", "label": "accounts started", "events": 1, "accounts": 1}
    assert shown["days"][1]["waiting_for_calendar"]["events"] == 0
    assert "Zhang" not in json.dumps(shown) and "13800138001" not in json.dumps(shown)

    drawn = tmp_path / "volumes.svg"
    table = await kindly(dev_env, settings, "figures", "--timezone", "Asia/Shanghai", "--chart", str(drawn))
    assert table.exit_code == 0 and "accounts started" in table.output and "pre_due" in table.output
    svg = drawn.read_text(encoding="utf-8")
    assert "Daily volumes (Asia/Shanghai)" in svg and "SMS sent" in svg and svg.count("<polyline") == 4
    assert WAITING_FOR_CALENDAR in table.output
    assert (
        "complaints resolved late" in table.output and "per 1,000 SMS sent: complaints opened" in table.output
    )
    assert set(shown["complaints_per_1000_sms"]) == {"opened", "acknowledged_late", "resolved_late"}
    unknown = await kindly(dev_env, settings, "figures", "--timezone", "Mars/Olympus")
    assert unknown.exit_code == 2 and "--timezone" in unknown.output and "Mars/Olympus" in unknown.output

    app = create_app(
        dev_env.client, settings, ApiSettings(api_key=SecretStr("key")), make_engine(settings.database_url)
    )
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers={"X-API-Key": "key"}) as http:
        answer = await http.get("/figures", params={"timezone": "Asia/Shanghai", "days": 2})
        assert answer.status_code == 200, answer.text
        assert answer.json()["days"] == shown["days"]
        bad_zone = await http.get("/figures", params={"timezone": "Mars/Olympus"})
        assert bad_zone.status_code == 422 and bad_zone.json()["detail"][0]["loc"] == ["query", "timezone"]
        too_late = await http.get("/figures", params={"day": "9999-12-31"})
        assert too_late.status_code == 422 and too_late.json()["detail"][0]["loc"] == ["query", "day"]
        assert (await http.get("/figures", params={"days": MAX_DAYS + 1})).status_code == 422
        async with httpx.AsyncClient(base_url=url) as anonymous:
            assert (await anonymous.get("/figures")).status_code == 401
