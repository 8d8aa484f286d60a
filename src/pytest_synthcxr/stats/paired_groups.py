"""Subgroup statistics from paired outcomes: same-seed images of several subgroups (issue 17).

Sample i of every subgroup's cell is generated on the same seed (only the demographic words of
the prompt differ), so outcome i of subgroup g and outcome i of subgroup h form a pair and their
difference r_g - r_h is estimated from the per-seed differences, whose variance is the
discordance rate instead of 2 p (1 - p). Each statistic needs m differences at once (a gap: every
pair of subgroups; a deviation: every subgroup against the reference; a prompt effect: every
subgroup named against the plain prompt), so each difference gets alpha / m (Bonferroni) and the
statistic's interval is its range over those m intervals:

- "fixed": Newcombe's method-10 paired interval (stats.paired.newcombe_paired);
- "anytime": the empirical-Bernstein confidence sequence on the differences (stats.confseq),
  valid under the sequential rule's optional stopping.

Outcomes are float arrays of 0 / 1 with NaN for an invalid image: one value per sample index, or
a row per sample index and a column per cell (a selection rate pools several cells, the same
number of samples from each). The confidence sequence's stream is the sample index: its value is
the mean over the cells of the paired differences at that index, so the stream is independent
and identically distributed with mean exactly the difference of the pooled rates (a stream that
ran through one cell and then the next would change its mean on the way, which no running
interval may assume). A pair is used only when both of its images are valid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .confseq import empirical_bernstein_cs
from .intervals import Estimate, IntervalKind, absolute, beta_binomial_cs, wilson
from .paired import newcombe_paired, paired_table

__all__ = ["index_stream", "paired_difference", "paired_gap", "paired_largest_difference", "paired_relative_deviation", "discordance"]


def _both_valid(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two outcome arrays as (samples, cells), NaN where either image of a pair is invalid."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim not in (1, 2):
        raise ValueError(f"paired outcomes must be two arrays of one shape (samples, or samples x cells), got {a.shape} and {b.shape}")
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    keep = np.isfinite(a) & np.isfinite(b)
    return np.where(keep, a, np.nan), np.where(keep, b, np.nan)


def index_stream(diff: np.ndarray) -> np.ndarray:
    """A confidence sequence's stream from per-image differences (samples x cells, NaN where a
    pair is not usable): per sample index, the mean over its usable cells; indices with none are
    dropped. I.i.d. over indices, with the pooled difference as its mean."""
    usable = np.isfinite(diff).any(axis=1)
    return np.nanmean(diff[usable], axis=1)


def paired_difference(a: np.ndarray, b: np.ndarray, alpha: float = 0.05, interval: IntervalKind = "fixed") -> Estimate:
    """rate(a) - rate(b) over the pairs where both are valid, with its interval; n = pairs."""
    x, y = _both_valid(a, b)
    valid = np.isfinite(x)
    n = int(valid.sum())
    if n == 0:
        return Estimate(math.nan, -1.0, 1.0, 0)
    value = float(np.nanmean(x) - np.nanmean(y))
    if interval == "anytime":
        low, high = empirical_bernstein_cs(index_stream(x - y), alpha, (-1.0, 1.0))
    else:  # every valid pair of images, pooled over the cells (Newcombe's paired interval)
        low, high = newcombe_paired(paired_table(x[valid].astype(bool), y[valid].astype(bool)), alpha)
    return Estimate(value, low, high, n)


def discordance(a: np.ndarray, b: np.ndarray) -> float:
    """Share of valid pairs whose two outcomes differ (the variance of a paired 0/1 difference
    is about this, against 2 p (1 - p) for two unpaired rates)."""
    x, y = _both_valid(a, b)
    valid = np.isfinite(x)
    return float((x[valid] != y[valid]).mean()) if valid.any() else math.nan


def _absolute(estimate: Estimate) -> tuple[float, float, float]:
    """|d| and its interval from d's interval."""
    return (abs(estimate.value), *absolute(estimate.low, estimate.high))


