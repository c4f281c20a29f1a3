"""``kindly`` commands over Temporal visibility: register the search attributes, list accounts, the
daily figures, and bulk actions on every account a query finds (counted first, confirmed, then sent)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from kindly.analytics.charts import daily_volume_chart
from kindly.domain.contract import Pause, RefreshPolicy, Resume, SignalName, TimelineKind
from kindly.programs.cli_support import (
    EXIT_INCOMPLETE,
    EXIT_USAGE,
    err,
    fail,
    load_settings,
    out,
    run_with_client,
    validated_payload,
)
from kindly.programs.figures import (
    COMPLAINT_KINDS,
    FIGURES,
    MAX_DAYS,
    WAITING_FOR_CALENDAR,
    ComplaintRates,
    FiguresReport,
    figures_report,
    parse_zone,
)
from kindly.programs.operations import account_query, bulk_act, count_accounts, find_accounts
from kindly.programs.temporal import ensure_search_attributes
from kindly.store import make_engine


def setup() -> None:
    """Register Kindly's search attributes on the namespace (the worker also does this at start)."""
    settings = load_settings()
    added = run_with_client(
        settings, lambda client: ensure_search_attributes(client, settings.temporal_namespace)
    )
    out.print(f"search attributes added: {', '.join(added)}" if added else "search attributes present")


def query_of(
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
        fail(str(error), EXIT_USAGE)


StageOption = Annotated[str | None, typer.Option(help="CollectionStage, e.g. overdue or phone.")]
SegmentOption = Annotated[str | None, typer.Option(help="Segment, e.g. standard.")]
MinDpdOption = Annotated[int | None, typer.Option("--min-dpd", help="At least this many days past due.")]
PausedOption = Annotated[bool | None, typer.Option("--paused/--not-paused", help="Paused or not.")]
QueryOption = Annotated[str | None, typer.Option(help="Extra visibility query, e.g. 'UnansweredSms >= 2'.")]


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
    visibility_query = query_of(stage, segment, min_dpd, paused, query, next_before)
    rows = run_with_client(
        load_settings(), lambda client: find_accounts(client, visibility_query, limit=limit)
    )
    table = Table()
    for header in ("account", "stage", "days past due", "due", "amount due", "unanswered", "next touch"):
        table.add_column(header, overflow="fold")  # an id or an instant is shown whole, never cut short
    table.add_column("paused")
    for row in rows:
        table.add_row(
            row.account_id,
            row.stage or "",
            "" if row.days_past_due is None else str(row.days_past_due),
            "" if row.due_date is None else row.due_date.isoformat(),
            " ".join(part for part in (row.amount_due, row.currency) if part),
            "" if row.unanswered_sms is None else str(row.unanswered_sms),
            row.next_touchpoint_at or "",
            "yes" if row.paused else "",
        )
    print_whole(table)
    out.print(f"{len(rows)} account(s)", highlight=False)


def print_whole(table: Table) -> None:
    """``table`` on standard output; when that is not a terminal (a pipe, a file), at the table's own
    width rather than 80 columns, so that scripts read each row on one line."""
    if out.is_terminal:
        out.print(table)
        return
    width = Measurement.get(out, out.options.update_width(_WIDEST), table).maximum
    Console(soft_wrap=True, width=width).print(table)


_WIDEST = 1_000


CHARTED = (
    TimelineKind.SMS_SENT,
    TimelineKind.REPLY_RECEIVED,
    TimelineKind.OPTED_OUT,
    TimelineKind.REPAYMENT_RECEIVED,
)
"""The daily volumes ``kindly figures --chart`` draws."""


def volume_chart(report: FiguresReport) -> str:
    days = [counted.day.isoformat() for counted in report.days]
    volumes = {
        figure.label: [
            next(f.events for f in counted.figures if f.kind == figure.kind) for counted in report.days
        ]
        for figure in (report.days[0].figures if report.days else [])
        if figure.kind in CHARTED
    }
    return daily_volume_chart(f"Daily volumes ({report.timezone})", days, volumes)


def _rate(rates: ComplaintRates, kind: TimelineKind) -> str:
    """One complaint figure per 1,000 SMS, ``-`` when no SMS was sent."""
    value = rates.of(kind)
    return "-" if value is None else f"{value:g}"


def figures_command(
    day: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="The last day shown (default: today in --timezone)."),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=MAX_DAYS, help="How many days, ending with --day.")] = 7,
    timezone: Annotated[str, typer.Option(help="Whose calendar days, e.g. Asia/Shanghai.")] = "UTC",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="Also draw the daily volumes into this .svg file.")
    ] = None,
) -> None:
    """Daily figures (SMS sent, replies, repayments, escalations, ...) and open accounts by stage."""
    try:
        zone = parse_zone(timezone)
    except ValueError as error:
        fail(f"--timezone: {error}", EXIT_USAGE)
    if chart is not None and chart.suffix.lower() != ".svg":
        fail(f"--chart: {chart} must be an .svg file", EXIT_USAGE)
    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        report = run_with_client(
            settings,
            lambda client: figures_report(
                engine, client, last_day=day.date() if day else None, days=days, zone=zone
            ),
        )
    finally:
        engine.dispose()
    if chart is not None:
        chart.write_text(volume_chart(report), encoding="utf-8")
    if as_json:
        out.print_json(report.model_dump_json())
        return
    table = Table(title=f"daily figures ({report.timezone})")
    table.add_column("", no_wrap=True)
    for counted in report.days:
        table.add_column(counted.day.strftime("%a %d %b"), justify="right")
    for index, (kind, label) in enumerate(FIGURES):
        table.add_row(label, *(str(counted.figures[index].events) for counted in report.days))
        if kind == TimelineKind.DEFERRED:
            table.add_row(
                f"  {WAITING_FOR_CALENDAR}",
                *(str(counted.waiting_for_calendar.events) for counted in report.days),
            )
        if kind in COMPLAINT_KINDS:
            rates = [_rate(counted.complaints_per_1000_sms, kind) for counted in report.days]
            table.add_row("  per 1,000 SMS", *rates)
    for prefix, breakdowns in (
        ("SMS", [counted.sms_by_template for counted in report.days]),
        ("receipts", [counted.receipts_by_status for counted in report.days]),
    ):
        for name in sorted({name for breakdown in breakdowns for name in breakdown}):
            table.add_row(f"  {prefix} {name}", *(str(breakdown.get(name, 0)) for breakdown in breakdowns))
    table.add_row("accounts touched", *(str(counted.accounts_touched) for counted in report.days))
    out.print(table)
    whole = report.complaints_per_1000_sms
    out.print(
        f"over the {len(report.days)} day(s), per 1,000 SMS sent: complaints opened "
        f"{_rate(whole, COMPLAINT_KINDS[0])}, acknowledged late {_rate(whole, COMPLAINT_KINDS[1])}, "
        f"resolved late {_rate(whole, COMPLAINT_KINDS[2])}",
        highlight=False,
    )
    stages = Table("stage", "open accounts", title="open accounts now")
    for stage, count in report.open_by_stage.items():
        stages.add_row(stage, str(count))
    out.print(stages)


