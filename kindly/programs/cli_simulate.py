"""``kindly simulate``: a portfolio's next days under a policy file, on the workflow's own decisions, with
no Temporal and no database (except ``--responses observed``, which reads the audit log).

It answers "what would this policy cost and cure?" before the policy reaches a worker: SMS and their
parts, the gateway's busiest minute, call tasks and agent-hours, hand-offs to specialists, deferrals,
opt-outs, cures and money collected, per day and in total; with ``--vs`` two policy files side by side
on the same customers. Inputs are read and checked by ``kindly.programs.simulation`` first: a bad one
exits 2 naming the file and the field, and nothing is simulated. The user's guide is
``docs/simulator.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from kindly.errors import SimulationInputError
from kindly.programs.cli_support import EXIT_INCOMPLETE, EXIT_USAGE, err, fail, load_settings, out
from kindly.programs.cli_visibility import print_whole
from kindly.programs.simulation import (
    DEFAULT_HANDLE_MINUTES,
    DEFAULT_SMS_PRICE,
    MAX_DAYS,
    SimulationPlan,
    parse_price,
    plan_simulation,
    run_plan,
    simulation_chart,
)
from kindly.simulator.report import Comparison, Prices, SimulationReport


def simulate_command(
    days: Annotated[int, typer.Option(min=1, max=MAX_DAYS, help="How many days to simulate (1-400).")],
    portfolio: Annotated[
        Path | None,
        typer.Option(help="A portfolio CSV as `kindly import` reads it; every row must be good."),
    ] = None,
    synthetic: Annotated[
        int | None,
        typer.Option(
            min=1, help="Instead of a portfolio: N made-up accounts over the policy file's segments."
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="The policy file (default: COLLECTIONS_POLICY_FILE, else the built-in policies)."),
    ] = None,
    vs: Annotated[
        Path | None,
        typer.Option("--vs", help="A second policy file, run on the same accounts, seed and responses."),
    ] = None,
    experiment: Annotated[
        Path | None,
        typer.Option(
            help="An experiment definition (JSON or YAML) whose arms split the accounts; "
            "its start and stop dates are ignored."
        ),
    ] = None,
    responses: Annotated[
        str | None,
        typer.Option(
            help="A response model JSON file, or 'observed' to estimate it from the audit log "
            "(default: the built-in model)."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="The seed of every random draw: the same seed, the same run.")
    ] = 1,
    start: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="The first day, YYYY-MM-DD (default: today in --timezone)."),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(help="Whose calendar days the figures count (default: most accounts' time zone)."),
    ] = None,
    sms_price: Annotated[str, typer.Option("--sms-price", help="The price of one billed SMS part.")] = str(
        DEFAULT_SMS_PRICE
    ),
    handle_minutes: Annotated[
        float, typer.Option(min=0, help="An agent's minutes per call task.")
    ] = DEFAULT_HANDLE_MINUTES,
    gateway_per_minute: Annotated[
        int | None,
        typer.Option(
            min=1, help="The gateway's SMS per minute (default: COLLECTIONS_SMS_RATE_LIMIT_PER_SECOND × 60)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes to run on (default: one per CPU).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON, nothing else.")] = False,
    chart: Annotated[
        Path | None,
        typer.Option(help="Also draw SMS, call tasks, hand-offs and cures per day into this .svg file."),
    ] = None,
) -> None:
    """Simulate a portfolio's next --days days under a policy file, on the workflow's own decisions: SMS and
    their cost, the gateway's busiest minute, call tasks and agent-hours, hand-offs, deferrals, opt-outs,
    cures and money collected, per day. Every account starts at --start, as if imported then. Exit 2 for
    an unusable input (named; nothing is simulated), 1 when --responses observed cannot read the database.
    """
    settings = load_settings()
    if chart is not None and chart.suffix.lower() != ".svg":
        fail(f"--chart: {chart} must be an .svg file", EXIT_USAGE)
    if chart is not None and not chart.parent.is_dir():
        fail(f"--chart: no folder {chart.parent}", EXIT_USAGE)
    gateway = gateway_per_minute or max(1, round(settings.sms_rate_limit_per_second * 60))
    try:
        prices = Prices(
            sms_price=parse_price(sms_price), handle_minutes=handle_minutes, gateway_per_minute=gateway
        )
        plan = plan_simulation(
            portfolio=portfolio,
            synthetic=synthetic,
            days=days,
            policy=policy,
            versus=vs,
            experiment=experiment,
            responses=responses,
            seed=seed,
            start=start.date() if start else None,
            timezone=timezone,
            prices=prices,
            settings=settings,
        )
    except SimulationInputError as error:
        fail(str(error), EXIT_USAGE)
    except SQLAlchemyError as error:
        why = " ".join(str(error).split())
        fail(
            f"cannot read the audit log of COLLECTIONS_DATABASE_URL (kindly db upgrade makes one): {why}",
            EXIT_INCOMPLETE,
        )
    processes = max(1, min(workers or os.cpu_count() or 1, plan.accounts))
    if not as_json:
        twice = " twice (--vs)" if plan.versus is not None else ""
        err.print(
            f"simulating {plan.accounts:,} accounts over {days} days on {processes} worker(s){twice}...",
            highlight=False,
        )
    result = run_plan(plan, settings, workers=processes)
    if chart is not None:
        try:
            chart.write_text(simulation_chart(result), encoding="utf-8")
        except OSError as error:
            fail(f"--chart: cannot write {chart}: {error}", EXIT_INCOMPLETE)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    _print_result(plan, result, source="synthetic" if synthetic is not None else str(portfolio))


# --- text output -------------------------------------------------------------------------------------


def _print_result(plan: SimulationPlan, result: SimulationReport | Comparison, *, source: str) -> None:
    reports = [result] if isinstance(result, SimulationReport) else [result.base, result.other]
    first = reports[0]
    out.print(
        f"{first.accounts:,} accounts ({source}), {first.days} days from {first.start} ({first.timezone}), "
        f"seed {first.seed}: {' vs '.join(report.label for report in reports)}",
        highlight=False,
    )
    tables = [_totals(reports)]
    if plan.experiment is not None:
        tables += [_arms(report, plan.experiment.name) for report in reports]
    tables.append(_differences(result) if isinstance(result, Comparison) else _per_day(result))
    for table in tables:
        out.print()
        print_whole(table)


Number = Decimal | int | float


@dataclass(frozen=True)
class _Figure:
    label: str
    value: Callable[[SimulationReport], Number]
    shown: Callable[[Decimal], str]
    difference: Callable[[Decimal], str] | None = None
    """How other minus base is shown, when not as the figure is."""

    def of(self, report: SimulationReport) -> Decimal:
        return Decimal(str(self.value(report)))

    def delta(self, base: SimulationReport, other: SimulationReport) -> str:
        return _signed((self.difference or self.shown)(self.of(other) - self.of(base)))


def _count(value: Number) -> str:
    return f"{value:,}"


def _money(value: Number) -> str:
    return f"{value:,.2f}"


def _hours(value: Number) -> str:
    return f"{value:,.1f}"


def _rate(value: Number) -> str:
    return f"{value:.1%}"


def _points(value: Number) -> str:
    return f"{value * 100:.1f} pts"


def _figures(reports: Iterable[SimulationReport]) -> list[_Figure]:
    """The totals' rows; deferral reasons and currencies are those of any of the reports."""
    reports = list(reports)
    prices = reports[0].prices
    reasons = sorted({reason for report in reports for reason in report.deferrals})
    currencies = sorted({currency for report in reports for currency in report.total.collected})
    templates = sorted({template for report in reports for template in report.sms_by_template})
    rows = [
        _Figure("SMS sent", lambda r: r.total.sms, _count),
        *(_Figure(f"  {template}", _sent(template), _count) for template in templates),
        _Figure("SMS parts billed", lambda r: r.total.sms_parts, _count),
        _Figure(f"SMS cost ({prices.sms_price} a part)", lambda r: r.total.sms_cost, _money),
        _Figure(
            f"busiest minute's SMS (gateway {prices.gateway_per_minute:,}/min)",
            lambda r: r.peak_per_minute,
            _count,
        ),
        _Figure("minutes over the gateway's rate", lambda r: r.minutes_over_rate, _count),
        _Figure("call tasks", lambda r: r.total.call_tasks, _count),
        _Figure(f"agent-hours ({prices.handle_minutes:g} min a task)", lambda r: r.total.agent_hours, _hours),
        _Figure("hand-offs to specialists", lambda r: r.total.specialist_handoffs, _count),
    ]
    rows += [_Figure(f"deferred: {reason}", _deferred(reason), _count) for reason in reasons]
    rows += [
        _Figure("cap collisions (deferred by a cap)", lambda r: r.cap_collisions, _count),
        _Figure("opt-outs", lambda r: r.total.opt_outs, _count),
        _Figure("cures (repaid in full)", lambda r: r.total.cures, _count),
        _Figure("cure rate", lambda r: r.total.cure_rate, _rate, _points),
    ]
    rows += [_Figure(f"collected {currency}", _collected(currency), _money) for currency in currencies]
    return rows


