"""Relative deviation of subgroup rates from a reference subgroup's rate (issue 17).

The published RoentGen audit reports "a 26% deviation from the selection rate of White women":
r_g / r_ref - 1, not r_g - r_ref. The statistic here is the largest |r_g / r_ref - 1| over the
other subgroups. Its interval comes from the simultaneous box the other bias statistics use:
the k subgroups' intervals at alpha / k each (Wilson, or beta-binomial confidence sequences when
sampling is sequential) hold together with probability >= 1 - alpha, and on that box each
r_g / r_ref - 1 lies in [low_g / high_ref - 1, high_g / low_ref - 1], so the largest absolute
value lies in the range taken over the box. Conservative (Bonferroni, then a box), never
anti-conservative; a reference interval reaching 0 leaves the upper bound unbounded (inf).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .intervals import Estimate, IntervalKind, absolute, box

__all__ = ["largest_relative_deviation"]


def largest_relative_deviation(
    counts: Sequence[int], nobs: Sequence[int], reference: int, alpha: float = 0.05, interval: IntervalKind = "fixed"
) -> tuple[Estimate, int]:
    """max over g != reference of |r_g / r_ref - 1| with its interval; also the index of the
    largest. `reference` indexes the reference subgroup in `counts` / `nobs`."""
    k = len(counts)
    if k < 2:
        raise ValueError("a relative deviation needs the reference and at least one other subgroup")
    joint = box(counts, nobs, alpha, interval)
    ref_rate = counts[reference] / nobs[reference] if nobs[reference] else math.nan
    ref_low, ref_high = joint[reference]
    values, lows, highs, index = [], [], [], []
    for g in range(k):
        if g == reference:
            continue
        rate = counts[g] / nobs[g] if nobs[g] else math.nan
        values.append(abs(rate / ref_rate - 1) if ref_rate > 0 else math.inf)
        low_g, high_g = joint[g]
        lo = low_g / ref_high - 1 if ref_high > 0 else -1.0
        hi = high_g / ref_low - 1 if ref_low > 0 else math.inf
        low_abs, high_abs = absolute(lo, hi)
        lows.append(low_abs)
        highs.append(high_abs)
        index.append(g)
    worst = max(range(len(values)), key=lambda j: values[j])
    return Estimate(values[worst], max(lows), max(highs), int(sum(nobs))), index[worst]
