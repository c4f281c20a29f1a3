"""``kindly``: the operator's command line. Thin commands over
kindly.programs.portfolio and kindly.programs.operations.

Settings come from the environment (``COLLECTIONS_TEMPORAL_ADDRESS``, ``COLLECTIONS_TASK_QUEUE``, …).

Exit codes:

* ``0`` — done. For ``import``: every row was good and every account was started or already there.
* ``1`` — the command ran but not everything succeeded: ``import`` found bad rows (the good rows
  *were* imported; bad ones are listed with their line numbers) or some starts failed; the account
  does not exist; Temporal could not be reached or refused the request.
* ``2`` — bad usage: an option value failed validation (the field is named, nothing was sent); the
  portfolio file is unreadable or its header is wrong (nothing was imported); the settings are
  unusable (e.g. no encryption keys).
* ``3`` — the account refused the action, and nothing changed: its state forbids it (not paused, a
  payment already credited, the account has ended) or a value is wrong for it (a settlement above the
  amount due, a pause ending in the past, a promise beyond the policy's limit). The reason is printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client

from kindly.domain.contract import (
    AccountStatus,
    CallOutcome,
    Close,
    Pause,
    PromiseToPay,
    RefreshPolicy,
    Repayment,
    Resume,
    Settle,
    SignalName,
    UpdateContact,
)
from kindly.programs.cli_alarms import alarms
from kindly.programs.cli_complaints import complaints
from kindly.programs.cli_experiments import experiment
from kindly.programs.cli_reports import report as report_commands
from kindly.programs.cli_simulate import simulate_command
from kindly.programs.cli_support import (
    EXIT_INCOMPLETE,
    EXIT_USAGE,
    AccountId,
    err,
    fail,
    load_settings,
    out,
    run_with_client,
    validated_payload,
)
from kindly.programs.cli_templates import templates
from kindly.programs.cli_users import users
from kindly.programs.cli_visibility import (
    bulk_pause,
    bulk_refresh_policy,
    bulk_resume,
    figures_command,
    list_accounts,
    setup,
)
from kindly.programs.db_command import db
from kindly.programs.operations import account_status, account_timeline, act_on_account
from kindly.programs.portfolio import (
    AccountImport,
    ImportReport,
    PortfolioFormatError,
    import_portfolio,
    read_portfolio,
)

app = typer.Typer(
    name="kindly",
    help="Operate Kindly's overdue-account workflows.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db, name="db")
app.add_typer(experiment, name="experiment")
app.add_typer(users, name="users")
app.add_typer(templates, name="templates")
app.add_typer(alarms, name="alarms")
app.add_typer(complaints, name="complaints")


# --- import --------------------------------------------------------------------------------------


@app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(help="Portfolio CSV file (header line required).")],
    concurrency: Annotated[
        int, typer.Option(min=1, max=256, help="How many workflows to start at a time.")
    ] = 16,
) -> None:
    """Start one workflow per good row of PATH; list bad rows by line. Exit 1 if any row was bad.

    Each account's run takes its segment's policy from the workers' policy file when it starts."""
    settings = load_settings()
    try:
        portfolio = read_portfolio(path)
    except PortfolioFormatError as error:
        fail(str(error), EXIT_USAGE)

    if portfolio.errors:
        table = Table(title=f"{len(portfolio.errors)} bad row(s) in {path} — not imported")
        table.add_column("line", justify="right")
        table.add_column("account_id")
        table.add_column("problem", overflow="fold")
        for row_error in portfolio.errors:
            table.add_row(str(row_error.line), row_error.account_id or "-", row_error.message)
        err.print(table)

    async def run(client: Client) -> ImportReport:
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        ) as progress:
            task = progress.add_task("import", total=len(portfolio.accounts))

            def advance(_: AccountImport) -> None:
                progress.advance(task)

            return await import_portfolio(
                client,
                portfolio.accounts,
                task_queue=settings.task_queue,
                concurrency=concurrency,
                on_progress=advance,
            )

    report = run_with_client(settings, run) if portfolio.accounts else ImportReport()
    for failure in report.failed:
        err.print(f"[red]failed[/] {failure.account_id}: {failure.error}", highlight=False)
    out.print(
        f"{report.started} started, {report.already_running} already running, "
        f"{report.already_closed} already closed, {len(report.failed)} failed, "
        f"{len(portfolio.errors)} bad row(s)",
        highlight=False,
    )
    if portfolio.errors or report.failed:
        raise typer.Exit(EXIT_INCOMPLETE)


# --- queries -------------------------------------------------------------------------------------


