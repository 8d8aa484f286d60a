"""Intervals and verdicts: pure functions of counts and scores, no pytest, no I/O.

Fixed-sample intervals at level 1 - alpha:
- one proportion: Wilson score (statsmodels ``proportion_confint``);
- a difference of two proportions: Newcombe's hybrid score (statsmodels ``confint_proportions_2indep``);
- gap (max - min) and ratio (min / max) across k subgroups: each subgroup gets a Wilson interval at
  alpha / k (Bonferroni), so all k hold at once with probability >= 1 - alpha, and the gap's or
  ratio's interval is the range it takes over that box;
- largest absolute difference among m pairs: Newcombe at alpha / m, same argument;
- mean of a score in [0, 1]: Student t (scipy), clipped to [0, 1];
- AUROC: Mann-Whitney U (scipy) with Newcombe's (2006) score-type interval (method 5): the
  Hanley-McNeil variance written as a function of the true AUROC and inverted, so the interval
  keeps its width at AUROC = 1 and holds its level at 20 + 20 images (benchmarks/auroc_coverage.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Direction = Literal["max", "min"]
Outcome = Literal["pass", "fail", "inconclusive"]
#: "fixed": descriptive fixed-sample intervals (Wilson, Newcombe); "anytime": valid under optional stopping
IntervalKind = Literal["fixed", "anytime"]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval and the number of samples behind it."""

    value: float
    low: float
    high: float
    n: int


