"""The ``kindly`` CLI and portfolio import, against the real time-skipping server and a real worker."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from kindly.domain.contract import AccountResult, Stage, workflow_id_for
from kindly.domain.policy.model import load_policies, policy_for
from kindly.programs.cli import app
from kindly.programs.operations import account_status, account_timeline
from kindly.programs.portfolio import ImportOutcome, PortfolioFormatError, import_portfolio, read_portfolio
from kindly.settings import Settings
from tests.conftest import WORKER_ENV, eventually
from tests.lifecycle_helpers import STARTED, local_today, make_account, start

ROOT = Path(__file__).resolve().parent.parent
HEADER = "account_id,customer_name,phone,timezone,locale,amount_due,currency,due_date,segment,birthday"
GOOD_IDS = ["CLI-GOOD-1", "CLI-GOOD-2", "CLI-GOOD-3"]


def mixed_portfolio(tmp_path: Path, due: date) -> Path:
    """Three good rows and five bad ones; comments give each row's file line."""
    rows = [
        HEADER,  # line 1
        f"CLI-GOOD-1,Zhang Wei,+8613800138001,Asia/Shanghai,zh-CN,1500.00,CNY,{due},plain,",  # 2
        f"CLI-BAD-PHONE,Li Na,12345,Asia/Shanghai,zh-CN,800,CNY,{due},plain,",  # 3
        f"CLI-GOOD-2,Emily Carter,+12125550105,America/New_York,en-US,725.00,USD,{due},plain,1985-07-22",
        f"CLI-BAD-TZ,Chen Jing,+8615000150003,Mars/Olympus,zh-CN,900,CNY,{due},plain,",  # 5
        f"CLI-BAD-AMOUNT,Liu Yang,+8618600186004,Asia/Shanghai,zh-CN,-5,CNY,{due},plain,",  # 6
        f"CLI-BAD-MISSING,Sofia Ramirez,,America/New_York,en-US,310.25,USD,{due},plain,",  # 7
        f"CLI-GOOD-1,Someone Else,+8613800138009,Asia/Shanghai,zh-CN,99,CNY,{due},plain,",  # 8
        f"CLI-GOOD-3,Wong Ka Ming,+19175550108,America/New_York,zh-CN,1280,USD,{due},,",  # 9
    ]
    path = tmp_path / "portfolio.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def one_account_portfolio(tmp_path: Path, account_id: str, today: date) -> Path:
    """A good file of one account, due in 30 days (no reminder is due while a test runs)."""
    path = tmp_path / "good.csv"
    row = f"{account_id},Zhang Wei,+8613800138001,Asia/Shanghai,zh-CN,10,CNY,{today + timedelta(30)},plain,"
    path.write_text(f"{HEADER}\n{row}\n", encoding="utf-8")
    return path


def cli_env(env: WorkflowEnvironment, settings: Settings) -> dict[str, str | None]:
    return {
        "COLLECTIONS_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "COLLECTIONS_TEMPORAL_NAMESPACE": env.client.namespace,
        "COLLECTIONS_TASK_QUEUE": settings.task_queue,
        # The workers' database and policy file, as a deployment's importer must have them (and so
        # that no test writes into the project's own .data/kindly.db).
        "COLLECTIONS_DATABASE_URL": settings.database_url,
        "COLLECTIONS_POLICY_FILE": str(settings.policy_file),
        "COLUMNS": "200",  # wide enough that tables do not truncate account ids
        **WORKER_ENV,  # the worker's keys: the CLI decrypts what the worker encrypted
    }


async def kindly(env: WorkflowEnvironment, settings: Settings, *args: str) -> Result:
    """Run the CLI in a thread: it calls asyncio.run, and the test already runs in a loop."""
    runner = CliRunner()
    environment = cli_env(env, settings)
    return await asyncio.to_thread(lambda: runner.invoke(app, list(args), env=environment))


def track(client: Client, *account_ids: str) -> None:
    """Let the conftest terminate workflows the CLI started."""
    for account_id in account_ids:
        STARTED.append(client.get_workflow_handle(workflow_id_for(account_id), result_type=AccountResult))


# --- read_portfolio ------------------------------------------------------------------------------


