"""Where an experiment stands: each arm's primary metric with its interval, its difference to the champion
with the always-valid test (safe to read every day), and its guardrail rates. From the accounts'
outcomes (``kindly.analytics.outcomes``); pure, so the CLI, the API and the worker's guardrail check
share it.

An account counts for the cure rate once its window has ended (its due date plus ``within_days`` has
passed), so young accounts do not dilute an arm. Guardrails are judged only once an arm has sent
``GUARDRAIL_MIN_SMS`` SMS: before that, one opt-out would close it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from kindly.analytics.outcomes import AccountOutcome
from kindly.analytics.statistics import ArmCounts, Comparison, compare_arms, wilson_interval
from kindly.domain.experiments import ExperimentDefinition

GUARDRAIL_MIN_SMS = 200
"""SMS an arm must have sent before its guardrail rates are judged."""


@dataclass(frozen=True)
class ArmResult:
    arm: str
    accounts: int
    """Accounts that got the arm."""
    matured: int
    """Of those, accounts whose metric window has ended: the metric's denominator."""
    cured: int
    rate: float | None
    interval: tuple[float, float] | None
    sms: int
    opt_outs_per_1000_sms: float | None
    disputes_per_1000_sms: float | None
    complaints_per_1000_sms: float | None
    """Complaints opened by the arm's accounts (every one, whatever the channel)."""
    breaches: tuple[str, ...]
    """The guardrails this arm is above (empty until it has sent ``GUARDRAIL_MIN_SMS``)."""
    comparison: Comparison | None
    """Against the champion; None for the champion, or while either arm has no matured account."""


def arm_results(
    definition: ExperimentDefinition, outcomes: Iterable[AccountOutcome], today: date
) -> list[ArmResult]:
    """Every arm's figures, in the definition's order."""
    members: dict[str, list[AccountOutcome]] = {arm.name: [] for arm in definition.arms}
    for outcome in outcomes:
        assigned = outcome.experiments.get(definition.name)
        if assigned in members:
            members[assigned].append(outcome)
    within = definition.primary_metric.within_days
    counts = {name: _cure_counts(accounts, within, today) for name, accounts in members.items()}
    champion = counts[definition.champion]
    results = []
    for arm in definition.arms:
        accounts, own = members[arm.name], counts[arm.name]
        sms = sum(outcome.sms_sent for outcome in accounts)
        opt_outs = _per_1000(sum(outcome.opted_out for outcome in accounts), sms)
        disputes = _per_1000(sum(outcome.dispute for outcome in accounts), sms)
        complaints = _per_1000(sum(outcome.complaints_opened for outcome in accounts), sms)
        interval = wilson_interval(own) if own.accounts else None
        comparable = arm.name != definition.champion and own.accounts and champion.accounts
        results.append(
            ArmResult(
                arm=arm.name,
                accounts=len(accounts),
                matured=own.accounts,
                cured=own.successes,
                rate=own.rate if own.accounts else None,
                interval=None if interval is None else (interval.lower, interval.upper),
                sms=sms,
                opt_outs_per_1000_sms=opt_outs,
                disputes_per_1000_sms=disputes,
                complaints_per_1000_sms=complaints,
                breaches=_breaches(definition, sms, opt_outs, disputes, complaints),
                comparison=compare_arms(champion, own) if comparable else None,
            )
        )
    return results


def _cure_counts(accounts: list[AccountOutcome], within: int, today: date) -> ArmCounts:
    matured = [a for a in accounts if a.due_date is not None and (today - a.due_date).days >= within]
    return ArmCounts(accounts=len(matured), successes=sum(a.cured_within(within) for a in matured))


def _per_1000(events: int, sms: int) -> float | None:
    return None if sms == 0 else round(1000 * events / sms, 2)


def _breaches(
    definition: ExperimentDefinition,
    sms: int,
    opt_outs: float | None,
    disputes: float | None,
    complaints: float | None,
) -> tuple[str, ...]:
    if sms < GUARDRAIL_MIN_SMS:
        return ()
    rails = definition.guardrails
    found = []
    if (
        rails.opt_out_per_1000_sms is not None
        and opt_outs is not None
        and opt_outs > rails.opt_out_per_1000_sms
    ):
        found.append(f"opt-outs {opt_outs} per 1,000 SMS above {rails.opt_out_per_1000_sms:g}")
    if (
        rails.dispute_per_1000_sms is not None
        and disputes is not None
        and disputes > rails.dispute_per_1000_sms
    ):
        found.append(f"disputes {disputes} per 1,000 SMS above {rails.dispute_per_1000_sms:g}")
    ceiling = rails.complaint_per_1000_sms
    if ceiling is not None and complaints is not None and complaints > ceiling:
        found.append(f"complaints {complaints} per 1,000 SMS above {ceiling:g}")
    return tuple(found)