def send_to_all(
    visibility_query: str, name: SignalName, payload: BaseModel, dry_run: bool, yes: bool
) -> None:
    settings = load_settings()
    count = run_with_client(settings, lambda client: count_accounts(client, visibility_query))
    out.print(f"{count} account(s) match: {visibility_query}", highlight=False)
    if dry_run or count == 0:
        return
    if not yes and not typer.confirm(f"Send {name} to {count} account(s)?"):
        fail("aborted; nothing sent", EXIT_INCOMPLETE)
    result = run_with_client(settings, lambda client: bulk_act(client, visibility_query, name, payload))
    out.print(f"{name}: done for {len(result.done)} account(s)", highlight=False)
    for account_id, reason in sorted(result.refused.items()):
        err.print(f"refused {account_id}: {reason}", highlight=False)
    for account_id, reason in sorted(result.failed.items()):
        err.print(f"failed {account_id}: {reason}", highlight=False)
    if result.refused or result.failed:
        raise typer.Exit(EXIT_INCOMPLETE)


DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Only count the matching accounts.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


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
    payload = validated_payload(Pause, reason=reason, until=until)
    send_to_all(query_of(stage, segment, min_dpd, None, query), SignalName.PAUSE, payload, dry_run, yes)


def bulk_resume(
    stage: StageOption = None,
    segment: SegmentOption = None,
    query: QueryOption = None,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
) -> None:
    """Resume every paused open account the filters select."""
    send_to_all(
        query_of(stage, segment, None, True, query),
        SignalName.RESUME,
        validated_payload(Resume),
        dry_run,
        yes,
    )


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
    payload = validated_payload(RefreshPolicy, reason=reason)
    send_to_all(query_of(stage, segment, None, None, query), SignalName.REFRESH_POLICY, payload, dry_run, yes)
