"""The experiment statistics (``kindly.analytics.statistics``): textbook values, and simulated experiments
that check the properties a report relies on. Every simulation is seeded, so a run is reproducible; the
comments give each Monte-Carlo margin, so a change of seed would not flip a result either."""

from __future__ import annotations

import math
import random
from functools import cache
from itertools import pairwise

import pytest

from kindly.analytics.statistics import (
    AccountsNeeded,
    ArmCounts,
    Decision,
    Look,
    accounts_per_arm_to_detect,
    accounts_still_needed,
    always_valid_test,
    compare_arms,
    difference_interval,
    log_mixture_likelihood_ratio,
    wilson_interval,
)

ALPHA = 0.05
DAYS = 30
"""Daily looks per simulated experiment."""


def simulate_looks(
    rng: random.Random, champion_rate: float, challenger_rate: float, accounts_per_arm: int
) -> list[Look]:
    """Cumulative counts at each of ``DAYS`` daily looks; accounts arrive evenly, each one's outcome an
    independent Bernoulli draw (an exact binomial per day, cheap enough at these sizes)."""
    looks: list[Look] = []
    old = new = previous = 0
    draw = rng.random
    for day in range(1, DAYS + 1):
        accounts = round(accounts_per_arm * day / DAYS)
        batch = accounts - previous
        previous = accounts
        old += sum(draw() < champion_rate for _ in range(batch))
        new += sum(draw() < challenger_rate for _ in range(batch))
        looks.append(Look(ArmCounts(accounts, old), ArmCounts(accounts, new)))
    return looks


@cache
def experiments(
    champion_rate: float, challenger_rate: float, accounts_per_arm: int, runs: int, seed: int
) -> tuple[tuple[Look, ...], ...]:
    rng = random.Random(seed)
    return tuple(
        tuple(simulate_looks(rng, champion_rate, challenger_rate, accounts_per_arm)) for _ in range(runs)
    )


def naive_daily_peek_rejects(looks: tuple[Look, ...]) -> bool:
    """What an operator does without the sequential test: read the fixed-horizon 95% interval every day
    and call the experiment the first day it excludes zero."""
    return any(difference_interval(look.champion, look.challenger).excludes_zero for look in looks)


