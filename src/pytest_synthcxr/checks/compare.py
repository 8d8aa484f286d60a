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
  (see `CompareCheck._paired_contrasts`), intersected with the unpaired range.
- Unpaired (ratios, relative deviations, perceived subgroups, AUROC, or images that do not share
  seeds): the two models' own intervals at alpha / 2 each, whose difference range holds with
  probability >= 1 - alpha.

Per subgroup (the report's forest plot, descriptive: the verdict does not use it), candidate minus
released of the item's rate in each subgroup, with intervals simultaneous over the subgroups
(alpha / k each): paired, the empirical-Bernstein sequence on per-seed differences; unpaired,
Newcombe's interval for two independent proportions (statsmodels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..sampling.cells import Cell, subgroup_label
from ..sampling.pool import score_column
from ..stats.confseq import empirical_bernstein_cs
from ..stats.intervals import Estimate, IntervalKind, beta_binomial_cs, intersect, newcombe, threshold_prior
from ..stats.paired_groups import index_stream
from .base import ANYTIME_GROWTH, Check, GroupDifference, Measured, cells_by_label

CANDIDATE, RELEASED = "candidate", "released"


@dataclass(frozen=True)
class CompareCheck(Check):
    family = "compare"
    inner: Any = field(default=None, compare=False)

    @classmethod
    def of(cls, check: Check) -> "CompareCheck":
        """The comparison item of `check` (which has a compare_margin). A reader-corrected item is
        compared on its judge-only rate: the labels were read on the candidate's images only."""
        from .reader import without_reader

        return cls(
            name=f"{check.family}-{check.name}", samples=check.samples, threshold=float(check.compare_margin or 0.0),
            direction="max", min_denominator=check.min_denominator, inner=without_reader(check),
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
        # both models' per-seed outcomes, aligned once (group by group, or image by image)
        aligned, merged = self._aligned(cand, rel), self._merged(cand, rel)
        paired = self._paired(aligned, merged, alpha / 2)
        differences = self.differences(aligned, merged, alpha, (a.groups, b.groups))
        if paired is None:
            estimate = Estimate(value, low_u, high_u, ea.n + eb.n)
            detail += "; unpaired: the two models' intervals (alpha/2 each)"
            return Measured(estimate, detail, stats={"paired": 0.0, **both}, differences=differences)
        low_p, high_p, pairs = paired
        low, high = intersect((low_u, high_u), (low_p, high_p))
        estimate = Estimate(value, low, high, ea.n + eb.n)
        detail += f"; paired: {pairs} same-seed image pairs, interval: paired and unpaired (alpha/2 each) intersected"
        return Measured(
            estimate, detail, denominator=pairs, denominator_what="same-seed image pairs", stats={"paired": 1.0, **both}, differences=differences,
        )

    def differences(self, aligned: Any, merged: Any, alpha: float, groups: tuple[Any, Any] = ((), ())) -> tuple[GroupDifference, ...]:
        """Candidate minus released per subgroup, intervals simultaneous over the k subgroups
        (alpha / k each): paired on shared seeds where the item has per-group or per-image
        outcomes (`aligned`, `merged`), else unpaired from both models' per-group counts
        (`groups`: their GroupRates)."""
        paired = self._group_streams(aligned, merged)
        if paired:
            k = len(paired)
            out = []
            for label, diff in paired:
                usable = np.isfinite(diff)
                if not usable.any():
                    continue
                # as the item's own interval, at alpha / 2k each
                differ = (np.nan_to_num(diff) != 0).any(axis=1)[usable.any(axis=1)]
                low, high = self._bounded_cs(index_stream(diff), differ, alpha / k)
                out.append(GroupDifference(label, float(np.nanmean(diff)), low, high, int(usable.sum()), True))
            return tuple(out)
        return _unpaired_differences(*groups, alpha)

    def _bounded_cs(self, stream: np.ndarray, differ: np.ndarray, alpha: float) -> tuple[float, float]:
        """A per-index stream of differences in [-1, 1]: its empirical-Bernstein confidence
        sequence (alpha / 2), intersected with |difference| <= P(an index's images differ at all)
        from a beta-binomial sequence on that indicator (alpha / 2; i.i.d. over indices, prior
        centred on the margin), which is tight where the empirical-Bernstein one is slowest: when
        the models rarely disagree."""
        low, high = empirical_bernstein_cs(stream, alpha / 2, (-1.0, 1.0))
        _, bound = beta_binomial_cs(int(differ.sum()), int(differ.size), alpha / 2, threshold_prior(self.threshold))
        return max(low, -bound), min(high, bound)

    def label_cells(self, label: str) -> list[Cell]:
        """The item's cells behind one subgroup label of `differences`."""
        if hasattr(self.inner, "group_outcomes"):
            return [c for c in self.cells() if (subgroup_label(c.subgroup) if c.named else "plain prompt") == label]
        return [c for c in self.cells() if _cell_label(c) == label]

    def changed_samples(self, table: Any, subject: str, cells: Sequence[Cell], count: int) -> list[tuple[str, int, int, float]]:
        """(cell key, sample index, seed, change) of the same-seed samples whose judge score for
        `subject` changed most between the models, the worse way where the item has one
        (sensitivity: dropped; rates: rose), by size otherwise (a gap can widen either way)."""
        column = score_column(subject)
        keys = {c.key for c in cells}
        if column not in table.columns or not keys:
            return []
        part = table[table["cell"].isin(keys) & table["valid"].astype(bool)]
        cols = ["cell", "i", "seed", column]
        merged = part[part["model"] == CANDIDATE][cols].merge(part[part["model"] == RELEASED][cols], on=["cell", "i"], suffixes=("_c", "_r"))
        merged = merged[merged["seed_c"] == merged["seed_r"]]
        change = (merged[f"{column}_c"] - merged[f"{column}_r"]).to_numpy(dtype=float)
        signed = not hasattr(self.inner, "group_outcomes") and self.inner.family in ("validity", "hallucination")
        change = self._sign() * change if signed else np.abs(change)
        order = [j for j in np.argsort(-change, kind="stable")[:count] if change[j] > 0]  # changed, the worse way
        return [(str(merged["cell"].iloc[j]), int(merged["i"].iloc[j]), int(merged["seed_c"].iloc[j]), float(change[j])) for j in order]

    def _aligned(self, cand: Any, rel: Any) -> tuple[list[str], list[np.ndarray], list[np.ndarray]] | None:
        """Items compared group by group (bias): each group's label, the candidate's outcomes
        (samples x cells) and the per-seed differences candidate minus released, on the samples
        both have; None when the item has no such groups or the models' images do not share seeds."""
        outcomes = getattr(self.inner, "group_outcomes", None)
        if outcomes is None:
            return None
        c, r = outcomes(cand), outcomes(rel)
        if c is None or r is None:
            return None
        (labels, oc, sc), (_, orr, sr) = c, r
        n = min(min(len(o) for o in oc), min(len(o) for o in orr))
        if n == 0 or not all(np.array_equal(a[:n], b[:n]) for a, b in zip(sc, sr)):
            return None
        return labels, [o[:n] for o in oc], [a[:n] - b[:n] for a, b in zip(oc, orr)]

    def _group_streams(self, aligned: Any, merged: Any) -> list[tuple[str, np.ndarray]]:
        """(label, per-seed differences as samples x cells, NaN where unusable) per subgroup, or []
        when the two models' images do not pair."""
        if hasattr(self.inner, "group_outcomes"):
            return [] if aligned is None else list(zip(aligned[0], aligned[2]))
        if merged is None:
            return []
        merged = merged.assign(d=merged["value_c"] - merged["value_r"])
        out = []
        for lab, keys in cells_by_label(self.inner.cells(), _cell_label).items():
            part = merged[merged["cell"].isin(keys)]
            if not part.empty:
                out.append((lab, part.pivot_table(index="i", columns="cell", values="d", aggfunc="first").to_numpy(dtype=float)))
        return out if len(out) > 1 else []  # one group: the item's own paired interval says it all

    def _merged(self, cand: Any, rel: Any) -> Any:
        """Both models' per-image values joined on (cell, i), or None when the item has no
        per-image value or the images do not share seeds."""
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
        return merged

    def _paired(self, aligned: Any, merged: Any, alpha: float) -> tuple[float, float, int] | None:
        """The worse-direction difference's confidence sequence on per-seed pairs, or None when the
        item has no per-image value or the two models' images do not share seeds."""
        if hasattr(self.inner, "group_outcomes"):
            return self._paired_contrasts(aligned, alpha)
        if merged is None:
            return None
        diff = self._sign() * (merged["value_c"].to_numpy() - merged["value_r"].to_numpy())
        by_index = merged.assign(d=diff, any=diff != 0).groupby("i", sort=True)
        low, high = self._bounded_cs(by_index["d"].mean().to_numpy(), by_index["any"].any().to_numpy(), alpha)
        return low, high, int(len(merged))

    def _paired_contrasts(self, aligned: Any, alpha: float) -> tuple[float, float, int] | None:
        """A statistic that is the largest |r_a - r_b| over group pairs (gap, deviation, prompt
        effect) changes between the models by at most max |D_a - D_b|, D_g the per-seed difference
        of group g's outcome between candidate and released (triangle inequality); each group pair's
        stream of per-index means of D_a - D_b (in [-2, 2]) gets an empirical-Bernstein sequence
        at alpha / pairs. This bounds the regression from above (what a pass needs); from below
        the unpaired range stays."""
        pairs = self.inner.contrast_pairs()
        if pairs is None or aligned is None:
            return None  # not such a maximum, or the two models' images do not share seeds
        _, outcomes, delta = aligned
        upper = 0.0
        for a, b in pairs:
            low, high = empirical_bernstein_cs(index_stream(delta[a] - delta[b]), alpha / len(pairs), (-2.0, 2.0))
            upper = max(upper, abs(low), abs(high))
        images = int(sum(np.isfinite(o).sum() for o in outcomes))
        return -float("inf"), upper, images

def _cell_label(cell: Cell) -> str:
    label = subgroup_label(cell.subgroup)
    return label if cell.named or not cell.subgroup else f"{label}, plain prompt"


def _unpaired_differences(cand: Any, rel: Any, alpha: float) -> tuple[GroupDifference, ...]:
    """Newcombe's hybrid-score interval for two independent proportions per subgroup (alpha / k)."""
    released = {g.label: g for g in rel}
    both = [(g, released[g.label]) for g in cand if g.label in released and g.n and released[g.label].n]
    out = []
    for a, b in both:
        low, high = newcombe(a.count, a.n, b.count, b.n, alpha / len(both))
        out.append(GroupDifference(a.label, a.value - b.value, low, high, a.n + b.n, False))
    return tuple(out)


__all__ = ["CANDIDATE", "RELEASED", "CompareCheck"]
