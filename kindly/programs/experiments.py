"""Experiments for the CLI and the HTTP API: start one from its definition (JSON or YAML), report where it
stands, stop it. Definitions are checked against the workers' policies, so a bad one is refused with its
field named before any account could get it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from sqlalchemy import Engine

from kindly.analytics import load_outcomes, refresh_outcomes
from kindly.analytics.experiment_results import arm_results
from kindly.analytics.shadow_volumes import ShadowVolumes, shadow_volumes
from kindly.analytics.statistics import Comparison
from kindly.domain.experiments import ExperimentDefinition, PolicyOverlay, checked_definition
from kindly.domain.policy.model import ContactPolicy
from kindly.store.experiments import Experiment, ExperimentStore


class VersusChampion(BaseModel):
    """The arm's cure rate against the champion's."""

    difference: float
    """Challenger minus champion, in proportion units (0.05 is five points)."""
    interval: tuple[float, float]
    """95%, fixed-horizon (Newcombe): valid if read once."""
    always_valid_p: float
    """The always-valid p-value: safe to act on whenever it is read, every day included."""
    decision: str
    """``challenger_higher``, ``challenger_lower`` or ``inconclusive`` (by the always-valid test)."""
    accounts_still_needed: int | None
    """More accounts the smaller arm needs to detect 5 points (a planning estimate); None when enough."""


class ArmReport(BaseModel):
    name: str
    weight: float
    champion: bool
    shadow: bool
    overlay: PolicyOverlay
    accounts: int
    """Accounts that got this arm as they started."""
    closed: str | None = None
    """Why the arm gets no new accounts (a guardrail), with when."""
    matured: int = 0
    """Accounts whose cure window has ended: the cure rate's denominator."""
    cured: int = 0
    cure_rate: float | None = None
    cure_rate_interval: tuple[float, float] | None = None
    """95% (Wilson)."""
    sms: int = 0
    opt_outs_per_1000_sms: float | None = None
    disputes_per_1000_sms: float | None = None
    complaints_per_1000_sms: float | None = None
    breaches: list[str] = []
    versus_champion: VersusChampion | None = None
    shadow_volumes: ShadowVolumes | None = None
    """For a shadow arm: the sends its own policy would have made against those its accounts got."""


class ExperimentReport(BaseModel):
    name: str
    status: str
    segments: list[str]
    started_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None
    definition: ExperimentDefinition
    arms: list[ArmReport]


def read_definition(path: Path) -> Any:
    """The definition file's content: YAML for ``.yaml``/``.yml``, JSON otherwise."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        return yaml.safe_load(text)
    return json.loads(text)


def start_experiment(engine: Engine, policies: dict[str, ContactPolicy], raw: Any) -> ExperimentReport:
    """Check the definition (``DefinitionError`` names the field) and start it
    (``ExperimentConflictError`` when its name or a segment is taken)."""
    definition = checked_definition(raw, policies)
    return report(engine, ExperimentStore(engine).start(definition))


def experiment_report(engine: Engine, name: str, *, today: date | None = None) -> ExperimentReport | None:
    experiment = ExperimentStore(engine).get(name)
    return None if experiment is None else report(engine, experiment, today=today)


def report(engine: Engine, experiment: Experiment, *, today: date | None = None) -> ExperimentReport:
    """The experiment with each arm's figures, from the outcomes brought up to the audit log."""
    definition = experiment.definition
    refresh_outcomes(engine)
    outcomes = load_outcomes(engine, OUTCOME_COLUMNS)
    results = {r.arm: r for r in arm_results(definition, outcomes, today or datetime.now(UTC).date())}
    arms = [
        ArmReport(
            name=arm.name,
            weight=arm.weight,
            champion=arm.name == definition.champion,
            shadow=arm.shadow,
            overlay=arm.overlay,
            accounts=results[arm.name].accounts,
            closed=_closed(experiment.closed_arms.get(arm.name)),
            matured=results[arm.name].matured,
            cured=results[arm.name].cured,
            cure_rate=results[arm.name].rate,
            cure_rate_interval=results[arm.name].interval,
            sms=results[arm.name].sms,
            opt_outs_per_1000_sms=results[arm.name].opt_outs_per_1000_sms,
            disputes_per_1000_sms=results[arm.name].disputes_per_1000_sms,
            complaints_per_1000_sms=results[arm.name].complaints_per_1000_sms,
            breaches=list(results[arm.name].breaches),
            versus_champion=_versus(results[arm.name].comparison),
            shadow_volumes=shadow_volumes(engine, definition.name, arm.name) if arm.shadow else None,
        )
        for arm in definition.arms
    ]
    return ExperimentReport(
        name=definition.name,
        status=experiment.status,
        segments=definition.segments,
        started_at=experiment.started_at,
        stopped_at=experiment.stopped_at,
        stop_reason=experiment.stop_reason,
        definition=definition,
        arms=arms,
    )


OUTCOME_COLUMNS = (
    "experiments",
    "due_date",
    "cured_at",
    "sms_sent",
    "opted_out",
    "dispute",
    "complaints_opened",
)


def _versus(comparison: Comparison | None) -> VersusChampion | None:
    if comparison is None:
        return None
    interval = comparison.difference_interval
    return VersusChampion(
        difference=round(comparison.difference, 4),
        interval=(round(interval.lower, 4), round(interval.upper, 4)),
        always_valid_p=round(comparison.always_valid.p_value, 4),
        decision=str(comparison.always_valid.decision),
        accounts_still_needed=comparison.needs_more_accounts,
    )


def enforce_guardrails(engine: Engine, *, today: date | None = None) -> list[tuple[str, str, str]]:
    """Close, in every running experiment, the arms above a guardrail (never the champion): they get no
    new accounts, and the store records when and why. Returns ``(experiment, arm, reason)`` closed now."""
    store = ExperimentStore(engine)
    closed: list[tuple[str, str, str]] = []
    for experiment in store.all():
        if not experiment.running:
            continue
        for arm in report(engine, experiment, today=today).arms:
            if arm.breaches and not arm.champion and arm.closed is None:
                reason = "; ".join(arm.breaches)
                store.close_arm(experiment.definition.name, arm.name, reason)
                closed.append((experiment.definition.name, arm.name, reason))
    return closed


def _closed(entry: dict[str, str] | None) -> str | None:
    return None if entry is None else f"{entry['reason']} (at {entry['at']})"
