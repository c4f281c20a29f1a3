"""What ``kindly simulate`` reads and runs: the book, the policies, the experiment and the response model,
each checked before anything is simulated, then one run (or two, with ``--vs``) and its chart.

Every file is read here and every problem becomes a ``SimulationInputError`` that names the file and the
field on one line, so that the command can refuse a bad input before spending minutes on a simulation
whose figures would mean nothing. The command (``kindly.programs.cli_simulate``) only parses options and
prints.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from pydantic import ValidationError

from kindly.analytics.charts import HEIGHT as CHART_HEIGHT
from kindly.analytics.charts import WIDTH as CHART_WIDTH
from kindly.analytics.charts import line_chart
from kindly.domain.contract import AccountInput
from kindly.domain.experiments import DefinitionError, ExperimentDefinition, checked_definition
from kindly.domain.policy.model import ContactPolicy, load_policies
from kindly.domain.validation import describe_validation_error
from kindly.errors import ConfigurationError, SimulationInputError
from kindly.programs.experiments import read_definition
from kindly.programs.figures import parse_zone
from kindly.programs.portfolio import PortfolioFormatError, read_portfolio
from kindly.settings import Settings
from kindly.simulator import Horizon, ResponseModel, Scenario, SyntheticBook, simulate, synthetic_book
from kindly.simulator.report import Comparison, Prices, SimulationReport, build_report, compare
from kindly.simulator.responses import load_response_model

MAX_DAYS = 400
"""Longer than any collection cycle; a longer run would only simulate accounts long since ended."""
DEFAULT_SMS_PRICE = Decimal("0.05")
DEFAULT_HANDLE_MINUTES = 8.0
OBSERVED = "observed"
"""``--responses observed``: the response model estimated from the audit log."""
BUILT_IN = "built-in policies"
ROW_ERRORS_SHOWN = 10
ZONE_SAMPLE = 1_000
"""Synthetic accounts looked at for the most common time zone: segments are drawn at random, so a
thousand show every segment's zones in their shares."""

Book = SyntheticBook | Sequence[AccountInput]
Result = SimulationReport | Comparison


@dataclass(frozen=True)
class PolicySet:
    label: str
    """The policy file as given, or ``built-in policies``: the report's label."""
    policies: dict[str, ContactPolicy]
    own_segments: tuple[str, ...]
    """The segments the file itself names (a synthetic book's segments); empty without a file."""


@dataclass(frozen=True)
class SimulationPlan:
    """Everything a run needs, every part of it already checked."""

    book: Book
    base: PolicySet
    versus: PolicySet | None
    experiment: ExperimentDefinition | None
    responses: ResponseModel
    horizon: Horizon
    prices: Prices

    @property
    def accounts(self) -> int:
        return self.book.size if isinstance(self.book, SyntheticBook) else len(self.book)


def read_book(path: Path) -> list[AccountInput]:
    """The portfolio's accounts; any bad row refuses the whole file, naming up to ten rows by line and
    field: a simulation of the good rows alone would be a smaller book than the one asked about."""
    try:
        portfolio = read_portfolio(path)
    except PortfolioFormatError as err:
        raise SimulationInputError(f"--portfolio: {err}") from None
    if portfolio.errors:
        shown = [f"line {error.line}: {error.message}" for error in portfolio.errors[:ROW_ERRORS_SHOWN]]
        more = len(portfolio.errors) - ROW_ERRORS_SHOWN
        if more > 0:
            shown.append(f"and {more} more bad row(s)")
        raise SimulationInputError(f"portfolio {path}: {'; '.join(shown)}")
    if not portfolio.accounts:
        raise SimulationInputError(f"portfolio {path}: no accounts (only a header line)")
    return portfolio.accounts


def read_policies(path: Path | None) -> PolicySet:
    """The built-in policies with the file's on top, as the workers load them."""
    try:
        policies = load_policies(path)
    except ConfigurationError as err:
        raise SimulationInputError(_one_line(err)) from None
    if path is None:
        return PolicySet(BUILT_IN, policies, ())
    # load_policies has read the file as a JSON object already: its keys are the file's own segments.
    own = tuple(json.loads(path.read_text(encoding="utf-8")))
    return PolicySet(str(path), policies, own)


