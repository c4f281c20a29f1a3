"""``kindly report``: what cures accounts, from the audit log (``kindly.analytics``; definitions in
``docs/analytics.md``). Reads ``COLLECTIONS_DATABASE_URL`` only: no Temporal.

Each report first brings the derived table ``account_outcomes`` up to the audit log (the first report on
a database builds it), then answers as a table, JSON or CSV. Exit ``2`` for parameters that make no
report (the option is named) or an unusable database URL, ``1`` when the database cannot be reached.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from kindly.analytics import Report, ReportError, ReportName, ReportQuery, Split, build_report, to_csv
from kindly.analytics.charts import cure_curve_chart, roll_rate_chart
from kindly.analytics.report_models import (
    DEFAULT_DAYS,
    MAX_DAYS,
    CureCurveReport,
    RollRatesReport,
    report_rows,
)
from kindly.analytics.reports import check
from kindly.domain.validation import describe_validation_error
from kindly.programs.cli_support import EXIT_INCOMPLETE, EXIT_USAGE, fail, load_settings
from kindly.programs.cli_visibility import print_whole
from kindly.store import make_engine

URL_SETTING = "COLLECTIONS_DATABASE_URL"
TABLE_DAYS = (0, 1, 3, 7, 14, 21, 30, 45, 60, 90, 120, 180, 365)
"""The cure curve's days a table shows (and its last day); JSON and CSV give every day."""


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


report = typer.Typer(
    name="report",
    help="Outcome reports from the audit log: what cures accounts (docs/analytics.md).",
    no_args_is_help=True,
)

ByOption = Annotated[
    Split | None,
    typer.Option("--by", help="Split by segment, arm (with --experiment) or cohort; rates also by template."),
]
ExperimentOption = Annotated[
    str | None,
    typer.Option(help="The experiment whose arms --by arm compares; otherwise: only its accounts."),
]
DaysOption = Annotated[
    int,
    typer.Option(min=0, max=MAX_DAYS, help="The cure curve's last day; 'cured within N days' in efficiency."),
]
AsOfOption = Annotated[
    datetime | None,
    typer.Option("--as-of", formats=["%Y-%m-%d"], help="The report's day (default: today, UTC)."),
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", help="table, json or csv.")]
ChartOption = Annotated[
    Path | None, typer.Option("--chart", help="Also draw the report into this .svg file.")
]


@report.command("cure-curve")
def cure_curve(
    by: ByOption = None,
    experiment: ExperimentOption = None,
    days: DaysOption = DEFAULT_DAYS,
    as_of: AsOfOption = None,
    output_format: FormatOption = OutputFormat.TABLE,
    chart: ChartOption = None,
) -> None:
    """Share of accounts repaid in full by each day since their due date."""
    _report(ReportName.CURE_CURVE, by, experiment, days, as_of, output_format, chart)


@report.command("roll-rates")
def roll_rates(
    by: ByOption = None,
    experiment: ExperimentOption = None,
    days: DaysOption = DEFAULT_DAYS,
    as_of: AsOfOption = None,
    output_format: FormatOption = OutputFormat.TABLE,
    chart: ChartOption = None,
) -> None:
    """Moves between days-past-due buckets from one month-end to the next (by due-date cohort unless
    --by says otherwise)."""
    _report(ReportName.ROLL_RATES, by, experiment, days, as_of, output_format, chart)


@report.command("promises")
def promises(
    by: ByOption = None,
    experiment: ExperimentOption = None,
    days: DaysOption = DEFAULT_DAYS,
    as_of: AsOfOption = None,
    output_format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Promises to pay made, kept and broken, and the kept rate."""
    _report(ReportName.PROMISES, by, experiment, days, as_of, output_format)


@report.command("rates")
def rates(
    by: ByOption = None,
    experiment: ExperimentOption = None,
    days: DaysOption = DEFAULT_DAYS,
    as_of: AsOfOption = None,
    output_format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Replies, opt-outs and disputes per 1,000 SMS (--by template: by the template of the SMS)."""
    _report(ReportName.RATES, by, experiment, days, as_of, output_format)


@report.command("efficiency")
def efficiency(
    by: ByOption = None,
    experiment: ExperimentOption = None,
    days: DaysOption = DEFAULT_DAYS,
    as_of: AsOfOption = None,
    output_format: FormatOption = OutputFormat.TABLE,
) -> None:
    """SMS sent per account cured and amount collected per SMS, per currency."""
    _report(ReportName.EFFICIENCY, by, experiment, days, as_of, output_format)


def _report(
    name: ReportName,
    by: Split | None,
    experiment: str | None,
    days: int,
    as_of: datetime | None,
    output_format: OutputFormat,
    chart: Path | None = None,
) -> None:
    if chart is not None and chart.suffix.lower() != ".svg":
        fail(f"--chart: {chart} must be an .svg file", EXIT_USAGE)
    try:
        query = ReportQuery(by=by, experiment=experiment, days=days, as_of=as_of.date() if as_of else None)
        check(name, query)
    except ValidationError as error:
        fail(describe_validation_error(error), EXIT_USAGE)
    except ReportError as error:
        fail(f"--{error.field}: {error.message}", EXIT_USAGE)
    with _database() as engine:
        answer = build_report(engine, name, query)
    if chart is not None:
        drawn = cure_curve_chart(answer) if isinstance(answer, CureCurveReport) else None
        if isinstance(answer, RollRatesReport):
            drawn = roll_rate_chart(answer)
        if drawn is not None:
            chart.write_text(drawn, encoding="utf-8")
    if output_format is OutputFormat.JSON:
        typer.echo(answer.model_dump_json(indent=2))
    elif output_format is OutputFormat.CSV:
        typer.echo(to_csv(answer), nl=False)
    else:
        _table(answer)


def _table(answer: Report) -> None:
    columns, rows = report_rows(answer)
    if isinstance(answer, CureCurveReport):
        shown = {day for day in TABLE_DAYS if day <= answer.days} | {answer.days}
        rows = [row for row in rows if row["day"] in shown]
    split = f" by {answer.by}" if answer.by else ""
    experiment = f", experiment {answer.experiment}" if answer.experiment else ""
    table = Table(title=f"{answer.report}{split}{experiment}, as of {answer.as_of}")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="left" if column == "group" else "right")
    for row in rows:
        table.add_row(*("" if row[column] is None else str(row[column]) for column in columns))
    refresh = answer.refresh
    folded = f"; audit log folded up to row {refresh.watermark}" if refresh else ""
    table.caption = f"{answer.accounts} account(s){folded}"
    print_whole(table)


@contextmanager
def _database() -> Iterator[Engine]:
    """The settings' database, migrated. A URL that is not one exits 2; a database that cannot be
    reached exits 1."""
    url = load_settings().database_url
    try:
        engine = make_engine(url)
    except (ArgumentError, ImportError) as error:
        fail(f"{URL_SETTING} is not a usable database URL: {error}", EXIT_USAGE)
    except (SQLAlchemyError, OSError) as error:
        fail(f"cannot open the database of {URL_SETTING}: {error}", EXIT_INCOMPLETE)
    try:
        yield engine
    except SQLAlchemyError as error:
        fail(f"cannot use the database ({URL_SETTING}): {error}", EXIT_INCOMPLETE)
    finally:
        engine.dispose()
