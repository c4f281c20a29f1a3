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
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client
from temporalio.service import RPCError

from kindly.domain.contract import Close, Pause, RefreshPolicy, Repayment, Resume, Settle, SignalName
from kindly.domain.search_attributes import ensure_search_attributes
from kindly.domain.validation import describe_validation_error
from kindly.errors import AccountNotFoundError, ConfigurationError
from kindly.programs.db_command import db
from kindly.programs.figures import FIGURES, MAX_DAYS, figures_report, parse_zone
from kindly.programs.operations import (
    account_query,
    account_status,
    account_timeline,
    bulk_signal,
    count_accounts,
    find_accounts,
    signal_account,
)
from kindly.programs.portfolio import (
    AccountImport,
    ImportReport,
    PortfolioFormatError,
    import_portfolio,
    read_portfolio,
)
from kindly.programs.temporal import connect
from kindly.settings import Settings
from kindly.store import make_engine

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2

app = typer.Typer(
    name="kindly",
    help="Operate Kindly's overdue-account workflows.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db, name="db")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

AccountId = Annotated[str, typer.Argument(help="The account id (workflow id overdue-<account_id>).")]


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        _fail(f"settings: {describe_validation_error(error)}", EXIT_USAGE)


def _payload(model: type[M], **fields: Any) -> M:
    """The signal payload, validated before connecting: a bad value exits 2 naming the field."""
    try:
        return model.model_validate({name: value for name, value in fields.items() if value is not None})
    except ValidationError as error:
        _fail(describe_validation_error(error), EXIT_USAGE)


def _run(settings: Settings, action: Callable[[Client], Awaitable[T]]) -> T:
    """Connect and run ``action``; unknown accounts and unreachable servers exit 1."""

    async def main() -> T:
        try:
            client = await connect(settings)
        except RuntimeError as error:
            _fail(f"cannot connect to Temporal at {settings.temporal_address}: {error}", EXIT_INCOMPLETE)
        return await action(client)

    try:
        return asyncio.run(main())
    except AccountNotFoundError as error:
        _fail(str(error), EXIT_INCOMPLETE)
    except ConfigurationError as error:  # e.g. no encryption keys: nothing was sent
        _fail(str(error), EXIT_USAGE)
    except RPCError as error:
        _fail(f"Temporal refused the request: {error.status.name}: {error.message}", EXIT_INCOMPLETE)


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
    settings = _settings()
    try:
        portfolio = read_portfolio(path)
    except PortfolioFormatError as error:
        _fail(str(error), EXIT_USAGE)

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

    report = _run(settings, run) if portfolio.accounts else ImportReport()
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


@app.command()
def status(account_id: AccountId) -> None:
    """Show an account's current stage, amount due and next touchpoint."""
    result = _run(_settings(), lambda client: account_status(client, account_id))
    table = Table(title=f"account {result.account_id}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for name, value in result.model_dump().items():
        table.add_row(name, "-" if value is None else str(value))
    out.print(table)


@app.command()
def timeline(account_id: AccountId) -> None:
    """Show every decision the account's workflow has taken."""
    entries = _run(_settings(), lambda client: account_timeline(client, account_id))
    table = Table(title=f"timeline of {account_id}")
    table.add_column("at", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for entry in entries:
        table.add_row(entry.at, str(entry.kind), entry.detail)
    out.print(table)


# --- signals -------------------------------------------------------------------------------------


def _signal(account_id: str, name: SignalName, payload: BaseModel) -> None:
    settings = _settings()
    _run(settings, lambda client: signal_account(client, account_id, name, payload))
    out.print(f"sent {name} to account {account_id}", highlight=False)


@app.command()
def pause(
    account_id: AccountId,
    reason: Annotated[str, typer.Option(help="Why reminders stop (audited).")],
    until: Annotated[
        str | None, typer.Option(help="ISO-8601 time with offset, e.g. 2026-12-01T09:00:00+08:00.")
    ] = None,
) -> None:
    """Stop reminders, until resumed or until --until."""
    _signal(account_id, SignalName.PAUSE, _payload(Pause, reason=reason, until=until))


@app.command()
def resume(account_id: AccountId) -> None:
    """Resume reminders after a pause."""
    _signal(account_id, SignalName.RESUME, _payload(Resume))


@app.command()
def pay(
    account_id: AccountId,
    amount: Annotated[str, typer.Option(help="Amount repaid, e.g. 500.00.")],
    reference: Annotated[str, typer.Option(help="Payment reference.")],
) -> None:
    """Record a repayment (the repayment signal)."""
    _signal(account_id, SignalName.REPAYMENT, _payload(Repayment, amount=amount, reference=reference))


@app.command()
def settle(
    account_id: AccountId,
    amount: Annotated[str, typer.Option(help="Settlement amount agreed.")],
    reference: Annotated[str, typer.Option(help="Settlement reference.")],
) -> None:
    """Settle the account for an agreed amount (ends the workflow)."""
    _signal(account_id, SignalName.SETTLE, _payload(Settle, amount=amount, reference=reference))


@app.command()
def close(
    account_id: AccountId,
    reason: Annotated[str, typer.Option(help="Why the account is closed (audited).")],
) -> None:
    """Close the account without collection (ends the workflow)."""
    _signal(account_id, SignalName.CLOSE, _payload(Close, reason=reason))


# --- visibility: setup, list, bulk actions -------------------------------------------------------


@app.command()
def setup() -> None:
    """Register Kindly's search attributes on the namespace (the worker also does this at start)."""
    settings = _settings()
    added = _run(settings, lambda client: ensure_search_attributes(client, settings.temporal_namespace))
    out.print(f"search attributes added: {', '.join(added)}" if added else "search attributes present")


def _query(
    stage: str | None,
    segment: str | None,
    min_dpd: int | None,
    paused: bool | None,
    query: str | None,
    next_before: datetime | None = None,
) -> str:
    try:
        return account_query(
            stage=stage,
            segment=segment,
            min_days_past_due=min_dpd,
            paused=paused,
            next_before=next_before,
            extra=query,
        )
    except ValueError as error:
        _fail(str(error), EXIT_USAGE)


StageOption = Annotated[str | None, typer.Option(help="CollectionStage, e.g. overdue or phone.")]
SegmentOption = Annotated[str | None, typer.Option(help="Segment, e.g. standard.")]
MinDpdOption = Annotated[int | None, typer.Option("--min-dpd", help="At least this many days past due.")]
PausedOption = Annotated[bool | None, typer.Option("--paused/--not-paused", help="Paused or not.")]
QueryOption = Annotated[str | None, typer.Option(help="Extra visibility query, e.g. 'UnansweredSms >= 2'.")]


@app.command("list")
def list_accounts(
    stage: StageOption = None,
    segment: SegmentOption = None,
    min_dpd: MinDpdOption = None,
    paused: PausedOption = None,
    query: QueryOption = None,
    next_before: Annotated[
        datetime | None,
        typer.Option(
            "--next-before",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"],
            help="Next touchpoint before this time, e.g. 2026-12-01T09:00+0800.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 100,
) -> None:
    """List open accounts through Temporal visibility (search attributes, no personal data)."""
    visibility_query = _query(stage, segment, min_dpd, paused, query, next_before)
    rows = _run(_settings(), lambda client: find_accounts(client, visibility_query, limit=limit))
    table = Table("account", "stage", "days past due", "amount due", "unanswered", "next touch", "paused")
    for row in rows:
        table.add_row(
            row.account_id,
            row.stage or "",
            "" if row.days_past_due is None else str(row.days_past_due),
            "" if row.amount_due is None else f"{row.amount_due:,.2f}",
            "" if row.unanswered_sms is None else str(row.unanswered_sms),
            row.next_touchpoint_at.isoformat(timespec="minutes") if row.next_touchpoint_at else "",
            "yes" if row.paused else "",
        )
    out.print(table)
    out.print(f"{len(rows)} account(s)", highlight=False)


@app.command("figures")
def figures_command(
    day: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="The last day shown (default: today in --timezone)."),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=MAX_DAYS, help="How many days, ending with --day.")] = 7,
    timezone: Annotated[str, typer.Option(help="Whose calendar days, e.g. Asia/Shanghai.")] = "UTC",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Daily figures (SMS sent, replies, repayments, escalations, ...) and open accounts by stage."""
    try:
        zone = parse_zone(timezone)
    except ValueError as error:
        _fail(f"--timezone: {error}", EXIT_USAGE)
    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        report = _run(
            settings,
            lambda client: figures_report(
                engine, client, last_day=day.date() if day else None, days=days, zone=zone
            ),
        )
    finally:
        engine.dispose()
    if as_json:
        out.print_json(report.model_dump_json())
        return
    table = Table(title=f"daily figures ({report.timezone})")
    table.add_column("", no_wrap=True)
    for counted in report.days:
        table.add_column(counted.day.strftime("%a %d %b"), justify="right")
    for index, (_, label) in enumerate(FIGURES):
        table.add_row(label, *(str(counted.figures[index].events) for counted in report.days))
    for prefix, breakdowns in (
        ("SMS", [counted.sms_by_template for counted in report.days]),
        ("receipts", [counted.receipts_by_status for counted in report.days]),
    ):
        for name in sorted({name for breakdown in breakdowns for name in breakdown}):
            table.add_row(f"  {prefix} {name}", *(str(breakdown.get(name, 0)) for breakdown in breakdowns))
    table.add_row("accounts touched", *(str(counted.accounts_touched) for counted in report.days))
    out.print(table)
    stages = Table("stage", "open accounts", title="open accounts now")
    for stage, count in report.open_by_stage.items():
        stages.add_row(stage, str(count))
    out.print(stages)


def _bulk(visibility_query: str, name: SignalName, payload: BaseModel, dry_run: bool, yes: bool) -> None:
    settings = _settings()
    count = _run(settings, lambda client: count_accounts(client, visibility_query))
    out.print(f"{count} account(s) match: {visibility_query}", highlight=False)
    if dry_run or count == 0:
        return
    if not yes and not typer.confirm(f"Send {name} to {count} account(s)?"):
        _fail("aborted; nothing sent", EXIT_INCOMPLETE)
    result = _run(settings, lambda client: bulk_signal(client, visibility_query, name, payload))
    out.print(f"sent {name} to {len(result.signalled)} account(s)", highlight=False)
    for account_id, reason in sorted(result.failed.items()):
        err.print(f"failed {account_id}: {reason}", highlight=False)
    if result.failed:
        raise typer.Exit(EXIT_INCOMPLETE)


DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Only count the matching accounts.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@app.command("bulk-pause")
def bulk_pause(
    reason: Annotated[str, typer.Option(help="Why reminders stop (audited).")],
    until: Annotated[str | None, typer.Option(help="ISO-8601 time with offset.")] = None,
    stage: StageOption = None,
    segment: SegmentOption = None,
    min_dpd: MinDpdOption = None,
    query: QueryOption = None,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
) -> None:
    """Pause every open account the filters select, after a count and a confirmation."""
    payload = _payload(Pause, reason=reason, until=until)
    _bulk(_query(stage, segment, min_dpd, None, query), SignalName.PAUSE, payload, dry_run, yes)


@app.command("bulk-resume")
def bulk_resume(
    stage: StageOption = None,
    segment: SegmentOption = None,
    query: QueryOption = None,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
) -> None:
    """Resume every paused open account the filters select."""
    _bulk(_query(stage, segment, None, True, query), SignalName.RESUME, _payload(Resume), dry_run, yes)


@app.command("bulk-refresh-policy")
def bulk_refresh_policy(
    reason: Annotated[str | None, typer.Option(help="Why the policy changed (in each timeline).")] = None,
    stage: StageOption = None,
    segment: SegmentOption = None,
    query: QueryOption = None,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
) -> None:
    """Roll a changed policy file out to open accounts: each reloads its segment's policy.

    Deploy the workers with the new file first; accounts keep the policy they started with until
    they get this signal (new accounts take the new file at once).
    """
    payload = _payload(RefreshPolicy, reason=reason)
    _bulk(_query(stage, segment, None, None, query), SignalName.REFRESH_POLICY, payload, dry_run, yes)


if __name__ == "__main__":  # pragma: no cover
    app()