def _show(result: AccountStatus) -> None:
    table = Table(title=f"account {result.account_id}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for name, value in result.model_dump(mode="json").items():
        shown = ", ".join(f"{k}={v}" for k, v in value.items() if v) if isinstance(value, dict) else value
        table.add_row(name, "-" if shown is None else str(shown))
    out.print(table)


@app.command()
def status(account_id: AccountId) -> None:
    """Show where an account stands: stage, amounts, holds and its next step (times in the customer's
    zone)."""
    _show(run_with_client(load_settings(), lambda client: account_status(client, account_id)))


@app.command()
def timeline(account_id: AccountId) -> None:
    """Show every decision the account's workflow has taken."""
    entries = run_with_client(load_settings(), lambda client: account_timeline(client, account_id))
    table = Table(title=f"timeline of {account_id}")
    table.add_column("at", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for entry in entries:
        table.add_row(entry.at, str(entry.kind), entry.detail)
    out.print(table)


# --- actions -------------------------------------------------------------------------------------


def _act(account_id: str, name: SignalName, payload: BaseModel) -> None:
    """One action as a workflow update: the new status when the account took it; exit 3 with the
    reason when it refused."""
    settings = load_settings()
    result = run_with_client(settings, lambda client: act_on_account(client, account_id, name, payload))
    out.print(f"{name}: done for account {account_id}", highlight=False)
    _show(result)


@app.command()
def pause(
    account_id: AccountId,
    reason: Annotated[str, typer.Option(help="Why reminders stop (audited).")],
    until: Annotated[
        str | None, typer.Option(help="ISO-8601 time with offset, e.g. 2026-12-01T09:00:00+08:00.")
    ] = None,
) -> None:
    """Stop reminders, until resumed or until --until (which must lie in the future)."""
    _act(account_id, SignalName.PAUSE, validated_payload(Pause, reason=reason, until=until))


@app.command()
def resume(account_id: AccountId) -> None:
    """Resume reminders after a pause (refused when the account is not paused)."""
    _act(account_id, SignalName.RESUME, validated_payload(Resume))


@app.command()
def pay(
    account_id: AccountId,
    amount: Annotated[str, typer.Option(help="Amount repaid, e.g. 500.00.")],
    reference: Annotated[str, typer.Option(help="Payment reference (refused when already credited).")],
) -> None:
    """Record a repayment."""
    _act(account_id, SignalName.REPAYMENT, validated_payload(Repayment, amount=amount, reference=reference))


@app.command()
def settle(
    account_id: AccountId,
    amount: Annotated[str, typer.Option(help="Settlement amount agreed, at most the amount due.")],
    reference: Annotated[str, typer.Option(help="Settlement reference.")],
) -> None:
    """Settle the account for an agreed amount (ends the workflow)."""
    _act(account_id, SignalName.SETTLE, validated_payload(Settle, amount=amount, reference=reference))


@app.command()
def close(
    account_id: AccountId,
    reason: Annotated[str, typer.Option(help="Why the account is closed (audited).")],
) -> None:
    """Close the account without collection (ends the workflow)."""
    _act(account_id, SignalName.CLOSE, validated_payload(Close, reason=reason))


@app.command()
def promise(
    account_id: AccountId,
    date: Annotated[str, typer.Option("--date", help="The promised payment date, YYYY-MM-DD.")],
) -> None:
    """Record the customer's promise to pay by a date (within the policy's limit); contact is held."""
    _act(account_id, SignalName.PROMISE_TO_PAY, validated_payload(PromiseToPay, date=date))


@app.command("call-outcome")
def call_outcome(
    account_id: AccountId,
    outcome: Annotated[
        str, typer.Option(help="reached, no_answer, promise_to_pay, wrong_number, refused or call_back.")
    ],
    promise_date: Annotated[
        str | None, typer.Option(help="With promise_to_pay: the promised date, YYYY-MM-DD.")
    ] = None,
    call_back_at: Annotated[
        str | None,
        typer.Option(help="With call_back: when the customer asked to be called, with its UTC offset."),
    ] = None,
) -> None:
    """Record what a call task's call came to."""
    payload = validated_payload(
        CallOutcome, outcome=outcome, promise_date=promise_date, call_back_at=call_back_at
    )
    _act(account_id, SignalName.CALL_OUTCOME, payload)


@app.command()
def contact(
    account_id: AccountId,
    phone: Annotated[str | None, typer.Option(help="New E.164 number.")] = None,
    timezone: Annotated[str | None, typer.Option(help="New IANA time zone.")] = None,
    locale: Annotated[str | None, typer.Option(help="zh-CN or en-US.")] = None,
) -> None:
    """Change the customer's number, time zone or locale."""
    payload = validated_payload(UpdateContact, phone=phone, timezone=timezone, locale=locale)
    _act(account_id, SignalName.UPDATE_CONTACT, payload)


@app.command("refresh-policy")
def refresh_policy(
    account_id: AccountId,
    reason: Annotated[str | None, typer.Option(help="Why (shown in the timeline).")] = None,
) -> None:
    """Take the segment's policy as the workers' policy file now says."""
    _act(account_id, SignalName.REFRESH_POLICY, validated_payload(RefreshPolicy, reason=reason))


app.command()(setup)
app.command("list")(list_accounts)
app.command("figures")(figures_command)
app.command("simulate")(simulate_command)
app.command("bulk-pause")(bulk_pause)
app.command("bulk-resume")(bulk_resume)
app.command("bulk-refresh-policy")(bulk_refresh_policy)

app.add_typer(report_commands, name="report")


if __name__ == "__main__":  # pragma: no cover
    app()