def read_experiment(path: Path, policy_sets: Sequence[PolicySet]) -> ExperimentDefinition:
    """The definition, checked against every policy set it will run with (``--vs`` included)."""
    try:
        raw = read_definition(path)
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise SimulationInputError(f"experiment {path}: {_flat(str(err))}") from None
    definition: ExperimentDefinition | None = None
    for policy_set in policy_sets:
        try:
            definition = checked_definition(raw, policy_set.policies)
        except DefinitionError as err:
            against = "" if policy_set is policy_sets[0] else f" (with {policy_set.label})"
            raise SimulationInputError(f"experiment {path}{against}: {_flat(str(err))}") from None
    assert definition is not None, "there is always a base policy set"
    return definition


def read_responses(spec: str | None, settings: Settings) -> ResponseModel:
    """The default model, a JSON file's, or (``observed``) the audit log's. The audit log's database is
    opened without migrating it: a simulation only reads, and must not change a production schema. A
    database that cannot be read raises ``SQLAlchemyError`` (not the input's fault)."""
    if spec is None:
        return ResponseModel()
    if spec != OBSERVED:
        return load_response_model(Path(spec))
    from sqlalchemy.exc import ArgumentError

    from kindly.simulator.observed import observed_response_model
    from kindly.store.engine import make_engine

    try:
        engine = make_engine(settings.database_url, upgrade=False)
    except (ArgumentError, ImportError) as err:
        raise SimulationInputError(f"COLLECTIONS_DATABASE_URL is not a usable database URL: {err}") from None
    try:
        return observed_response_model(engine)
    finally:
        engine.dispose()


def report_zone(book: Book) -> str:
    """The time zone most of the book's accounts live in (ties: the first by name), whose dates make
    the figures' days when ``--timezone`` does not say."""
    if isinstance(book, SyntheticBook):
        zones = Counter(book.account(number).timezone for number in range(min(book.size, ZONE_SAMPLE)))
    else:
        zones = Counter(account.timezone for account in book)
    return min(zones.items(), key=lambda item: (-item[1], item[0]))[0]


def parse_price(text: str) -> Decimal:
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise SimulationInputError(f"--sms-price: {text!r} is not a number") from None
    if not price.is_finite() or price < 0:
        raise SimulationInputError(f"--sms-price: must be zero or more, not {text}")
    return price


def plan_simulation(
    *,
    portfolio: Path | None,
    synthetic: int | None,
    days: int,
    policy: Path | None,
    versus: Path | None,
    experiment: Path | None,
    responses: str | None,
    seed: int,
    start: date | None,
    timezone: str | None,
    prices: Prices,
    settings: Settings,
) -> SimulationPlan:
    """Every input read and checked; ``SimulationInputError`` names the first that is not usable."""
    if (portfolio is None) == (synthetic is None):
        raise SimulationInputError("give either --portfolio FILE.csv or --synthetic N")
    if not 1 <= days <= MAX_DAYS:
        raise SimulationInputError(f"--days: must be between 1 and {MAX_DAYS}")
    if prices.gateway_per_minute < 1:
        raise SimulationInputError("--gateway-per-minute: must be at least 1")
    zone = None
    if timezone is not None:
        try:
            zone = parse_zone(timezone).key
        except ValueError as err:
            raise SimulationInputError(f"--timezone: {err}") from None
    base = read_policies(policy if policy is not None else settings.policy_file)
    other = read_policies(versus) if versus is not None else None
    sets = [base] if other is None else [base, other]
    definition = read_experiment(experiment, sets) if experiment is not None else None
    book: Book
    if portfolio is not None:
        book = read_book(portfolio)
    else:
        assert synthetic is not None
        # Start and zone depend on each other: the zone is the accounts', and the default start is today
        # in it. A synthetic account's zone does not depend on the start, so a first book gives the zone.
        book = _synthetic(synthetic, seed, start or date.today(), days, base)
    zone = zone or report_zone(book)
    first_day = start or datetime.now(ZoneInfo(zone)).date()
    if isinstance(book, SyntheticBook) and book.start != first_day:
        book = _synthetic(book.size, seed, first_day, days, base)
    model = read_responses(responses, settings)  # last: observed responses may read a long audit log
    horizon = Horizon(datetime.combine(first_day, time(0), ZoneInfo(zone)), days, seed, zone)
    return SimulationPlan(book, base, other, definition, model, horizon, prices)