# --- Textbook values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "accounts", "lower", "upper"),
    [
        # Newcombe (1998a), "Two-sided confidence intervals for the single proportion: comparison of
        # seven methods", Stat Med 17:857-872, Table I, method 3 (Wilson score).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe_1998a(successes, accounts, lower, upper):
    interval = wilson_interval(ArmCounts(accounts, successes))
    assert interval.lower == pytest.approx(lower, abs=5e-5)
    assert interval.upper == pytest.approx(upper, abs=5e-5)


@pytest.mark.parametrize(
    ("challenger", "champion", "lower", "upper"),
    [
        # Newcombe (1998b), "Interval estimation for the difference between independent proportions:
        # comparison of eleven methods", Stat Med 17:873-890, Table II, method 10 (hybrid score).
        (ArmCounts(70, 56), ArmCounts(80, 48), 0.0524, 0.3339),
        (ArmCounts(10, 9), ArmCounts(10, 3), 0.1705, 0.8090),
        (ArmCounts(56, 5), ArmCounts(29, 0), -0.0381, 0.1926),
    ],
)
def test_difference_interval_matches_newcombe_1998b(challenger, champion, lower, upper):
    interval = difference_interval(champion, challenger)
    assert interval.lower == pytest.approx(lower, abs=5e-5)
    assert interval.upper == pytest.approx(upper, abs=5e-5)


def test_accounts_per_arm_matches_the_textbook_formula():
    # Fleiss, Levin & Paik (2003), section 4.2, without continuity correction: 30% vs 35%, two-sided
    # alpha 5%, power 80% -> (1.96·√(2·0.325·0.675) + 0.8416·√(0.21 + 0.2275))² / 0.05² = 1376.4.
    assert accounts_per_arm_to_detect(0.30) == 1377
    assert accounts_per_arm_to_detect(0.70) == 1377  # 70% vs 65% is the same test, mirrored
    assert accounts_per_arm_to_detect(0.30, 0.10) < accounts_per_arm_to_detect(0.30) / 3.5
    assert accounts_per_arm_to_detect(0.30, power=0.90) > accounts_per_arm_to_detect(0.30)


# --- The always-valid test, look by look ----------------------------------------------------------


def test_the_look_interval_is_the_set_the_mixture_test_does_not_reject():
    look = Look(ArmCounts(2000, 600), ArmCounts(2000, 660))
    result = always_valid_test([look])
    variance = 0.3 * 0.7 / 2000 + 0.33 * 0.67 / 2000
    for end in (result.interval.lower, result.interval.upper):
        ratio = log_mixture_likelihood_ratio(0.03, variance, 0.05, null_difference=end)
        assert ratio == pytest.approx(math.log(1 / ALPHA), abs=0.01)  # 0.01: the variance's +1/+2 shift
    assert result.interval.contains(0.03)


def test_p_value_never_rises_and_the_interval_only_narrows():
    looks = experiments(0.30, 0.35, 4000, 1, seed=7)[0]  # becomes significant around day 22
    results = [always_valid_test(looks[: day + 1]) for day in range(len(looks))]
    for before, after in pairwise(results):
        assert after.p_value <= before.p_value
        assert before.interval.lower <= after.interval.lower <= after.interval.upper <= before.interval.upper
    significant = [r.p_value <= ALPHA for r in results]
    assert significant == [r.interval.excludes_zero for r in results]
    assert not significant[0] and significant[-1]


def test_a_significant_result_names_the_direction():
    higher = always_valid_test([Look(ArmCounts(4000, 1200), ArmCounts(4000, 1400))])
    lower = always_valid_test([Look(ArmCounts(4000, 400), ArmCounts(4000, 250))])  # e.g. opt-outs
    same = always_valid_test([Look(ArmCounts(4000, 1200), ArmCounts(4000, 1210))])
    assert (higher.decision, lower.decision, same.decision) == (
        Decision.CHALLENGER_HIGHER,
        Decision.CHALLENGER_LOWER,
        Decision.INCONCLUSIVE,
    )


def test_the_always_valid_interval_is_wider_than_the_fixed_horizon_one():
    champion, challenger = ArmCounts(4000, 1200), ArmCounts(4000, 1400)
    fixed = difference_interval(champion, challenger)
    anytime = always_valid_test([Look(champion, challenger)]).interval
    assert anytime.lower < fixed.lower and fixed.upper < anytime.upper


def test_daily_counts_passed_as_cumulative_are_refused():
    looks = [Look(ArmCounts(100, 30), ArmCounts(100, 31)), Look(ArmCounts(90, 28), ArmCounts(200, 60))]
    with pytest.raises(ValueError, match="cumulative"):
        always_valid_test(looks)
    with pytest.raises(ValueError):
        always_valid_test([])


def test_no_successes_in_either_arm_is_no_evidence():
    result = always_valid_test([Look(ArmCounts(40, 0), ArmCounts(40, 0))])
    assert result.p_value == 1.0 and result.decision is Decision.INCONCLUSIVE


@pytest.mark.parametrize(("accounts", "successes"), [(-1, 0), (10, 11), (10, -1)])
def test_impossible_counts_are_refused(accounts, successes):
    with pytest.raises(ValueError):
        ArmCounts(accounts, successes)


def test_an_empty_arm_has_no_rate():
    with pytest.raises(ValueError, match="no rate"):
        compare_arms(ArmCounts(0, 0), ArmCounts(10, 3))


# --- Simulated experiments ------------------------------------------------------------------------
# Realistic sizes: 4,000 accounts per arm over 30 daily looks (about 133 per arm per day).


@pytest.mark.parametrize(("rate", "seed"), [(0.30, 11), (0.05, 12)], ids=["cure-30pct", "opt-out-5pct"])
def test_daily_peeking_at_an_aa_experiment_keeps_false_positives_at_alpha(rate, seed):
    runs = experiments(rate, rate, 4000, 500, seed)
    always_valid = sum(always_valid_test(looks).p_value <= ALPHA for looks in runs) / len(runs)
    naive = sum(naive_daily_peek_rejects(looks) for looks in runs) / len(runs)
    # With 500 runs one standard error of a 5% rate is 1.0 point. The mSPRT measures about 1.5% (it is
    # conservative with discrete looks); the fixed-horizon interval read daily about 27%.
    assert always_valid <= ALPHA
    assert naive > 0.15, "peeking at a fixed-horizon test should inflate false positives several-fold"


def test_a_five_point_lift_is_detected_with_4000_accounts_per_arm():
    runs = experiments(0.30, 0.35, 4000, 200, seed=21)
    detected = [always_valid_test(looks) for looks in runs]
    power = sum(r.decision is Decision.CHALLENGER_HIGHER for r in detected) / len(runs)
    # Measured about 96-97%; with 200 runs one standard error is about 1.3 points, so 80% is more than
    # ten standard errors below. No run may call the lift a drop.
    assert power >= 0.80
    assert not any(r.decision is Decision.CHALLENGER_LOWER for r in detected)


def test_the_fixed_horizon_interval_covers_the_true_difference():
    scenarios = [
        (0.30, 0.30, 4000, 500, 11),
        (0.05, 0.05, 4000, 500, 12),
        (0.30, 0.35, 4000, 200, 21),
    ]
    covered = total = 0
    for champion_rate, challenger_rate, accounts, runs, seed in scenarios:
        for looks in experiments(champion_rate, challenger_rate, accounts, runs, seed):
            final = looks[-1]
            covered += difference_interval(final.champion, final.challenger).contains(
                challenger_rate - champion_rate
            )
            total += 1
    # 1,200 runs (the experiments above, read once at the end): one standard error of a 95% coverage is
    # 0.63 points, so 93% is more than three standard errors below nominal. Measured about 95%.
    assert covered / total >= 0.93


def test_the_accounts_needed_estimate_gives_about_80_percent_power():
    accounts = accounts_per_arm_to_detect(0.30)
    runs = experiments(0.30, 0.35, accounts, 300, seed=31)
    power = sum(
        difference_interval(looks[-1].champion, looks[-1].challenger).lower > 0 for looks in runs
    ) / len(runs)
    # A test read once at the estimated size: 80% expected; with 300 runs one standard error is 2.3
    # points, so the band is about ±3.5 standard errors. A formula off by a factor of 1.5 would miss it.
    assert 0.72 <= power <= 0.88


# --- Accounts still needed and the report's summary -----------------------------------------------


def test_accounts_still_needed_counts_down_to_none():
    def needed(champion: int, challenger: int) -> AccountsNeeded:
        return accounts_still_needed(
            ArmCounts(champion, round(champion * 0.3)), ArmCounts(challenger, round(challenger * 0.32))
        )

    assert needed(1000, 1000).needs_more_accounts == 377
    assert needed(1000, 1200).needs_more_accounts == 377  # the smaller arm decides
    assert needed(1376, 1400).needs_more_accounts == 1
    assert needed(1377, 1377).needs_more_accounts is None
    assert needed(50000, 50000).needs_more_accounts is None
    assert needed(1000, 1000).accounts_per_arm == 1377


def test_compare_arms_puts_the_report_together():
    history = experiments(0.30, 0.35, 4000, 1, seed=41)[0]
    today = history[-1]
    comparison = compare_arms(today.champion, today.challenger, earlier_looks=history[:-1])
    assert comparison.difference == pytest.approx(comparison.challenger.rate - comparison.champion.rate)
    assert comparison.champion.interval == wilson_interval(today.champion)
    assert comparison.difference_interval == difference_interval(today.champion, today.challenger)
    assert comparison.always_valid == always_valid_test(history)
    assert comparison.always_valid.looks == DAYS
    assert comparison.needs_more_accounts is None
    assert comparison.always_valid.decision is Decision.CHALLENGER_HIGHER

    early = history[2]
    first_days = compare_arms(early.champion, early.challenger, earlier_looks=history[:2])
    assert first_days.needs_more_accounts == accounts_per_arm_to_detect(early.champion.rate) - 400
    assert first_days.always_valid.decision is Decision.INCONCLUSIVE