def wilson(count: int, nobs: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a proportion (statsmodels' proportion_confint "wilson", written
    out: this runs for every look of every item, and the library call costs 1 ms)."""
    from statistics import NormalDist

    if nobs == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p, z2 = count / nobs, z * z
    centre = (p + z2 / (2 * nobs)) / (1 + z2 / nobs)
    half = z * math.sqrt(p * (1 - p) / nobs + z2 / (4 * nobs * nobs)) / (1 + z2 / nobs)
    low, high = centre - half, centre + half
    # exact at the edges (the formula gives 1 - 1e-16 for count == nobs)
    low = 0.0 if count == 0 else max(0.0, float(low))
    high = 1.0 if count == nobs else min(1.0, float(high))
    return low, high


def proportion(count: int, nobs: int, alpha: float = 0.05, interval: IntervalKind = "fixed", center: float | None = None) -> Estimate:
    """A proportion with a Wilson interval, or an anytime-valid one whose mixing prior is centred
    on `center` (the check's threshold: narrowest where the decision is made)."""
    if interval == "anytime":
        low, high = beta_binomial_cs(count, nobs, alpha, threshold_prior(center))
    else:
        low, high = wilson(count, nobs, alpha)
    return Estimate(count / nobs if nobs else math.nan, low, high, nobs)


def newcombe(count1: int, nobs1: int, count2: int, nobs2: int, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe hybrid score interval for p1 - p2."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    low, high = confint_proportions_2indep(count1, nobs1, count2, nobs2, method="newcomb", compare="diff", alpha=alpha)
    return float(max(-1.0, low)), float(min(1.0, high))


def difference(count1: int, nobs1: int, count2: int, nobs2: int, alpha: float = 0.05) -> Estimate:
    low, high = newcombe(count1, nobs1, count2, nobs2, alpha)
    return Estimate(count1 / nobs1 - count2 / nobs2, low, high, nobs1 + nobs2)


def absolute(low: float, high: float) -> tuple[float, float]:
    """The interval of |d| from the interval [low, high] of d."""
    return (0.0 if low <= 0.0 <= high else min(abs(low), abs(high))), max(abs(low), abs(high))


def intersect(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """Two intervals that hold together: their intersection; if they are disjoint (an event of
    probability at most the alphas spent), the range of both, never an empty interval."""
    low, high = max(a[0], b[0]), min(a[1], b[1])
    return (low, high) if low <= high else (min(a[0], b[0]), max(a[1], b[1]))


def box(counts: Sequence[int], nobs: Sequence[int], alpha: float, interval: IntervalKind = "fixed") -> list[tuple[float, float]]:
    """Intervals for k proportions holding jointly with prob >= 1 - alpha (each at alpha / k)."""
    k = len(counts)
    one = beta_binomial_cs if interval == "anytime" else wilson
    return [one(c, n, alpha / k) for c, n in zip(counts, nobs)]


def gap(counts: Sequence[int], nobs: Sequence[int], alpha: float = 0.05, interval: IntervalKind = "fixed") -> Estimate:
    """max - min of k proportions, with the gap's range over the simultaneous box."""
    rates = [c / n for c, n in zip(counts, nobs)]
    joint = box(counts, nobs, alpha, interval)
    lows, highs = [b[0] for b in joint], [b[1] for b in joint]
    low = max(0.0, max(lows) - min(highs))
    high = max(highs) - min(lows)
    return Estimate(max(rates) - min(rates), low, high, int(sum(nobs)))


def ratio(counts: Sequence[int], nobs: Sequence[int], alpha: float = 0.05, interval: IntervalKind = "fixed") -> Estimate:
    """min / max of k proportions (1 = parity), with its range over the simultaneous box."""
    rates = [c / n for c, n in zip(counts, nobs)]
    joint = box(counts, nobs, alpha, interval)
    lows, highs = [b[0] for b in joint], [b[1] for b in joint]
    value = min(rates) / max(rates) if max(rates) > 0 else 1.0
    low = min(lows) / max(highs) if max(highs) > 0 else 0.0
    high = 1.0 if max(lows) <= 0 else min(1.0, min(highs) / max(lows))
    return Estimate(value, low, high, int(sum(nobs)))


def largest_difference(
    pairs: Sequence[tuple[int, int, int, int]], alpha: float = 0.05, interval: IntervalKind = "fixed"
) -> tuple[Estimate, int]:
    """max_j |p1_j - p2_j| over m pairs; also returns the index of the largest.

    fixed: Newcombe at alpha / m; anytime: the range of p1 - p2 over the two proportions'
    confidence sequences, each at alpha / 2m.
    """
    m = len(pairs)
    values, lows, highs = [], [], []
    for c1, n1, c2, n2 in pairs:
        d = c1 / n1 - c2 / n2
        if interval == "anytime":
            (l1, h1), (l2, h2) = beta_binomial_cs(c1, n1, alpha / (2 * m)), beta_binomial_cs(c2, n2, alpha / (2 * m))
            lo, hi = l1 - h2, h1 - l2
        else:
            lo, hi = newcombe(c1, n1, c2, n2, alpha / m)
        values.append(abs(d))
        low_abs, high_abs = absolute(lo, hi)
        lows.append(low_abs)
        highs.append(high_abs)
    worst = int(np.argmax(values))
    n = int(sum(p[1] + p[3] for p in pairs))
    return Estimate(values[worst], max(lows), max(highs), n), worst


def mean_bounded(values: Sequence[float] | np.ndarray, alpha: float = 0.05, bounds: tuple[float, float] = (0.0, 1.0)) -> Estimate:
    """Mean of a bounded score with a Student t interval clipped to the bounds."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if x.size < 2 or float(x.std()) == 0.0:
        return Estimate(mean, mean, mean, int(x.size))
    low, high = stats.ttest_1samp(x, popmean=mean).confidence_interval(confidence_level=1 - alpha)
    return Estimate(mean, max(bounds[0], float(low)), min(bounds[1], float(high)), int(x.size))


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of a Bernoulli(p) prediction: 0 when certain, 1 at p = 0.5."""
    from scipy.special import entr

    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    return (entr(p) + entr(1.0 - p)) / math.log(2.0)


def auroc_variance(theta: float, n1: int, n0: int) -> float:
    """Variance of the Mann-Whitney AUROC at true value `theta` (Hanley-McNeil's exponential
    model, with Newcombe's (2006) N* = (n1 + n0) / 2 in place of n1 and n0 in the two
    covariance terms: method 5)."""
    half = (n1 + n0) / 2
    return theta * (1 - theta) / (n1 * n0) * (1 + (half - 1) * ((1 - theta) / (2 - theta) + theta / (1 + theta)))


def auroc(positives: Sequence[float] | np.ndarray, negatives: Sequence[float] | np.ndarray, alpha: float = 0.05) -> Estimate:
    """Area under the ROC curve (Mann-Whitney U / (n1 n0)) with Newcombe's score-type interval:
    the thetas with |A - theta| <= z sqrt(V(theta)). V is evaluated at theta, not at the estimate,
    so A = 1 still gives a lower bound below 1 (Hanley-McNeil's plug-in interval is [1, 1] there
    and missed 30% at AUROC 0.99 with 20 + 20 images)."""
    from scipy import stats
    from scipy.optimize import brentq

    pos, neg = np.asarray(positives, float), np.asarray(negatives, float)
    n1, n0 = pos.size, neg.size
    if n1 == 0 or n0 == 0:
        return Estimate(math.nan, 0.0, 1.0, n1 + n0)
    u = stats.mannwhitneyu(pos, neg, alternative="two-sided").statistic
    a = float(u) / (n1 * n0)
    z = float(stats.norm.ppf(1 - alpha / 2))
    eps = 1e-12

    def score(theta: float) -> float:  # decreasing in theta: +inf at 0, -inf at 1 (0 at 1 when a = 1)
        return (a - theta) / math.sqrt(auroc_variance(theta, n1, n0))

    low = 0.0 if score(eps) <= z else brentq(lambda t: score(t) - z, eps, min(max(a, eps), 1 - eps), xtol=1e-12)
    high = 1.0 if score(1 - eps) >= -z else brentq(lambda t: score(t) + z, max(a, eps), 1 - eps, xtol=1e-12)
    return Estimate(a, float(low), float(high), n1 + n0)


def verdict(estimate: Estimate, threshold: float, direction: Direction) -> Outcome:
    """pass: the interval lies on the allowed side; fail: on the forbidden side; else inconclusive.

    direction "max": the quantity must be at most the threshold; "min": at least.
    """
    if direction == "max":
        if estimate.high <= threshold:
            return "pass"
        if estimate.low > threshold:
            return "fail"
    else:
        if estimate.low >= threshold:
            return "pass"
        if estimate.high < threshold:
            return "fail"
    return "inconclusive"


# ----------------------------------------------------------------------------- anytime-valid
# Intervals that stay valid when sampling stops as soon as the answer is known (optional
# stopping). One proportion: the beta-binomial mixture confidence sequence (Robbins; Howard et
# al. 2021): M_t(p0) = B(a+S, b+t-S) / B(a, b) / (p0^S (1-p0)^(t-S)) is a nonnegative martingale
# under p = p0, so by Ville's inequality {p0 : M_t(p0) < 1/alpha} covers p at every t at once
# with probability >= 1 - alpha.


def threshold_prior(center: float | None, strength: float = 20.0) -> tuple[float, float]:
    """Beta prior of mean `center` worth `strength` pseudo-samples (each shape at least 0.5);
    uniform without a center. The prior changes only the width, never the validity."""
    if center is None:
        return 1.0, 1.0
    c = min(max(center, 0.0), 1.0)
    return max(0.5, c * strength), max(0.5, (1 - c) * strength)


def beta_binomial_cs(count: int, nobs: int, alpha: float = 0.05, prior: tuple[float, float] = (1.0, 1.0)) -> tuple[float, float]:
    """Anytime-valid interval for a proportion after `count` successes in `nobs` draws."""
    from scipy.optimize import brentq
    from scipy.special import betaln

    if nobs == 0:
        return 0.0, 1.0
    a, b = prior
    s, f = count, nobs - count
    log_mix = betaln(a + s, b + f) - betaln(a, b)
    bound = math.log(1.0 / alpha)

    def excess(p0: float) -> float:  # log M_t(p0) - log(1/alpha); negative inside the interval
        return log_mix - s * math.log(p0) - f * math.log1p(-p0) - bound

    p_hat = count / nobs
    eps = 1e-12
    centre = min(max(p_hat, 2 * eps), 1 - 2 * eps)  # log M is convex with its minimum at p_hat
    low = 0.0 if s == 0 or excess(eps) < 0 else brentq(excess, eps, centre, xtol=1e-10)
    high = 1.0 if f == 0 or excess(1 - eps) < 0 else brentq(excess, centre, 1 - eps, xtol=1e-10)
    return float(low), float(high)
