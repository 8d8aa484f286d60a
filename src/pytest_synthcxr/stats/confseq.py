"""Anytime-valid confidence sequences for the mean of a bounded stream (issue 17).

The predictable plug-in empirical-Bernstein confidence sequence of Waudby-Smith and Ramdas
(JRSS-B 2024, Theorem 2): closed form, valid at every sample size at once for any distribution on
known bounds, and its width follows the stream's variance. That is what paired bias statistics
need: the per-seed difference of two subgroups' 0/1 outcomes lies in [-1, 1], but its variance is
the discordance rate (how often the pair disagrees), far below the 2 p (1 - p) of two unpaired
rates when the same noise drives both images. The order of the stream is the sample index, which
the seed rule fixes, so the interval is the same whatever the batch size or worker.

Checked against ``ville``'s EmpiricalBernsteinCS (tests/test_paired_bias.py): same bets, same
radius, same running intersection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["empirical_bernstein_cs"]

#: bets are truncated at C (the paper's c = 1/2 for two-sided intervals)
C = 0.5


def empirical_bernstein_cs(
    values: Sequence[float] | np.ndarray, alpha: float = 0.05, bounds: tuple[float, float] = (0.0, 1.0)
) -> tuple[float, float]:
    """Interval for the mean of `values` (in stream order, each within `bounds`) valid
    simultaneously over every prefix of the stream with probability >= 1 - alpha; the running
    intersection over all prefixes (also valid) is returned at the last one."""
    lo_b, hi_b = bounds
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return lo_b, hi_b
    if not (0 < alpha < 1):
        raise ValueError("alpha must lie in (0, 1)")
    z = (x - lo_b) / (hi_b - lo_b)
    if np.any(z < -1e-12) or np.any(z > 1 + 1e-12):
        raise ValueError(f"values must lie in {bounds}")
    t = np.arange(1, z.size + 1, dtype=float)
    # predictable plug-in mean and variance: those of the samples before each one
    mu = (0.5 + np.cumsum(z)) / (t + 1)
    var = (0.25 + np.cumsum((z - mu) ** 2)) / (t + 1)
    mu_prev = np.concatenate(([0.5], mu[:-1]))
    var_prev = np.concatenate(([0.25], var[:-1]))
    log_term = math.log(2 / alpha)
    lam = np.minimum(np.sqrt(2 * log_term / (var_prev * t * np.log1p(t))), C)
    psi = (-np.log1p(-lam) - lam) / 4
    lam_sum = np.cumsum(lam)
    centre = np.cumsum(lam * z) / lam_sum
    radius = (log_term + np.cumsum(4 * (z - mu_prev) ** 2 * psi)) / lam_sum
    low = float(np.max(np.maximum(centre - radius, 0.0)))
    high = float(np.min(np.minimum(centre + radius, 1.0)))
    if low > high:  # the running intersection emptied (an event of probability <= alpha): keep the last interval
        low, high = max(float(centre[-1] - radius[-1]), 0.0), min(float(centre[-1] + radius[-1]), 1.0)
    return lo_b + low * (hi_b - lo_b), lo_b + high * (hi_b - lo_b)
