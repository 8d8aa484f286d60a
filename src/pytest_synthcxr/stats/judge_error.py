"""Judge error: a rate measured through a judge, corrected for the judge's own sensitivity and
specificity (Rogan-Gladen), with intervals that carry the judge's uncertainty."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .intervals import Estimate, IntervalKind, proportion, wilson

# ----------------------------------------------------------------------------- judge error
# A rate measured through a judge is a judge-flagged rate. With the judge's sensitivity se and
# specificity sp, the true rate is (Rogan and Gladen 1978) p = (p_obs + sp - 1) / (se + sp - 1).
# Its interval carries the judge's own uncertainty: intervals for p_obs, se and sp, each at
# alpha / 3, hold jointly with probability >= 1 - alpha (Bonferroni); with se + sp > 1 on that box
# the corrected rate is monotone in each of the three when the other two are held, so its range
# over the box is attained at one of the box's 8 corners.


@dataclass(frozen=True)
class JudgeAccuracy:
    """The judge's confusion counts on a validation set with known truth."""

    tp: int
    fn: int
    tn: int
    fp: int

    @property
    def sensitivity(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def specificity(self) -> float:
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else math.nan

    def intervals(self, alpha: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """Wilson intervals for (sensitivity, specificity) at level 1 - alpha each."""
        return wilson(self.tp, self.tp + self.fn, alpha), wilson(self.tn, self.tn + self.fp, alpha)


def rogan_gladen(p_obs: float, sensitivity: float, specificity: float) -> float:
    """Corrected rate (p_obs + sp - 1) / (se + sp - 1), clipped to [0, 1]; NaN when se + sp <= 1
    (a judge no better than chance carries no information about the true rate)."""
    denominator = sensitivity + specificity - 1.0
    if not denominator > 0.0:
        return math.nan
    return min(1.0, max(0.0, (p_obs + specificity - 1.0) / denominator))


def corrected_proportion(
    count: int,
    nobs: int,
    accuracy: JudgeAccuracy,
    alpha: float = 0.05,
    interval: IntervalKind = "fixed",
    center: float | None = None,
) -> Estimate:
    """Rogan-Gladen corrected proportion with an interval carrying the judge's uncertainty.

    The flagged share's interval (Wilson, or the anytime-valid one centred on `center`) and the
    judge's sensitivity and specificity (Wilson) each take alpha / 3; the corrected rate's
    interval is its range over the 8 corners of that box, clipped to [0, 1]. Where the box
    reaches se + sp <= 1 the interval is the whole [0, 1].
    """
    share = proportion(count, nobs, alpha / 3, interval, center)
    (se_low, se_high), (sp_low, sp_high) = accuracy.intervals(alpha / 3)
    value = rogan_gladen(share.value, accuracy.sensitivity, accuracy.specificity) if nobs else math.nan
    if se_low + sp_low <= 1.0:
        return Estimate(value, 0.0, 1.0, nobs)
    corners = [rogan_gladen(p, se, sp) for p in (share.low, share.high) for se in (se_low, se_high) for sp in (sp_low, sp_high)]
    return Estimate(value, min(corners), max(corners), nobs)


def flagged_center(threshold: float, accuracy: JudgeAccuracy | None) -> float:
    """The judge-flagged rate a true rate at `threshold` shows through the judge: se t + (1 - sp)(1 - t)
    (the threshold itself without a judge accuracy); centres the anytime interval's prior."""
    if accuracy is None or not accuracy.sensitivity + accuracy.specificity > 1.0:
        return threshold
    return accuracy.sensitivity * threshold + (1.0 - accuracy.specificity) * (1.0 - threshold)


def corrected_difference(raw: Estimate, accuracy: JudgeAccuracy, alpha: float = 0.05) -> Estimate:
    """Judge-error corrected size of a difference of rates (a gap, or |p1 - p2|), for a judge whose
    sensitivity and specificity are the same in every group compared (non-differential error).

    Each corrected rate is (p + sp - 1) / J with J = se + sp - 1, so differences scale by 1 / J:
    the raw difference understates the true one. `raw` must hold at level 1 - 2 alpha / 3 (its
    interval computed at alpha / 3); se and sp take alpha / 6 each, so J lies in
    [se_low + sp_low - 1, se_high + sp_high - 1] and everything holds together with probability
    >= 1 - alpha. The interval is [raw low / J high, raw high / J low], clipped to [0, 1]; where J
    may be <= 0 its upper end is 1.
    """
    (se_low, se_high), (sp_low, sp_high) = accuracy.intervals(alpha / 6)
    j_hat = accuracy.sensitivity + accuracy.specificity - 1.0
    j_low, j_high = se_low + sp_low - 1.0, se_high + sp_high - 1.0
    value = min(1.0, raw.value / j_hat) if j_hat > 0 and math.isfinite(raw.value) else math.nan
    low = min(1.0, max(0.0, raw.low) / j_high) if j_high > 0 else 0.0
    high = min(1.0, raw.high / j_low) if j_low > 0 else 1.0
    return Estimate(value, low, max(high, low), raw.n)
