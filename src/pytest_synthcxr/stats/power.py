"""Fixed-sample sizes for the plan (statsmodels' normal-approximation power)."""

from __future__ import annotations

import math

# ----------------------------------------------------------------------------- sample size
# Fixed-sample sizes for the plan: the samples a one-sided level-alpha test needs to reach `power`
# when the truth lies `margin` beyond the threshold (statsmodels' normal-approximation power).


def proportion_samples(threshold: float, margin: float, alpha: float = 0.05, power: float = 0.9) -> int:
    """Samples for one proportion: the larger of the n that decides a truth at threshold - margin
    (pass side) and at threshold + margin (fail side), Cohen's h effect size (arcsine)."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    sizes = []
    for truth in (threshold - margin, threshold + margin):
        truth = min(max(truth, 0.0), 1.0)
        h = abs(float(proportion_effectsize(truth, threshold)))
        if h > 0:
            sizes.append(NormalIndPower().solve_power(effect_size=h, nobs1=None, alpha=alpha, power=power, ratio=0, alternative="larger"))
    return int(math.ceil(max(sizes))) if sizes else 0


def difference_samples(margin: float, alpha: float = 0.05, power: float = 0.9, sd: float = 0.5) -> int:
    """Samples per group for a difference of two rates (or means) to exceed its bound by `margin`,
    with the largest standard deviation a rate can have (0.5) unless told."""
    from statsmodels.stats.power import NormalIndPower

    n = NormalIndPower().solve_power(effect_size=margin / sd, nobs1=None, alpha=alpha, power=power, ratio=1.0, alternative="larger")
    return int(math.ceil(n))


def mean_samples(margin: float, alpha: float = 0.05, power: float = 0.9, sd: float = 0.5) -> int:
    """Samples for the mean of a score in [0, 1] (sd at most 0.5) to lie `margin` from its bound."""
    from statsmodels.stats.power import NormalIndPower

    n = NormalIndPower().solve_power(effect_size=margin / sd, nobs1=None, alpha=alpha, power=power, ratio=0, alternative="larger")
    return int(math.ceil(n))


