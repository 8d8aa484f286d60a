"""Agreement between a judge and readers, and between readers; readers telling real from synthetic.

Pure functions of 0/1 arrays and counts (no I/O):
- sensitivity and specificity of the judge against the readers' labels (readers as the truth),
  Wilson or Clopper-Pearson intervals;
- Cohen's kappa of two raters with the asymptotic standard error of Fleiss, Cohen and Everitt
  (1969) (statsmodels ``cohens_kappa``'s ``std_kappa``), a normal interval clipped to [-1, 1];
- Fleiss' kappa of several raters (point value, as statsmodels ``fleiss_kappa``);
- the readers' real-vs-synthetic AUROC (answer and confidence folded into one ordinal score,
  Mann-Whitney, Newcombe's score interval from stats.intervals) and accuracy (Wilson); 0.5 means
  readers cannot tell synthetic images from real ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

from .intervals import Estimate, auroc, newcombe, wilson

__all__ = [
    "Confusion", "clopper_pearson", "cohens_kappa", "confusion", "fleiss_kappa", "rate", "real_vs_synthetic",
    "reader_score", "subgroup_flags",
]


def clopper_pearson(count: int, nobs: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a proportion."""
    from scipy.stats import beta

    if nobs == 0:
        return 0.0, 1.0
    low = 0.0 if count == 0 else float(beta.ppf(alpha / 2, count, nobs - count + 1))
    high = 1.0 if count == nobs else float(beta.ppf(1 - alpha / 2, count + 1, nobs - count))
    return low, high


def rate(count: int, nobs: int, alpha: float = 0.05, method: Literal["wilson", "exact"] = "wilson") -> Estimate:
    low, high = (wilson if method == "wilson" else clopper_pearson)(count, nobs, alpha)
    return Estimate(count / nobs if nobs else math.nan, low, high, nobs)


@dataclass(frozen=True)
class Confusion:
    """Judge calls against reader labels (the readers taken as the truth)."""

    tp: int
    fn: int
    tn: int
    fp: int

    @property
    def n(self) -> int:
        return self.tp + self.fn + self.tn + self.fp

    def sensitivity(self, alpha: float = 0.05, method: Literal["wilson", "exact"] = "wilson") -> Estimate:
        return rate(self.tp, self.tp + self.fn, alpha, method)

    def specificity(self, alpha: float = 0.05, method: Literal["wilson", "exact"] = "wilson") -> Estimate:
        return rate(self.tn, self.tn + self.fp, alpha, method)

    def kappa(self, alpha: float = 0.05) -> Estimate:
        return cohens_kappa(np.array([[self.tp, self.fn], [self.fp, self.tn]]), alpha)


def confusion(judge: Sequence[int] | np.ndarray, reader: Sequence[int] | np.ndarray) -> Confusion:
    """Confusion counts of 0/1 judge calls against 0/1 reader labels of the same images."""
    j, r = np.asarray(judge, dtype=bool), np.asarray(reader, dtype=bool)
    if j.shape != r.shape:
        raise ValueError(f"{j.size} judge calls but {r.size} reader labels")
    return Confusion(int((j & r).sum()), int((~j & r).sum()), int((~j & ~r).sum()), int((j & ~r).sum()))


def cohens_kappa(table: np.ndarray | Sequence[Sequence[int]], alpha: float = 0.05) -> Estimate:
    """Cohen's kappa of a k x k table of two raters' counts (rows: rater 1), with the asymptotic
    standard error of Fleiss, Cohen and Everitt (1969) and a normal 1 - alpha interval."""
    t = np.asarray(table, dtype=float)
    n = t.sum()
    if n == 0:
        return Estimate(math.nan, -1.0, 1.0, 0)
    p = t / n
    rows, cols = p.sum(1), p.sum(0)
    po, pe = float(np.trace(p)), float(rows @ cols)
    if pe >= 1.0:  # both raters gave one category only: kappa undefined
        return Estimate(math.nan, -1.0, 1.0, int(n))
    kappa = (po - pe) / (1 - pe)
    # Fleiss, Cohen and Everitt (1969): variance of kappa-hat
    diag = np.diag(p)
    term1 = float(np.sum(diag * (1 - (rows + cols) * (1 - kappa)) ** 2))
    off = p * (cols[:, None] + rows[None, :]) ** 2
    term2 = (1 - kappa) ** 2 * float(off.sum() - np.trace(off))
    term3 = (kappa - pe * (1 - kappa)) ** 2
    var = max(term1 + term2 - term3, 0.0) / ((1 - pe) ** 2 * n)
    half = NormalDist().inv_cdf(1 - alpha / 2) * math.sqrt(var)
    return Estimate(kappa, max(-1.0, kappa - half), min(1.0, kappa + half), int(n))