def _sent(template: str) -> Callable[[SimulationReport], int]:
    return lambda report: report.sms_by_template.get(template, 0)


def _deferred(reason: str) -> Callable[[SimulationReport], int]:
    return lambda report: report.deferrals.get(reason, 0)


def _collected(currency: str) -> Callable[[SimulationReport], Decimal]:
    return lambda report: report.total.collected.get(currency, Decimal(0))


def _totals(reports: list[SimulationReport]) -> Table:
    if len(reports) == 1:
        table = _table("", "total", title="totals")
        for figure in _figures(reports):
            table.add_row(figure.label, figure.shown(figure.of(reports[0])))
        return table
    base, other = reports
    table = _table("", base.label, other.label, "difference", title="totals")
    for figure in _figures(reports):
        table.add_row(
            figure.label,
            figure.shown(figure.of(base)),
            figure.shown(figure.of(other)),
            figure.delta(base, other),
        )
    return table


def _signed(shown: str) -> str:
    """A difference with its sign; nothing for none."""
    return shown if shown.startswith("-") or not any(digit in shown for digit in "123456789") else f"+{shown}"


ARM_COLUMNS = ("arm", "accounts", "SMS", "parts", "cost", "calls", "agent-h", "specialist", "opt-outs")
DAY_COLUMNS = (
    "day",
    "SMS",
    "parts",
    "cost",
    "peak/min",
    "calls",
    "agent-h",
    "specialist",
    "deferred",
    "caps",
)
DAY_NOTE = (
    "peak/min: the busiest minute's SMS. specialist: hand-offs to specialists.\n"
    "deferred: sends put off (caps: by a contact cap). open: accounts open at the day's end."
)