def run_plan(plan: SimulationPlan, settings: Settings, *, workers: int) -> Result:
    """The base run's report, or, with ``--vs``, both runs compared: the same book, seed, responses
    and experiment, so that the policies are the only difference."""
    base = _run(plan, plan.base, settings, workers)
    if plan.versus is None:
        return base
    return compare(base, _run(plan, plan.versus, settings, workers))


def _run(plan: SimulationPlan, policy_set: PolicySet, settings: Settings, workers: int) -> SimulationReport:
    scenario = Scenario(policy_set.policies, plan.responses, plan.experiment)
    tally = simulate(plan.book, scenario, plan.horizon, settings, workers=workers)
    horizon = plan.horizon
    return build_report(
        tally,
        label=policy_set.label,
        start=horizon.start.date(),
        days=horizon.days,
        seed=horizon.seed,
        timezone=horizon.zone,
        prices=plan.prices,
    )


def _synthetic(size: int, seed: int, start: date, days: int, policy_set: PolicySet) -> SyntheticBook:
    return synthetic_book(
        size,
        seed=seed,
        start=start,
        days=days,
        policies=policy_set.policies,
        from_file=policy_set.own_segments,
    )


# --- the chart -------------------------------------------------------------------------------------

_NICE = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
Series = dict[str, list[tuple[float, float]]]


def simulation_chart(result: Result) -> str:
    """Line charts stacked in one SVG document, each on its own scale: a day's SMS are often a hundred
    times its call tasks, which would flatten them on one. One run: SMS above; call tasks, hand-offs to
    specialists and cures below. Two (``--vs``): a chart per figure, each with the run and its ``(vs)``
    twin, so that six lines do not tangle in one."""
    reports = [result] if isinstance(result, SimulationReport) else [result.base, result.other]
    first = reports[0]
    days = f"day 1 = {first.start}, day {first.days} = {first.by_day[-1].day} ({first.timezone})"
    title = " vs ".join(report.label for report in reports)
    sms = _per_day(reports, "sms", "SMS")
    calls = _per_day(reports, "call_tasks", "call tasks")
    handoffs = _per_day(reports, "specialist_handoffs", "to specialists")
    cures = _per_day(reports, "cures", "cures")
    panels: list[tuple[str, Series]] = [(f"SMS per day: {title}", sms)]
    if len(reports) == 1:
        panels.append(
            ("Call tasks, hand-offs to specialists and cures per day", {**calls, **handoffs, **cures})
        )
    else:
        panels += [
            ("Call tasks per day", calls),
            ("Hand-offs to specialists per day", handoffs),
            ("Cures per day", cures),
        ]
    drawn = [
        line_chart(name, series, x_label=days, y_label="per day", y_max=_nice_max(series))
        for name, series in panels
    ]
    height = CHART_HEIGHT * len(drawn)
    stacked = "".join(
        f'<g transform="translate(0,{CHART_HEIGHT * index})">\n{chart}</g>\n'
        for index, chart in enumerate(drawn)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {CHART_WIDTH} {height}">\n{stacked}</svg>\n'
    )


def _per_day(reports: Sequence[SimulationReport], field: str, name: str) -> Series:
    """One series per report of a per-day figure, the second named ``NAME (vs)``, days numbered from 1."""
    return {
        name if index == 0 else f"{name} (vs)": [
            (number + 1.0, float(getattr(day, field))) for number, day in enumerate(report.by_day)
        ]
        for index, report in enumerate(reports)
    }


def _nice_max(series: Series) -> float:
    """The smallest round top at least the largest value whose quarters (the ticks) are whole numbers."""
    largest = max([1.0, *(y for points in series.values() for _, y in points)])
    scale = 1.0
    while True:
        for mantissa in _NICE:
            step = mantissa * scale
            if step == int(step) and 4 * step >= largest:
                return 4 * step
        scale *= 10


def _one_line(err: Exception) -> str:
    """A policy file's error as one line: a pydantic error it carries is described field by field."""
    message, cause = str(err), err.__cause__
    if isinstance(cause, ValidationError) and message.endswith(str(cause)):
        return message[: -len(str(cause))] + describe_validation_error(cause)
    return _flat(message)


def _flat(text: str) -> str:
    return " ".join(text.split())
