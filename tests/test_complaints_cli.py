"""``kindly complaints``: the open complaints listed from the complaints table (a page, or every one; a
table or JSON); bad values refused naming the field before anything is sent (exit 2); and, on the dev
server, a complaint opened, acknowledged and resolved as updates, a refusal exiting 3 with its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from activities.inputs import ComplaintRecord
from kindly.domain.complaints import Complaint, ComplaintChannel
from kindly.programs.cli import app
from kindly.programs.complaint_listing import PAGE
from kindly.settings import Settings
from kindly.store import ComplaintStore, make_engine
from tests.conftest import WORKER_ENV
from tests.test_api import Api
from tests.test_cli import kindly
from tests.test_operator_actions import open_account

RECEIVED = datetime(2024, 12, 7, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def run(database: Path, *args: str) -> Result:
    environment = {"COLLECTIONS_DATABASE_URL": f"sqlite:///{database}", "COLUMNS": "200", **WORKER_ENV}
    return CliRunner().invoke(app, list(args), env=environment)


def complaint_of(account_id: str, received: datetime) -> ComplaintRecord:
    complaint = Complaint(
        number=1,
        channel=ComplaintChannel.CONSOLE,
        received_at=received,
        acknowledge_by=received + DAY,
        resolve_by=received + 15 * DAY,
    )
    return ComplaintRecord(
        account_id=account_id,
        segment="standard",
        timezone="Asia/Shanghai",
        locale="zh-CN",
        complaint=complaint,
    )


def test_the_open_complaints_are_listed_a_page_or_all(tmp_path: Path) -> None:
    database = tmp_path / "kindly.db"
    assert run(database, "complaints", "list").output.strip() == "no open complaint"
    engine = make_engine(f"sqlite:///{database}")
    records = [
        complaint_of(f"LN-{index:03d}", RECEIVED + index * timedelta(minutes=1)) for index in range(PAGE + 2)
    ]
    ComplaintStore(engine).upsert(records)
    engine.dispose()

    shown = run(database, "complaints", "list")
    assert shown.exit_code == 0, shown.output
    assert f"open complaints ({PAGE} of {PAGE + 2})" in shown.output
    assert "LN-000" in shown.output and "2024-12-08 10:00+0800 OVERDUE" in shown.output
    assert f"LN-{PAGE:03d}" not in shown.output

    every = run(database, "complaints", "list", "--all", "--json")
    assert every.exit_code == 0, every.output
    listed = json.loads(every.output)
    assert [item["account_id"] for item in listed] == [record.account_id for record in records]
    assert (
        listed[0]["received_at"] == "2024-12-07T10:00:00+08:00" and listed[0]["awaiting"] == "acknowledgement"
    )


def test_bad_values_exit_2_naming_the_field(tmp_path: Path) -> None:
    database = tmp_path / "kindly.db"
    for args, words in (
        (["open", "LN-1", "--received-at", "2026-12-01T09:00:00"], "received_at: must include a UTC offset"),
        (["open", "LN-1", "--note", "her card is 6222 0202 0000 1234"], "note: must hold no personal data"),
        (["open", "LN-1", "--channel", "sms_reply"], "--channel"),
        (["acknowledge", "LN-1", "0", "--note", "told by phone"], "complaint: Input should be greater than"),
        (["acknowledge", "LN-1", "1", "--note", " "], "note: "),
        (["resolve", "LN-1", "1", "--outcome", "fixed", "--note", "refunded"], "outcome: Input should be"),
        (["resolve", "LN-1", "1", "--outcome", "upheld"], "--note"),
    ):
        refused = run(database, "complaints", *args)
        assert refused.exit_code == 2, (args, refused.output)
        assert words in refused.output, (args, refused.output)


async def test_a_complaint_is_opened_acknowledged_and_resolved_and_a_refusal_exits_3(
    dev_env: WorkflowEnvironment, dev_api: Api, settings: Settings
) -> None:
    account_id = await open_account(dev_api)
    opened = await kindly(dev_env, settings, "complaints", "open", account_id, "--note", "rude caller")
    assert opened.exit_code == 0, opened.output
    assert "open_complaint: done" in opened.output and "complaint 1 (console): open" in opened.output
    assert "kindly resume" in opened.output

    again = await kindly(dev_env, settings, "complaints", "open", account_id, "--channel", "api")
    assert (
        again.exit_code == 3 and "error: refused: " in again.output and "complaint 1 is open" in again.output
    )
    unknown = await kindly(dev_env, settings, "complaints", "acknowledge", account_id, "2", "--note", "told")
    assert unknown.exit_code == 3 and "complaint" in unknown.output, unknown.output

    acknowledged = await kindly(
        dev_env, settings, "complaints", "acknowledge", account_id, "1", "--note", "told by phone"
    )
    assert acknowledged.exit_code == 0 and "acknowledged;" in acknowledged.output, acknowledged.output
    resolved = await kindly(
        dev_env,
        settings,
        "complaints",
        "resolve",
        account_id,
        "1",
        "--outcome",
        "upheld",
        "--note",
        "apologised",
    )
    assert resolved.exit_code == 0 and "resolved upheld" in resolved.output, resolved.output
    late = await kindly(
        dev_env, settings, "complaints", "resolve", account_id, "1", "--outcome", "upheld", "--note", "x"
    )
    assert late.exit_code == 3 and "already resolved" in late.output, late.output