def _arms(report: SimulationReport, experiment: str) -> Table:
    currencies = sorted({currency for arm in report.arms for currency in arm.collected})
    collected = [f"collected {currency}" for currency in currencies]
    title = f"experiment {experiment}, by arm: {report.label}"
    table = _table(*ARM_COLUMNS, "cures", "cure rate", *collected, title=title)
    for arm in report.arms:
        counts = (arm.accounts, arm.sms, arm.sms_parts)
        table.add_row(
            arm.arm,
            *map(_count, counts),
            _money(arm.sms_cost),
            _count(arm.call_tasks),
            _hours(arm.agent_hours),
            *map(_count, (arm.specialist_handoffs, arm.opt_outs, arm.cures)),
            _rate(arm.cure_rate),
            *(_money(arm.collected.get(currency, Decimal(0))) for currency in currencies),
        )
    return table


def _per_day(report: SimulationReport) -> Table:
    currencies = sorted({currency for day in report.by_day for currency in day.collected})
    collected = [f"collected {currency}" for currency in currencies]
    table = _table(*DAY_COLUMNS, "cures", *collected, "open", title="per day", caption=DAY_NOTE)
    for day in report.by_day:
        table.add_row(
            day.day.isoformat(),
            *map(_count, (day.sms, day.sms_parts)),
            _money(day.sms_cost),
            *map(_count, (day.peak_per_minute, day.call_tasks)),
            _hours(day.agent_hours),
            *map(
                _count, (day.specialist_handoffs, sum(day.deferrals.values()), day.cap_collisions, day.cures)
            ),
            *(_money(day.collected.get(currency, Decimal(0))) for currency in currencies),
            _count(day.open_accounts),
        )
    return table


def _differences(comparison: Comparison) -> Table:
    title = f"per day: {comparison.other.label} minus {comparison.base.label}"
    headers = ("day", "SMS", "cost", "calls", "agent-h", "specialist", "cures")
    table = _table(*headers, title=title, caption="specialist: hand-offs to specialists")
    for day in comparison.by_day:
        table.add_row(
            day.day.isoformat(),
            _signed(_count(day.sms)),
            _signed(_money(day.sms_cost)),
            _signed(_count(day.call_tasks)),
            _signed(_hours(day.agent_hours)),
            *(_signed(_count(count)) for count in (day.specialist_handoffs, day.cures)),
        )
    return table


def _table(*headers: str, title: str, caption: str | None = None) -> Table:
    """A table that fits 120 columns: no frame, two spaces between columns, numbers on the right."""
    table = Table(
        *headers, title=title, caption=caption, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )
    table.padding = (0, 1, 0, 0)
    table.title_justify = table.caption_justify = "left"
    for column in table.columns[1:]:
        column.justify = "right"
    return table
