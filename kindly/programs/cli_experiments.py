"""``kindly experiment start | status | stop | list``: champion/challenger experiments from the command
line. The definition is checked against the workers' policy file, as the workers will apply it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kindly.domain.experiments import DefinitionError
from kindly.domain.policy.model import load_policies
from kindly.programs.cli_support import EXIT_INCOMPLETE, EXIT_REFUSED, EXIT_USAGE, fail, load_settings, out
from kindly.programs.experiments import (
    ExperimentReport,
    VersusChampion,
    experiment_report,
    read_definition,
    report,
    start_experiment,
)
from kindly.store import make_engine
from kindly.store.experiments import ExperimentConflictError, ExperimentStore

experiment = typer.Typer(
    help="Champion/challenger experiments: start, status, stop, list.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@experiment.command("start")
def start(
    path: Annotated[Path, typer.Argument(help="The definition, JSON or YAML.")],
    json_output: JsonOption = False,
) -> None:
    """Start assigning new accounts of the definition's segments to its arms. A bad definition exits 2
    naming the field; a name or segment already taken exits 3."""
    settings = load_settings()
    try:
        raw = read_definition(path)
    except (OSError, ValueError) as error:
        fail(f"{path}: {error}", EXIT_USAGE)
    policies = load_policies(settings.policy_file)
    try:
        started = start_experiment(make_engine(settings.database_url), policies, raw)
    except DefinitionError as error:
        fail(f"{path}: {error}", EXIT_USAGE)
    except ExperimentConflictError as error:
        fail(f"refused: {error}", EXIT_REFUSED)
    _show(started, json_output)


@experiment.command("status")
def status(
    name: Annotated[str, typer.Argument(help="The experiment's name.")], json_output: JsonOption = False
) -> None:
    """Where an experiment stands: its arms, their accounts and whether a guardrail closed them."""
    settings = load_settings()
    found = experiment_report(make_engine(settings.database_url), name)
    if found is None:
        fail(f"no experiment {name!r}", EXIT_INCOMPLETE)
    _show(found, json_output)


@experiment.command("stop")
def stop(
    name: Annotated[str, typer.Argument(help="The experiment's name.")],
    reason: Annotated[str, typer.Option(help="Why it stops (kept with it).")],
) -> None:
    """Stop assigning new accounts; accounts keep the arm they got."""
    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        stopped = ExperimentStore(engine).stop(name, reason)
    except KeyError:
        fail(f"no experiment {name!r}", EXIT_INCOMPLETE)
    _show(report(engine, stopped), False)


@experiment.command("list")
def list_experiments() -> None:
    """Every experiment, running or stopped."""
    settings = load_settings()
    engine = make_engine(settings.database_url)
    table = Table("name", "status", "segments", "arms", "started")
    for found in ExperimentStore(engine).all():
        definition = found.definition
        arms = ", ".join(arm.name for arm in definition.arms)
        table.add_row(
            definition.name, found.status, ", ".join(definition.segments), arms, found.started_at.isoformat()
        )
    out.print(table)


def _show(found: ExperimentReport, json_output: bool) -> None:
    if json_output:
        out.print_json(found.model_dump_json())
        return
    stopped = f", stopped: {found.stop_reason}" if found.stop_reason else ""
    out.print(
        f"experiment {found.name}: {found.status}{stopped}; segments {', '.join(found.segments)}",
        highlight=False,
    )
    metric = found.definition.primary_metric
    out.print(f"primary metric: cured within {metric.within_days} days of the due date", highlight=False)
    table = Table(
        "arm",
        "weight",
        "role",
        "changes",
        "accounts",
        "cure rate (95%)",
        "vs champion",
        "opt-outs/1k SMS",
        "complaints/1k SMS",
        "closed",
    )
    for arm in found.arms:
        role = "champion" if arm.champion else "shadow" if arm.shadow else "challenger"
        changes = ", ".join(f"{k}={v}" for k, v in arm.overlay.model_dump(exclude_none=True).items()) or "-"
        table.add_row(
            arm.name,
            f"{arm.weight:g}",
            role,
            changes,
            str(arm.accounts),
            _rate(arm.cure_rate, arm.cure_rate_interval, arm.cured, arm.matured),
            _versus(arm.versus_champion),
            "-" if arm.opt_outs_per_1000_sms is None else f"{arm.opt_outs_per_1000_sms:g}",
            "-" if arm.complaints_per_1000_sms is None else f"{arm.complaints_per_1000_sms:g}",
            arm.closed or "-",
        )
    out.print(table)
    for arm in found.arms:
        if arm.shadow_volumes is not None:
            volumes = arm.shadow_volumes
            out.print(
                f"shadow arm {arm.name}: its policy would have sent {volumes.planned_sends} SMS; "
                f"its {volumes.accounts} account(s) got {volumes.actual_sends}",
                highlight=False,
            )


def _rate(rate: float | None, interval: tuple[float, float] | None, cured: int, matured: int) -> str:
    if rate is None or interval is None:
        return "no account matured yet"
    return f"{rate:.1%} [{interval[0]:.1%}, {interval[1]:.1%}] ({cured}/{matured})"


def _versus(versus: VersusChampion | None) -> str:
    if versus is None:
        return "-"
    low, high = versus.interval
    more = f"; needs {versus.accounts_still_needed} more accounts" if versus.accounts_still_needed else ""
    return (
        f"{versus.difference * 100:+.1f} pts [{low * 100:+.1f}, {high * 100:+.1f}], "
        f"always-valid p={versus.always_valid_p:.3f} ({versus.decision}){more}"
    )
