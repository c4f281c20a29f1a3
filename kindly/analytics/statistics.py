"""Statistics for champion/challenger experiments whose metric is a proportion per arm.

Lenders compare collection strategies on a share of accounts: the cure rate (accounts repaid in full
within N days), the opt-out rate, the dispute rate. This module turns each arm's counts into what an
operator's report shows, and nothing else: pure functions over small dataclasses, no I/O, standard
library only, so reports, notebooks and tests call the same code.

- :func:`wilson_interval`: one arm's rate with a 95% interval. Wilson's score interval (Wilson 1927)
  keeps close to its nominal coverage for small counts and rates near 0 or 1, where the textbook
  "p ± 1.96·SE" (Wald) interval is too narrow or leaves [0, 1] (Newcombe 1998a, method 3).
- :func:`difference_interval`: challenger − champion with a 95% interval, by Newcombe's hybrid score
  interval (Newcombe 1998b, method 10), built from the two Wilson intervals. It is the fixed-horizon
  answer: valid when the experiment is read once, at a size fixed in advance.
- :func:`always_valid_test`: the answer for an experiment read every day. Reading a fixed-horizon test
  at each look and stopping at the first "significant" one inflates false positives several-fold; the
  mixture sequential probability ratio test (mSPRT, Johari, Koomen, Pekelis & Walsh, "Always Valid
  Inference", Operations Research 2022) gives a p-value and a confidence sequence that stay valid
  however often, and whenever, they are looked at.
- :func:`accounts_still_needed`: how many more accounts per arm a fixed-horizon test would need to
  detect a minimum effect with 80% power, so a report can say "too little data" instead of "no effect".
- :func:`compare_arms`: all of the above for a report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from statistics import NormalDist

DEFAULT_ALPHA = 0.05
"""Two-sided false-positive rate: 95% intervals, and at most 5% of A/A experiments called different."""
DEFAULT_MINIMUM_EFFECT = 0.05
"""Five percentage points: the smallest change in a rate worth acting on, unless the caller says."""
DEFAULT_POWER = 0.80
"""Chance of detecting an effect of the minimum size, the usual planning convention."""


@dataclass(frozen=True)
class ArmCounts:
    """One arm's cumulative counts: accounts whose outcome is known, and how many had the outcome.

    ``successes`` is whatever the metric counts (cured, opted out, disputed). Count only accounts whose
    observation window has ended (e.g. N days since entry for a cure rate), or young accounts dilute it.
    """

    accounts: int
    successes: int

    def __post_init__(self) -> None:
        if self.accounts < 0 or not 0 <= self.successes <= self.accounts:
            raise ValueError(f"need 0 <= successes <= accounts, got {self.successes} of {self.accounts}")

    @property
    def rate(self) -> float:
        """The observed proportion; an arm without accounts has none (raises ``ValueError``)."""
        if self.accounts == 0:
            raise ValueError("an arm without accounts has no rate")
        return self.successes / self.accounts


@dataclass(frozen=True)
class Interval:
    """A closed interval ``[lower, upper]`` on a proportion or a difference of proportions."""

    lower: float
    upper: float

    def contains(self, value: float) -> bool:
        return self.lower <= value <= self.upper

    @property
    def excludes_zero(self) -> bool:
        """True when the interval says the difference is not zero, at its confidence level."""
        return not self.contains(0.0)


@dataclass(frozen=True)
class Look:
    """Both arms' cumulative counts at one look (e.g. one daily report)."""

    champion: ArmCounts
    challenger: ArmCounts


class Decision(StrEnum):
    """What the always-valid test allows an operator to conclude; "higher" is not always "better"
    (a higher opt-out rate is worse), so the decision names the direction, not a winner."""

    CHALLENGER_HIGHER = "challenger_higher"
    CHALLENGER_LOWER = "challenger_lower"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class AlwaysValidResult:
    """The mSPRT after the latest look; valid to act on at any look, however many came before."""

    p_value: float
    """Always-valid p-value for "no difference": the smallest over all looks so far (never rises)."""
    interval: Interval
    """Confidence sequence for challenger − champion: the intersection of every look's interval."""
    decision: Decision
    looks: int