def paired_largest_difference(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], alpha: float = 0.05, interval: IntervalKind = "fixed"
) -> tuple[Estimate, int]:
    """max_j |rate(a_j) - rate(b_j)| over m paired comparisons, each at alpha / m; also the index
    of the largest. n is the number of distinct images (both sides of every pair, once each)."""
    m = len(pairs)
    if m == 0:
        raise ValueError("a largest difference needs at least one pair")
    parts = [_absolute(paired_difference(a, b, alpha / m, interval)) for a, b in pairs]
    values = [p[0] if math.isfinite(p[0]) else -1.0 for p in parts]
    worst = int(np.argmax(values))
    n = int(sum(np.isfinite(np.asarray(a, dtype=float)).sum() + np.isfinite(np.asarray(b, dtype=float)).sum() for a, b in pairs))
    return Estimate(parts[worst][0], max(p[1] for p in parts), max(p[2] for p in parts), n), worst


def paired_gap(outcomes: Sequence[np.ndarray], alpha: float = 0.05, interval: IntervalKind = "fixed") -> Estimate:
    """max - min of k subgroups' rates, from the k (k - 1) / 2 paired differences (each at
    alpha / that many): the gap is the largest |r_g - r_h|. The point estimate is max - min of the
    subgroups' own rates (each over its valid images)."""
    k = len(outcomes)
    if k < 2:
        raise ValueError("a gap needs at least two subgroups")
    pairs = [(outcomes[g], outcomes[h]) for g in range(k) for h in range(g + 1, k)]
    estimate, _ = paired_largest_difference(pairs, alpha, interval)
    rates = [float(np.nanmean(o)) if np.isfinite(o).any() else math.nan for o in map(np.asarray, outcomes)]
    n = int(sum(np.isfinite(np.asarray(o, dtype=float)).sum() for o in outcomes))
    return Estimate(max(rates) - min(rates), estimate.low, estimate.high, n)


def paired_relative_deviation(
    outcomes: Sequence[np.ndarray], reference: int, alpha: float = 0.05, interval: IntervalKind = "fixed"
) -> tuple[Estimate, int]:
    """max over g != reference of |r_g / r_ref - 1|, with its interval; also the index of the largest.

    r_g / r_ref - 1 = d_g / r_ref with d_g = r_g - r_ref: half of alpha goes to the k - 1 paired
    differences d_g (alpha / 2 (k - 1) each), half to the reference rate's own interval; on that
    joint event each ratio lies in the range of d / r over the two intervals."""
    k = len(outcomes)
    if k < 2:
        raise ValueError("a relative deviation needs the reference and at least one other subgroup")
    ref = np.asarray(outcomes[reference], dtype=float)
    ref_valid = ref[np.isfinite(ref)]
    count, nobs = int(ref_valid.sum()), int(ref_valid.size)
    if interval == "anytime":
        r_low, r_high = beta_binomial_cs(count, nobs, alpha / 2)
    else:
        r_low, r_high = wilson(count, nobs, alpha / 2)
    ref_rate = count / nobs if nobs else math.nan
    values, lows, highs, index = [], [], [], []
    for g in range(k):
        if g == reference:
            continue
        d = paired_difference(outcomes[g], ref, alpha / (2 * (k - 1)), interval)
        rate = float(np.nanmean(outcomes[g])) if np.isfinite(np.asarray(outcomes[g], dtype=float)).any() else math.nan
        values.append(abs(rate / ref_rate - 1) if ref_rate > 0 else math.inf)
        if r_low <= 0.0:
            lo, hi = -math.inf, math.inf
        else:
            lo = min(d.low / r_low, d.low / r_high)
            hi = max(d.high / r_low, d.high / r_high)
        lo, hi = max(lo, -1.0), hi  # a rate is never below 0: r_g / r_ref - 1 >= -1
        low_abs, high_abs = absolute(lo, hi)
        lows.append(low_abs)
        highs.append(high_abs)
        index.append(g)
    worst = max(range(len(values)), key=lambda j: values[j] if math.isfinite(values[j]) else math.inf)
    n = int(sum(np.isfinite(np.asarray(o, dtype=float)).sum() for o in outcomes))
    return Estimate(values[worst], max(lows), max(highs), n), index[worst]
