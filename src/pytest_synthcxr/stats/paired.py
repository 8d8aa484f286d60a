"""Paired same-seed comparisons: pure functions of two aligned arrays, no pytest, no I/O.

Two prompts generated on the same seeds share every random draw of the generator, so sample i
of prompt A and sample i of prompt B form a pair and the comparison is paired:
- judge decisions (0/1): McNemar's test on the discordant pairs (statsmodels ``mcnemar``; exact
  binomial by default) and Newcombe's (1998, method 10) score interval for the difference of two
  paired proportions, built from the two Wilson intervals and the phi correlation of the table
  with Newcombe's continuity adjustment (his published example 12/1/7/1 gives [-0.5069, -0.0256]);
- judge probabilities: a Student t interval on the per-seed differences, clipped to [-1, 1].
Differences are always A minus B.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .intervals import Estimate, wilson


@dataclass(frozen=True)
class PairedTable:
    """Counts of the 2 x 2 table of paired decisions: both, only A, only B, neither."""

    both: int
    only_a: int
    only_b: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.only_a + self.only_b + self.neither

    @property
    def discordant(self) -> int:
        return self.only_a + self.only_b


@dataclass(frozen=True)
class McNemar:
    statistic: float
    pvalue: float
    only_a: int
    only_b: int


@dataclass(frozen=True)
class PairedComparison:
    """Paired decisions of A and B: rate difference (A - B) with its interval, and McNemar's test."""

    rate_a: float
    rate_b: float
    difference: Estimate
    mcnemar: McNemar

    def describe(self) -> str:
        d, m = self.difference, self.mcnemar
        return (
            f"rate {self.rate_a:.3f} vs {self.rate_b:.3f} on {d.n} paired seeds: difference {d.value:+.3f} "
            f"[{d.low:+.3f}, {d.high:+.3f}], discordant {m.only_a}/{m.only_b}, McNemar p = {m.pvalue:.3g}"
        )


def _decisions(values: Sequence[bool] | np.ndarray) -> np.ndarray:
    x = np.asarray(values)
    if x.dtype != bool:
        if not np.isin(x, (0, 1)).all():
            raise ValueError("paired decisions must be booleans or 0/1")
        x = x.astype(bool)
    return x


def paired_table(a: Sequence[bool] | np.ndarray, b: Sequence[bool] | np.ndarray) -> PairedTable:
    """The 2 x 2 table of paired decisions (a[i], b[i])."""
    x, y = _decisions(a), _decisions(b)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired decisions must be two 1-d arrays of one length, got {x.shape} and {y.shape}")
    return PairedTable(int((x & y).sum()), int((x & ~y).sum()), int((~x & y).sum()), int((~x & ~y).sum()))


def mcnemar_test(table: PairedTable, exact: bool = True) -> McNemar:
    """McNemar's test of equal paired rates: exact binomial on the discordant pairs, or the
    chi-square statistic (b - c)^2 / (b + c) without continuity correction (exact=False)."""
    from statsmodels.stats.contingency_tables import mcnemar

    if table.discordant == 0:
        return McNemar(0.0, 1.0, 0, 0)
    result = mcnemar([[table.both, table.only_a], [table.only_b, table.neither]], exact=exact, correction=False)
    return McNemar(float(result.statistic), min(1.0, float(result.pvalue)), table.only_a, table.only_b)


def newcombe_paired(table: PairedTable, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's method-10 interval for p_A - p_B of paired proportions.

    phi (the correlation of the two decisions) gets Newcombe's continuity adjustment: its
    numerator e h - f g moves n / 2 towards 0 (and stops at 0). Without it the interval is too
    narrow (it missed 15% at n = 32; benchmarks/paired_coverage.py)."""
    n = table.n
    if n == 0:
        return -1.0, 1.0
    e, f, g, h = table.both, table.only_a, table.only_b, table.neither
    p1, p2 = (e + f) / n, (e + g) / n
    l1, u1 = wilson(e + f, n, alpha)
    l2, u2 = wilson(e + g, n, alpha)
    denominator = (e + f) * (g + h) * (e + g) * (f + h)
    cross = e * h - f * g
    cross = max(cross - n / 2, 0.0) if cross > 0 else min(cross + n / 2, 0.0)
    phi = cross / math.sqrt(denominator) if denominator > 0 else 0.0
    d = p1 - p2
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, d - below), min(1.0, d + above)


def compare_decisions(a: Sequence[bool] | np.ndarray, b: Sequence[bool] | np.ndarray, alpha: float = 0.05, exact: bool = True) -> PairedComparison:
    """Paired decisions of two prompts on the same seeds: difference of rates (A - B) with
    Newcombe's paired interval, and McNemar's test."""
    table = paired_table(a, b)
    n = table.n
    rate_a = (table.both + table.only_a) / n if n else math.nan
    rate_b = (table.both + table.only_b) / n if n else math.nan
    low, high = newcombe_paired(table, alpha)
    difference = Estimate(rate_a - rate_b if n else math.nan, low, high, n)
    return PairedComparison(rate_a, rate_b, difference, mcnemar_test(table, exact))


def paired_mean_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, alpha: float = 0.05) -> Estimate:
    """Mean of a[i] - b[i] (judge probabilities on the same seeds) with a Student t interval on
    the per-seed differences, clipped to [-1, 1]."""
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores must be two 1-d arrays of one length, got {x.shape} and {y.shape}")
    diff = x - y
    mean = float(diff.mean()) if diff.size else math.nan
    if diff.size < 2 or float(diff.std()) == 0.0:
        return Estimate(mean, mean, mean, int(diff.size))
    low, high = stats.ttest_1samp(diff, popmean=mean).confidence_interval(confidence_level=1 - alpha)
    return Estimate(mean, max(-1.0, float(low)), min(1.0, float(high)), int(diff.size))


__all__ = [
    "McNemar",
    "PairedComparison",
    "PairedTable",
    "compare_decisions",
    "mcnemar_test",
    "newcombe_paired",
    "paired_mean_difference",
    "paired_table",
]
