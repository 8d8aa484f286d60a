"""Candidate vs released model (issue 18): one comparison item per item whose spec section sets
a margin, deciding "the candidate is at most `margin` worse than the released model".

Both models are audited on the same cells, prompts and seeds; the score table of a comparison
holds both (column ``model``: "candidate" / "released"). The worse-direction difference D is
candidate minus released where larger is worse (rates, gaps, entropy) and released minus
candidate where smaller is worse (sensitivity, AUROC, ratios); the item passes when D's interval
lies at or below the margin, fails when it lies above, as every other item (same gate rules).

- Paired (items with a per-image value: sensitivity, false-positive rate, hallucination rate,
  entropy): per sample index, the mean over the item's cells of the per-image differences on the
  same seed, an i.i.d. stream in [-1, 1]: its empirical-Bernstein confidence sequence (alpha / 4),
  the bound |difference| <= P(an index's images differ at all) from a beta-binomial sequence on
  that indicator (alpha / 4; tight when the models rarely disagree), and the unpaired interval
  (alpha / 2), intersected. Valid at any n, so fixed sampling uses it too.
- Paired for statistics that are a largest |r_a - r_b| over subgroup pairs (gaps, deviations,
  prompt effects): an upper bound from the per-seed changes of each subgroup between the models
  (see `_paired_contrasts`), intersected with the unpaired range.
- Unpaired (ratios, relative deviations, perceived subgroups, AUROC, or images that do not share
  seeds): the two models' own intervals at alpha / 2 each, whose difference range holds with
  probability >= 1 - alpha.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..sampling.cells import Cell
from ..stats.confseq import empirical_bernstein_cs
from ..stats.intervals import Estimate, IntervalKind, beta_binomial_cs, intersect, threshold_prior
from ..stats.paired_groups import index_stream
from .base import ANYTIME_GROWTH, Check, Measured

CANDIDATE, RELEASED = "candidate", "released"


@dataclass(frozen=True)
class CompareCheck(Check):
    family = "compare"
    inner: Any = field(default=None, compare=False)

    @classmethod
    def of(cls, check: Check) -> "CompareCheck":
        """The comparison item of `check` (which has a compare_margin)."""
        return cls(
            name=f"{check.family}-{check.name}", samples=check.samples, threshold=float(check.compare_margin or 0.0),
            direction="max", min_denominator=check.min_denominator, inner=check,
        )

    @property
    def quantity(self) -> str:
        worse = "candidate minus released" if self.inner.direction == "max" else "released minus candidate"
        return f"regression of {self.inner.quantity} ({worse})"

    def cells(self) -> tuple[Cell, ...]:
        return self.inner.cells()

    def round_growth(self) -> float:
        return ANYTIME_GROWTH

    def _sign(self) -> float:
        return 1.0 if self.inner.direction == "max" else -1.0

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        cand, rel = table[table["model"] == CANDIDATE], table[table["model"] == RELEASED]
        sign = self._sign()
        a, b = self.inner.measure(cand, alpha / 2, interval, looks), self.inner.measure(rel, alpha / 2, interval, looks)
        ea, eb = a.estimate, b.estimate
        value = sign * (ea.value - eb.value)
        # unpaired: each model's interval at alpha / 2, the difference's range over the two
        low_u, high_u = (ea.low - eb.high, ea.high - eb.low) if sign > 0 else (eb.low - ea.high, eb.high - ea.low)
        detail = f"candidate {ea.value:.3f} [{ea.low:.3f}, {ea.high:.3f}], released {eb.value:.3f} [{eb.low:.3f}, {eb.high:.3f}]"
        # both models' own estimates and intervals (alpha / 2 each) as numbers, for the report
        both = {
            "candidate_estimate": ea.value, "candidate_low": ea.low, "candidate_high": ea.high,
            "released_estimate": eb.value, "released_low": eb.low, "released_high": eb.high,
        }  # fmt: skip
        paired = self._paired(cand, rel, alpha / 2)
        if paired is None:
            estimate = Estimate(value, low_u, high_u, ea.n + eb.n)
            return Measured(estimate, f"{detail}; unpaired: the two models' intervals (alpha/2 each)", stats={"paired": 0.0, **both})
        low_p, high_p, pairs = paired
        low, high = intersect((low_u, high_u), (low_p, high_p))
        estimate = Estimate(value, low, high, ea.n + eb.n)
        detail += f"; paired: {pairs} same-seed image pairs, interval: paired and unpaired (alpha/2 each) intersected"
        return Measured(estimate, detail, denominator=pairs, denominator_what="same-seed image pairs", stats={"paired": 1.0, **both})

    def _paired(self, cand: Any, rel: Any, alpha: float) -> tuple[float, float, int] | None:
        """The worse-direction difference's confidence sequence on per-seed pairs, or None when the
        item has no per-image value or the two models' images do not share seeds."""
        if hasattr(self.inner, "contrasts"):
            return self._paired_contrasts(cand, rel, alpha)
        values = getattr(self.inner, "sample_values", None)
        if values is None:
            return None
        va, vb = values(cand), values(rel)
        if va is None or vb is None or va.empty or vb.empty:
            return None
        if "seeded" in cand.columns and not (cand["seeded"].all() and rel["seeded"].all()):
            return None
        merged = va.merge(vb, on=["cell", "i"], suffixes=("_c", "_r"))
        if merged.empty or not (merged["seed_c"] == merged["seed_r"]).all():
            return None
        diff = self._sign() * (merged["value_c"].to_numpy() - merged["value_r"].to_numpy())
        by_index = merged.assign(d=diff, any=diff != 0).groupby("i", sort=True)
        stream = by_index["d"].mean().to_numpy()
        low, high = empirical_bernstein_cs(stream, alpha / 2, (-1.0, 1.0))
        # |difference| <= P(the two models' images of an index differ at all): a beta-binomial
        # sequence on that indicator (i.i.d. over indices, prior centred on the margin) is tight
        # where the empirical-Bernstein one is slowest, when the models rarely disagree
        differ = by_index["any"].any().to_numpy()
        _, bound = beta_binomial_cs(int(differ.sum()), int(differ.size), alpha / 2, threshold_prior(self.threshold))
        return max(low, -bound), min(high, bound), int(len(merged))

    def _paired_contrasts(self, cand: Any, rel: Any, alpha: float) -> tuple[float, float, int] | None:
        """A statistic that is the largest |r_a - r_b| over group pairs (gap, deviation, prompt
        effect) changes between the models by at most max |D_a - D_b|, D_g the per-seed difference
        of group g's outcome between candidate and released (triangle inequality); each group pair's
        stream of per-index means of D_a - D_b (in [-2, 2]) gets an empirical-Bernstein sequence
        at alpha / pairs. This bounds the regression from above (what a pass needs); from below
        the unpaired range stays."""
        c, r = self.inner.contrasts(cand), self.inner.contrasts(rel)
        if c is None or r is None:
            return None
        (oc, sc, pairs), (orr, sr, _) = c, r
        n = min(min(len(o) for o in oc), min(len(o) for o in orr))
        if n == 0 or not all(np.array_equal(a[:n], b[:n]) for a, b in zip(sc, sr)):
            return None  # the two models' images do not share seeds
        delta = [a[:n] - b[:n] for a, b in zip(oc, orr)]
        upper = 0.0
        for a, b in pairs:
            low, high = empirical_bernstein_cs(index_stream(delta[a] - delta[b]), alpha / len(pairs), (-2.0, 2.0))
            upper = max(upper, abs(low), abs(high))
        images = int(sum(np.isfinite(o[:n]).sum() for o in oc))
        return -float("inf"), upper, images


__all__ = ["CANDIDATE", "RELEASED", "CompareCheck"]
