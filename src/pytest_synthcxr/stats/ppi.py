"""Prediction-powered inference (PPI) for a mean or a rate: judge calls on every image, reader
labels on a random sample of them, one valid interval (Angelopoulos et al. 2023, Science 382).

With n labelled images (reader label Y, judge call f(X)) and N unlabelled ones (judge call only),
the estimate is

    theta = mean(f(X_unlabelled)) + mean(Y - f(X_labelled))

(the judge's rate, rectified by how far the judge is from the readers where both looked), and its
CLT interval is theta +- z sqrt(var(f(X_unl)) / N + var(Y - f(X_lab)) / n). The rectifier removes
the judge's bias whatever it is (subgroup-dependent misses included); the judge only buys width.
`lam` scales the judge's part (PPI++, Angelopoulos, Duchi and Zrnic 2023): 1 is classic PPI,
0 the readers alone, "tuned" the variance-minimising value clipped to [0, 1].

A study samples images per cell (stratified), so `stratified` combines per-stratum estimates with
weights N_s / N. A stratum with fewer than two labels cannot be rectified: it enters as the worst
case over [0, 1] for its weight (the interval stays valid, only wider); a stratum whose every image
was read enters with the readers' mean alone.

Pure functions of arrays; ppi_python (``ppi_py.ppi_mean_ci``) is the test oracle, not a dependency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

__all__ = ["PPIEstimate", "ppi_mean", "stratified"]


@dataclass(frozen=True)
class PPIEstimate:
    """A PPI estimate: value, interval, labelled and unlabelled counts, lam, and its variance."""

    value: float
    low: float
    high: float
    n_labelled: int
    n_unlabelled: int
    lam: float
    variance: float


def _tuned_lam(y: np.ndarray, yhat: np.ndarray, yhat_unl: np.ndarray) -> float:
    """PPI++'s variance-minimising lam for a 1-d mean (ppi_py's _calc_lam_glm, clipped to [0, 1])."""
    n, big_n = y.size, yhat_unl.size
    both = np.concatenate([yhat, yhat_unl])
    var_hat = float(np.var(both, ddof=1)) if both.size > 1 else 0.0
    if var_hat <= 0.0:
        return 0.0
    cov = 2.0 * float(np.mean((y - y.mean()) * (yhat - yhat.mean())))
    return float(np.clip(cov / (2.0 * (1.0 + n / big_n) * var_hat), 0.0, 1.0))


def ppi_mean(
    y: Sequence[float] | np.ndarray,
    yhat: Sequence[float] | np.ndarray,
    yhat_unlabelled: Sequence[float] | np.ndarray,
    alpha: float = 0.05,
    lam: float | Literal["tuned"] = 1.0,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> PPIEstimate:
    """Two-sided 1 - alpha PPI interval for E[Y] (see the module docstring); `bounds` clips the
    interval (a rate lies in [0, 1]; None: no clipping)."""
    y_, f_, u_ = (np.asarray(a, dtype=float).ravel() for a in (y, yhat, yhat_unlabelled))
    if y_.size != f_.size:
        raise ValueError(f"{y_.size} labels but {f_.size} judge calls on the labelled images")
    if y_.size == 0 or u_.size == 0:
        raise ValueError("PPI needs at least one labelled and one unlabelled image")
    lam_ = _tuned_lam(y_, f_, u_) if lam == "tuned" else float(lam)
    value = float(np.mean(lam_ * u_) + np.mean(y_ - lam_ * f_))
    # ppi_py / statsmodels use the population standard deviation (ddof 0)
    variance = float(np.var(lam_ * u_) / u_.size + np.var(y_ - lam_ * f_) / y_.size)
    half = NormalDist().inv_cdf(1 - alpha / 2) * math.sqrt(variance)
    low, high = value - half, value + half
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return PPIEstimate(value, low, high, int(y_.size), int(u_.size), lam_, variance)


def stratified(
    strata: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    alpha: float = 0.05,
    lam: float | Literal["tuned"] = 1.0,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> PPIEstimate:
    """PPI over strata (y, yhat, yhat_unlabelled), each a random sample of its own stratum:
    theta = sum_s w_s theta_s with w_s = (n_s + N_s) / total, variance sum_s w_s^2 var_s. Strata
    with fewer than two labels enter at their worst case in `bounds`; strata read in full with the
    readers' mean alone."""
    sizes = [np.asarray(y).size + np.asarray(u).size for y, _, u in strata]
    total = sum(sizes)
    if total == 0:
        return PPIEstimate(math.nan, bounds[0], bounds[1], 0, 0, float(lam) if lam != "tuned" else math.nan, math.nan)
    value = variance = 0.0
    slack_low = slack_high = 0.0  # worst-case width of strata that cannot be rectified
    n_lab = n_unl = 0
    lams = []
    for (y, f, u), size in zip(strata, sizes):
        w = size / total
        y, f, u = np.asarray(y, float), np.asarray(f, float), np.asarray(u, float)
        n_lab, n_unl = n_lab + y.size, n_unl + u.size
        if y.size >= 2 and u.size == 0:  # every image read: the readers' mean alone (lam 0)
            value += w * float(np.mean(y))
            variance += w * w * float(np.var(y)) / y.size
            continue
        if y.size < 2:
            # unrectified: the stratum's true rate may be anywhere in bounds; value uses the judge
            judge = float(np.mean(np.concatenate([f, u]))) if size else 0.0
            value += w * judge
            slack_low += w * (judge - bounds[0])
            slack_high += w * (bounds[1] - judge)
            continue
        one = ppi_mean(y, f, u, alpha, lam, bounds=None)
        lams.append(one.lam)
        value += w * one.value
        variance += w * w * one.variance
    half = NormalDist().inv_cdf(1 - alpha / 2) * math.sqrt(variance)
    low = max(bounds[0], value - half - slack_low)
    high = min(bounds[1], value + half + slack_high)
    return PPIEstimate(value, low, high, n_lab, n_unl, float(np.mean(lams)) if lams else math.nan, variance)