@dataclass(frozen=True)
class AccountsNeeded:
    """A planning estimate for a fixed-horizon two-proportion test, not a guarantee."""

    accounts_per_arm: int
    """Accounts each arm needs in total, by :func:`accounts_per_arm_to_detect`."""
    needs_more_accounts: int | None
    """How many more accounts the smaller arm needs; ``None`` once both arms have enough."""
    baseline_rate: float
    minimum_effect: float


@dataclass(frozen=True)
class ArmEstimate:
    counts: ArmCounts
    rate: float
    interval: Interval
    """Wilson score interval."""


@dataclass(frozen=True)
class Comparison:
    """Everything an operator's report shows for one metric of one experiment."""

    champion: ArmEstimate
    challenger: ArmEstimate
    difference: float
    """Challenger's rate minus champion's, in proportion units (0.05 is five points)."""
    difference_interval: Interval
    """Newcombe's hybrid score interval: fixed-horizon, valid if this is the only look."""
    always_valid: AlwaysValidResult
    """The test to act on when results are looked at repeatedly."""
    accounts_needed: AccountsNeeded

    @property
    def needs_more_accounts(self) -> int | None:
        return self.accounts_needed.needs_more_accounts


def _z(alpha: float) -> float:
    """The standard normal quantile for a two-sided test at ``alpha`` (1.96 for 0.05)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    return NormalDist().inv_cdf(1 - alpha / 2)


def wilson_interval(counts: ArmCounts, *, alpha: float = DEFAULT_ALPHA) -> Interval:
    """Wilson's score interval for one arm's proportion.

    Chosen over the Wald interval because it never leaves [0, 1], is not degenerate at 0 or all
    successes, and keeps close to nominal coverage at the small counts of an experiment's first days.
    """
    n = counts.accounts
    p = counts.rate
    z2 = _z(alpha) ** 2
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half_width = math.sqrt(z2 * p * (1 - p) / n + z2 * z2 / (4 * n * n)) / denominator
    return Interval(max(0.0, centre - half_width), min(1.0, centre + half_width))


def difference_interval(
    champion: ArmCounts, challenger: ArmCounts, *, alpha: float = DEFAULT_ALPHA
) -> Interval:
    """Newcombe's hybrid score interval for challenger − champion (Newcombe 1998b, method 10).

    Each side combines the distances from each rate to the matching end of its Wilson interval. It
    inherits Wilson's good behaviour at small counts and extreme rates, stays inside [-1, 1], and has
    coverage close to nominal where the Wald difference interval does not; it needs no iteration.
    """
    p_old, p_new = champion.rate, challenger.rate
    old, new = wilson_interval(champion, alpha=alpha), wilson_interval(challenger, alpha=alpha)
    difference = p_new - p_old
    below = math.hypot(p_new - new.lower, old.upper - p_old)
    above = math.hypot(new.upper - p_new, p_old - old.lower)
    return Interval(max(-1.0, difference - below), min(1.0, difference + above))


def _difference_variance(look: Look) -> float:
    """Plug-in variance of challenger − champion, with one success and one failure added per arm
    (Agresti & Caffo 2000) so it is never zero: with the raw plug-in, 0 of 40 in both arms would divide
    by zero, and 0 of 40 versus 3 of 40 would count only one arm's noise. At realistic sizes the
    adjustment changes nothing measurable."""

    def arm(counts: ArmCounts) -> float:
        adjusted = (counts.successes + 1) / (counts.accounts + 2)
        return adjusted * (1 - adjusted) / max(counts.accounts, 1)

    return arm(look.champion) + arm(look.challenger)


def log_mixture_likelihood_ratio(
    difference: float, variance: float, mixing_sd: float, null_difference: float = 0.0
) -> float:
    """Log of the mSPRT statistic for an estimated difference ~ Normal(θ, variance).

    The ratio compares "θ drawn from Normal(null, mixing_sd²)" with "θ = null". Under the null it is a
    (near-)martingale with mean 1, so by Ville's inequality the chance that it *ever* reaches 1/alpha is
    at most alpha: this is what makes daily peeking safe (Johari et al. 2022, section 3).
    """
    tau2 = mixing_sd * mixing_sd
    shift = difference - null_difference
    return 0.5 * math.log(variance / (variance + tau2)) + tau2 * shift * shift / (
        2 * variance * (variance + tau2)
    )


def _look_interval(difference: float, variance: float, mixing_sd: float, alpha: float) -> Interval:
    """Every θ the mSPRT does not reject at this look: solving ``Λ(θ) < 1/alpha`` for θ gives
    ``|difference − θ|² < V(V+τ²)/τ² · (2·ln(1/alpha) + ln((V+τ²)/V))``."""
    tau2 = mixing_sd * mixing_sd
    half_width = math.sqrt(
        variance
        * (variance + tau2)
        / tau2
        * (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance))
    )
    return Interval(difference - half_width, difference + half_width)


def _check_cumulative(looks: Sequence[Look]) -> None:
    for index, (earlier, later) in enumerate(pairwise(looks), start=1):
        for name in ("champion", "challenger"):
            before: ArmCounts = getattr(earlier, name)
            after: ArmCounts = getattr(later, name)
            if after.accounts < before.accounts or after.successes < before.successes:
                raise ValueError(
                    f"look {index} has fewer {name} accounts or successes than look {index - 1}: "
                    "pass cumulative counts, not each day's"
                )


def always_valid_test(
    looks: Sequence[Look],
    *,
    alpha: float = DEFAULT_ALPHA,
    mixing_sd: float = DEFAULT_MINIMUM_EFFECT,
) -> AlwaysValidResult:
    """The mSPRT over every look so far (cumulative counts, oldest first), with its confidence sequence.

    Method (Johari et al. 2022, "Always Valid Inference: Continuous Monitoring of A/B Tests"): at each
    look the difference of rates is treated as Normal(θ, V) with the plug-in variance V, the statistic
    Λ = mixture likelihood ratio of "θ ~ Normal(0, τ²)" to "θ = 0" is computed, and the always-valid
    p-value is the running minimum of min(1, 1/Λ); it never rises, so a result once significant stays
    so. The confidence sequence is the running intersection of the θ each look does not reject, so it
    only narrows, and it excludes 0 when the p-value is at most ``alpha`` (barring the skipped look below).

    ``mixing_sd`` (τ) defaults to the minimum effect of interest, five points. The boundary of the
    normal-mixture test at a given variance V is tightest when τ²/V ≈ 8.2 (for alpha = 0.05); the
    fixed-horizon sample size for an effect δ at 80% power puts (δ/SE)² at (1.96 + 0.84)² ≈ 7.8, so
    τ = δ makes the test sharpest just where a fixed-horizon plan would have read the result. There
    the always-valid test asks for |difference| ≈ 3.04 standard errors instead of 1.96: the price of
    being allowed to look every day.

    The guarantee rests on the normal approximation of the difference, which needs a few dozen accounts
    and a few successes per arm; the Agresti-Caffo adjustment of the variance keeps the first, small
    looks from overstating their evidence. If a look's interval misses the intersection so far (only
    after a miscoverage, which has chance at most alpha), that look does not narrow the sequence.
    """
    if not looks:
        raise ValueError("the test needs at least one look")
    if mixing_sd <= 0 or not 0 < alpha < 1:
        raise ValueError(f"need mixing_sd > 0 and 0 < alpha < 1, got {mixing_sd} and {alpha}")
    _check_cumulative(looks)
    p_value = 1.0
    running: Interval | None = None
    for look in looks:
        difference = look.challenger.rate - look.champion.rate
        variance = _difference_variance(look)
        log_ratio = log_mixture_likelihood_ratio(difference, variance, mixing_sd)
        p_value = min(p_value, math.exp(-max(log_ratio, 0.0)))
        current = _look_interval(difference, variance, mixing_sd, alpha)
        if running is None:
            running = current
        elif current.lower <= running.upper and running.lower <= current.upper:
            running = Interval(max(running.lower, current.lower), min(running.upper, current.upper))
    assert running is not None
    return AlwaysValidResult(p_value, running, _decision(p_value, running, alpha), len(looks))


def _decision(p_value: float, interval: Interval, alpha: float) -> Decision:
    if p_value > alpha:
        return Decision.INCONCLUSIVE
    if interval.lower > 0:
        return Decision.CHALLENGER_HIGHER
    if interval.upper < 0:
        return Decision.CHALLENGER_LOWER
    return Decision.INCONCLUSIVE


def accounts_per_arm_to_detect(
    baseline_rate: float,
    minimum_effect: float = DEFAULT_MINIMUM_EFFECT,
    *,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
) -> int:
    """Accounts per arm for a two-sided, fixed-horizon two-proportion z-test to detect ``minimum_effect``.

    The textbook normal-approximation formula without continuity correction (Fleiss, Levin & Paik,
    "Statistical Methods for Rates and Proportions", 3rd ed., section 4.2):
    ``n = (z₁₋α/₂·√(2·p̄·q̄) + z₁₋β·√(p₁q₁ + p₂q₂))² / δ²``, e.g. 1,377 per arm for 30% versus 35%.
    The alternative rate is taken on the side of the baseline nearer one half, which needs more
    accounts, so the estimate errs high. It is an estimate: the baseline itself is uncertain.
    """
    if not 0 <= baseline_rate <= 1:
        raise ValueError(f"baseline_rate must be a proportion, got {baseline_rate}")
    if not 0 < minimum_effect < 1:
        raise ValueError(f"minimum_effect must be between 0 and 1, got {minimum_effect}")
    if not 0 < power < 1:
        raise ValueError(f"power must be between 0 and 1, got {power}")
    p1 = baseline_rate
    p2 = p1 + minimum_effect if p1 < 0.5 else p1 - minimum_effect
    p2 = min(max(p2, 0.0), 1.0)
    mean = (p1 + p2) / 2
    spread = _z(alpha) * math.sqrt(2 * mean * (1 - mean)) + NormalDist().inv_cdf(power) * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil(spread * spread / ((p2 - p1) ** 2))


def accounts_still_needed(
    champion: ArmCounts,
    challenger: ArmCounts,
    *,
    minimum_effect: float = DEFAULT_MINIMUM_EFFECT,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
) -> AccountsNeeded:
    """How far the experiment is from a size at which "no difference" would mean something.

    The champion's observed rate is the baseline. ``needs_more_accounts`` counts from the smaller arm,
    and is ``None`` once both arms have the estimated size. The estimate is for a test read once: the
    always-valid test, which may be read every day, has only about 50% power at that size and needs
    roughly 1.75 times as many accounts for 80% (simulated, 30% versus 35%, 30 daily looks: 1,377 per
    arm fixed-horizon, about 2,400 always-valid); it may stop earlier when the true effect is larger.
    """
    needed = accounts_per_arm_to_detect(champion.rate, minimum_effect, alpha=alpha, power=power)
    shortfall = needed - min(champion.accounts, challenger.accounts)
    return AccountsNeeded(
        accounts_per_arm=needed,
        needs_more_accounts=shortfall if shortfall > 0 else None,
        baseline_rate=champion.rate,
        minimum_effect=minimum_effect,
    )


def _estimate(counts: ArmCounts, alpha: float) -> ArmEstimate:
    return ArmEstimate(counts, counts.rate, wilson_interval(counts, alpha=alpha))


def compare_arms(
    champion: ArmCounts,
    challenger: ArmCounts,
    *,
    earlier_looks: Sequence[Look] = (),
    alpha: float = DEFAULT_ALPHA,
    minimum_effect: float = DEFAULT_MINIMUM_EFFECT,
    power: float = DEFAULT_POWER,
    mixing_sd: float | None = None,
) -> Comparison:
    """One metric of one experiment, as a report shows it: both rates with Wilson intervals, the
    difference with Newcombe's interval, the always-valid test, and the accounts still needed.

    ``champion`` and ``challenger`` are today's cumulative counts; ``earlier_looks`` are the counts at
    the looks before (oldest first). Without them the always-valid result is still valid, but it is
    computed from today's look alone, so it may be less decisive than the full history's and need not
    be monotone from one report to the next. ``mixing_sd`` defaults to ``minimum_effect``.
    """
    looks = [*earlier_looks, Look(champion, challenger)]
    return Comparison(
        champion=_estimate(champion, alpha),
        challenger=_estimate(challenger, alpha),
        difference=challenger.rate - champion.rate,
        difference_interval=difference_interval(champion, challenger, alpha=alpha),
        always_valid=always_valid_test(
            looks, alpha=alpha, mixing_sd=minimum_effect if mixing_sd is None else mixing_sd
        ),
        accounts_needed=accounts_still_needed(
            champion, challenger, minimum_effect=minimum_effect, alpha=alpha, power=power
        ),
    )