def test_read_portfolio_reports_each_bad_row_by_line_and_field(tmp_path: Path) -> None:
    portfolio = read_portfolio(mixed_portfolio(tmp_path, date(2026, 12, 20)))

    assert [account.account_id for account in portfolio.accounts] == GOOD_IDS
    assert portfolio.accounts[1].birthday == date(1985, 7, 22)
    assert portfolio.accounts[0].birthday is None
    assert portfolio.accounts[2].segment == "standard"  # empty cell: the default

    errors = {error.line: error for error in portfolio.errors}
    assert sorted(errors) == [3, 5, 6, 7, 8]
    assert errors[3].account_id == "CLI-BAD-PHONE" and errors[3].message.startswith("phone:")
    assert errors[5].message.startswith("timezone:") and "Mars/Olympus" in errors[5].message
    assert errors[6].message.startswith("amount_due:") and "greater than 0" in errors[6].message
    assert errors[7].message == "phone: missing value"
    assert errors[8].account_id == "CLI-GOOD-1"
    assert errors[8].message == "account_id: duplicate of line 2"


def test_read_portfolio_names_missing_header_columns(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("account_id,customer_name,phone\nA-1,X,+8613800138000\n", encoding="utf-8")
    with pytest.raises(PortfolioFormatError) as caught:
        read_portfolio(path)
    message = str(caught.value)
    for column in ("timezone", "locale", "amount_due", "currency", "due_date"):
        assert column in message


def test_sample_portfolio_is_all_good() -> None:
    portfolio = read_portfolio(ROOT / "examples" / "portfolio.csv")
    assert portfolio.errors == []
    assert len(portfolio.accounts) == 8
    assert {account.timezone for account in portfolio.accounts} == {"Asia/Shanghai", "America/New_York"}
    # Each customer in the segment of their own regime: New York in the US rules, Shanghai in China's.
    policies = load_policies(None)
    for account in portfolio.accounts:
        regime = policy_for(account.segment, policies).regime
        assert regime == ("us" if account.timezone == "America/New_York" else "cn"), account.account_id


# --- import --------------------------------------------------------------------------------------


async def test_import_starts_good_rows_reports_bad_lines_and_is_idempotent(
    env: WorkflowEnvironment, client: Client, settings: Settings, tmp_path: Path
) -> None:
    today = await local_today(env)
    path = mixed_portfolio(tmp_path, today + timedelta(days=30))

    first = await kindly(env, settings, "import", str(path), "--concurrency", "2")
    track(client, *GOOD_IDS)
    assert first.exit_code == 1, first.output
    assert "3 started, 0 already running" in first.output
    assert "5 bad row(s)" in first.output
    for line, account_id in [(3, "CLI-BAD-PHONE"), (5, "CLI-BAD-TZ"), (6, "CLI-BAD-AMOUNT")]:
        assert any(
            row.split()[1:2] == [str(line)] and account_id in row for row in first.output.splitlines()
        ), first.output
    for account_id in GOOD_IDS:
        current = await account_status(client, account_id)
        assert current.account_id == account_id and current.stage is Stage.PRE_DUE
    for account_id in ("CLI-BAD-PHONE", "CLI-BAD-TZ", "CLI-BAD-AMOUNT", "CLI-BAD-MISSING"):
        bad = await kindly(env, settings, "status", account_id)
        assert bad.exit_code == 1
    run_ids = {
        account_id: (await client.get_workflow_handle(workflow_id_for(account_id)).describe()).run_id
        for account_id in GOOD_IDS
    }

    second = await kindly(env, settings, "import", str(path))
    assert second.exit_code == 1, second.output
    assert "0 started, 3 already running" in second.output
    for account_id in GOOD_IDS:
        description = await client.get_workflow_handle(workflow_id_for(account_id)).describe()
        assert description.run_id == run_ids[account_id]


async def test_import_portfolio_tells_started_from_existing(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    today = await local_today(env)
    accounts = [make_account(today + timedelta(days=30)) for _ in range(4)]
    track(client, *(account.account_id for account in accounts))
    seen: list[str] = []

    first = await import_portfolio(
        client,
        accounts,
        task_queue=settings.task_queue,
        concurrency=2,
        on_progress=lambda result: seen.append(result.account_id),
    )
    assert first.started == 4 and not first.failed
    assert sorted(seen) == sorted(account.account_id for account in accounts)

    second = await import_portfolio(client, accounts, task_queue=settings.task_queue)
    assert second.started == 0 and second.already_running == 4
    assert {result.outcome for result in second.results} == {ImportOutcome.ALREADY_RUNNING}
    assert second.run_ids() == first.run_ids()


async def test_import_reports_a_finished_account_as_closed_and_restarts_nothing(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    today = await local_today(env)
    account = make_account(today + timedelta(days=30))
    first = await import_portfolio(client, [account], task_queue=settings.task_queue)
    assert first.started == 1
    handle = client.get_workflow_handle(workflow_id_for(account.account_id), result_type=AccountResult)
    await handle.signal("settle", {"amount": "100", "reference": "S-IMPORT"})
    await handle.result()

    again = await import_portfolio(client, [account], task_queue=settings.task_queue)
    assert [r.outcome for r in again.results] == [ImportOutcome.ALREADY_CLOSED], again.results
    assert again.run_ids() == first.run_ids()


async def test_two_importers_of_one_account_at_once_start_it_once(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    today = await local_today(env)
    account = make_account(today + timedelta(days=30))
    track(client, account.account_id)
    reports = await asyncio.gather(
        *(import_portfolio(client, [account], task_queue=settings.task_queue) for _ in range(2))
    )
    outcomes = sorted(report.results[0].outcome for report in reports)
    assert outcomes == sorted([ImportOutcome.STARTED, ImportOutcome.ALREADY_RUNNING])
    assert len({report.results[0].run_id for report in reports}) == 1


async def test_import_of_a_good_file_exits_zero(
    env: WorkflowEnvironment, client: Client, settings: Settings, tmp_path: Path
) -> None:
    path = one_account_portfolio(tmp_path, "CLI-OK-1", await local_today(env))
    result = await kindly(env, settings, "import", str(path))
    track(client, "CLI-OK-1")
    assert result.exit_code == 0, result.output
    assert "1 started" in result.output


async def test_import_with_a_bad_header_exits_2(
    env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("account_id,name\nA-1,X\n", encoding="utf-8")
    result = await kindly(env, settings, "import", str(path))
    assert result.exit_code == 2
    assert "missing required column(s)" in result.output and "due_date" in result.output


# --- signals and queries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["pay", "{id}", "--amount", "-5", "--reference", "PAY-1"], "amount"),
        (["pay", "{id}", "--amount", "lots", "--reference", "PAY-1"], "amount"),
        (["settle", "{id}", "--amount", "10", "--reference", ""], "reference"),
        (["pause", "{id}", "--reason", "r", "--until", "2026-12-01T09:00:00"], "until"),
    ],
)
async def test_bad_option_values_exit_2_and_send_nothing(
    env: WorkflowEnvironment, client: Client, settings: Settings, args: list[str], field: str
) -> None:
    today = await local_today(env)
    account = make_account(today + timedelta(days=30))
    await start(client, settings.task_queue, account)
    before = await eventually(lambda: account_timeline(client, account.account_id), bool)

    result = await kindly(env, settings, *(arg.format(id=account.account_id) for arg in args))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), result.output

    assert await account_timeline(client, account.account_id) == before
    assert not (await account_status(client, account.account_id)).paused


async def test_unknown_account_exits_1_with_a_clear_message(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    for args in (
        ["status", "NO-SUCH-ACCOUNT"],
        ["timeline", "NO-SUCH-ACCOUNT"],
    ):
        result = await kindly(env, settings, *args)
        assert result.exit_code == 1, result.output
        assert "error: no workflow for account 'NO-SUCH-ACCOUNT'" in result.output


async def test_missing_encryption_keys_exit_2_naming_the_settings(
    env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> None:
    environment = {
        **cli_env(env, settings),
        "COLLECTIONS_ENCRYPTION_KEYS": None,
        "COLLECTIONS_ENCRYPTION_KEY_ID": None,
        "COLLECTIONS_LOOKUP_HASH_KEY": None,
        "COLLECTIONS_DEV_KEYS_FILE": str(tmp_path / "absent.json"),
    }
    result = await asyncio.to_thread(lambda: CliRunner().invoke(app, ["status", "ANY-1"], env=environment))
    assert result.exit_code == 2, result.output
    assert "error: no encryption keys configured" in result.output
    assert "COLLECTIONS_ENCRYPTION_KEYS" in result.output and "Traceback" not in result.output