def fleiss_kappa(counts: np.ndarray | Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from an (items x categories) table of how many raters chose each category
    (every item rated by the same number of raters)."""
    t = np.asarray(counts, dtype=float)
    if t.size == 0:
        return math.nan
    raters = t.sum(1)
    if not np.allclose(raters, raters[0]) or raters[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (at least 2) of ratings per item")
    m = raters[0]
    p_cat = t.sum(0) / t.sum()
    p_item = ((t * t).sum(1) - m) / (m * (m - 1))
    pbar, pe = float(p_item.mean()), float((p_cat**2).sum())
    return math.nan if pe >= 1.0 else (pbar - pe) / (1 - pe)


def reader_score(says_synthetic: Sequence[bool] | np.ndarray, confidence: Sequence[int] | np.ndarray) -> np.ndarray:
    """One ordinal score per answer: +c for "synthetic" with confidence c (1-5), -c for "real"."""
    s = np.asarray(says_synthetic, dtype=bool)
    c = np.asarray(confidence, dtype=float)
    return np.where(s, c, -c)


@dataclass(frozen=True)
class RealVsSynthetic:
    """How well readers tell synthetic images (positives) from real ones."""

    auroc: Estimate
    accuracy: Estimate
    synthetic: int
    real: int


def real_vs_synthetic(
    is_synthetic: Sequence[bool] | np.ndarray,
    says_synthetic: Sequence[bool] | np.ndarray,
    confidence: Sequence[int] | np.ndarray,
    alpha: float = 0.05,
) -> RealVsSynthetic:
    """AUROC (0.5: indistinguishable) and accuracy of real-vs-synthetic answers, with intervals."""
    truth = np.asarray(is_synthetic, dtype=bool)
    says = np.asarray(says_synthetic, dtype=bool)
    score = reader_score(says, confidence)
    area = auroc(score[truth], score[~truth], alpha)
    right = int((truth == says).sum())
    return RealVsSynthetic(area, rate(right, int(truth.size), alpha), int(truth.sum()), int((~truth).sum()))


def subgroup_flags(confusions: dict[str, Confusion], alpha: float = 0.05, metric: Literal["sensitivity", "specificity"] = "sensitivity") -> dict[str, tuple[float, float]]:
    """Subgroups where the judge agrees with readers less than in the best subgroup: the Newcombe
    interval of (best - this) lies above 0. The best subgroup is picked from the same data, so each
    interval gets alpha / (k (k - 1) / 2), the level at which all pairwise intervals hold together
    (a flag is then a false alarm with probability <= alpha). Returns {subgroup: interval}."""
    def counts(c: Confusion) -> tuple[int, int]:
        return (c.tp, c.tp + c.fn) if metric == "sensitivity" else (c.tn, c.tn + c.fp)

    usable = {g: counts(c) for g, c in confusions.items() if counts(c)[1] > 0}
    if len(usable) < 2:
        return {}
    best = max(usable, key=lambda g: usable[g][0] / usable[g][1])
    level = alpha / (len(usable) * (len(usable) - 1) / 2)
    flags = {}
    for g, (k, n) in usable.items():
        if g == best:
            continue
        low, high = newcombe(usable[best][0], usable[best][1], k, n, level)
        if low > 0:
            flags[g] = (low, high)
    return flags
