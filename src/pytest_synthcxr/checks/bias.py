"""Bias: TPR and selection rate per subgroup, and their gap, ratio, deviation or prompt effect.

Named prompts (sex and race written into the prompt): every subgroup's cell uses the same seeds
(paired cells), so the subgroup differences are estimated seed by seed (stats.paired_groups);
where the images do not share seeds (a folder manifest made otherwise) the unpaired statistics
decide, and the item's detail says which did. Plain prompts are one text for everyone: their
images are grouped by the subgroup an attribute judge perceives (its classes; a value it has no
class for, such as Hispanic for torchxrayvision's race model, is named as not judgeable). The
prompt effect compares each subgroup's named prompt with the plain prompt on the same seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from ..sampling.cells import Cell, subgroup_label
from ..sampling.pool import score_column
from ..stats.intervals import Estimate, IntervalKind, gap, intersect, largest_difference, ratio
from ..stats.judge_error import corrected_difference
from ..stats.paired_groups import discordance, paired_gap, paired_largest_difference, paired_relative_deviation
from ..stats.power import difference_samples
from ..stats.relative import largest_relative_deviation
from .base import ANYTIME_GROWTH, OPERATING_POINT, Check, Measured, cell_rows, group_rate, label, positives, rows
from .demographic import attribute_classes

Metric = Literal["tpr", "sr"]
Statistic = Literal["gap", "ratio", "deviation", "prompt-effect"]
#: a deviation as a difference of rates, or relative to the reference rate (r_g / r_ref - 1)
Scale = Literal["absolute", "relative"]
SMALLEST = "valid images in the smallest subgroup"
#: how the statistic was decided, said in every item's detail
PAIRED = "paired: {n} same-seed samples per subgroup, discordance {d:.3f}"
UNPAIRED = "unpaired: the subgroups' images do not share seeds"
UNPAIRED_RATIO = "unpaired: a ratio is decided on the subgroups' own intervals"
PERCEIVED = "plain prompts, subgroups as perceived by the attribute judge (unpaired: different images)"
ERR_NO_ATTRIBUTE = (
    "{check}: plain-prompt bias items group images by what an attribute judge sees, but the judge "
    "has no {attribute} outputs ({prefix}*); add one (e.g. judge = [\"xrv\", \"xrv-{attribute}\"]; "
    "phantom: \"phantom-attributes\", which reads sex only), or set prompt = [\"named\"]"
)


@dataclass(frozen=True)
class BiasCheck(Check):
    family = "bias"
    metric: Metric = "tpr"
    statistic: Statistic = "gap"
    finding: str = ""
    subgroups: tuple[tuple[tuple[str, str], ...], ...] = ()
    reference: tuple[tuple[str, str], ...] = ()
    named: bool = False
    all_findings: tuple[str, ...] = ()
    #: relative_to_baseline: the bound is the baseline run's estimate + this (ratio: - this),
    #: resolved when the audit starts (report.baseline.resolve_relative)
    baseline_margin: float | None = None
    #: deviation only: "relative" decides on max |r_g / r_ref - 1| (the published "26% deviation")
    scale: Scale = "absolute"
    #: perceived subgroups: the attribute judge's own accuracy per attribute, as its weights file
    #: records it (set by the session once the judge is loaded; shown beside the rates)
    attribute_accuracy: tuple[tuple[str, float], ...] = ()

    @property
    def quantity(self) -> str:
        what = {"tpr": "TPR", "sr": "selection rate"}[self.metric]
        how = {
            "gap": "gap (max-min)",
            "ratio": "ratio (min/max)",
            "deviation": "largest relative deviation (r/r_ref - 1) from reference" if self.scale == "relative" else "largest deviation from reference",
            "prompt-effect": "largest prompt-demographics effect",
        }[self.statistic]
        by = "*".join(k for k, _ in self.subgroups[0]) if self.subgroups else "all"
        # plain prompts are the same text for every subgroup: their images are grouped by the
        # subgroup an attribute judge perceives in them (issue 17)
        mode = "" if self.statistic == "prompt-effect" else (", demographics named in prompt" if self.named else ", plain prompts, perceived subgroups")
        relative = ""
        if self.baseline_margin is not None:
            sign = "-" if self.direction == "min" else "+"
            base = self.threshold + self.baseline_margin if self.direction == "min" else self.threshold - self.baseline_margin
            relative = f" (bound: baseline {round(base, 6):.3f} {sign} {self.baseline_margin:g})"
        return f"{what} {how} across {by} for {self.finding}{mode}{relative}"

    @property
    def perceived(self) -> bool:
        """Plain prompts: images are grouped by what an attribute judge sees in them."""
        return not self.named and self.statistic != "prompt-effect"

    def attributes_needed(self) -> tuple[str, ...]:
        """Attribute outputs the judge panel must score (perceived subgroups)."""
        return tuple(k for k, _ in self.subgroups[0]) if self.perceived and self.subgroups else ()

    def _cells_of(self, subgroup: tuple[tuple[str, str], ...], named: bool) -> tuple[Cell, ...]:
        # paired cells: sample i of every subgroup (and of the plain prompt) shares one seed; plain
        # prompts name no subgroup, so there is one plain cell per finding, whoever it shows
        group = subgroup if named else ()
        if self.metric == "tpr":
            return (Cell(self.finding, group, named, paired=True),)
        # selection rate: every image of the subgroup, whatever its prompt asked for
        return tuple(Cell(f, group, named, paired=True) for f in (*self.all_findings, None))

    def cells(self) -> tuple[Cell, ...]:
        if self.statistic == "prompt-effect":
            cells = [c for g in self.subgroups for c in self._cells_of(g, True)] + list(self._cells_of((), False))
        else:
            cells = [c for g in self.subgroups for c in self._cells_of(g, self.named)]
        return tuple(dict.fromkeys(cells))

    def round_growth(self) -> float:
        return ANYTIME_GROWTH  # confidence sequences decide every statistic

    def power_samples(self, alpha: float, power: float, margin: float) -> int | None:
        """Per subgroup, a two-rate difference exceeding its bound by `margin`, at the alpha each
        subgroup's interval gets (alpha / k); ratios have no power calculation here. (Unpaired:
        pairing needs fewer, by how much depends on the discordance, unknown before the run.)"""
        if self.statistic == "ratio" or self.scale == "relative":
            return None
        k = len(self.subgroups) * (2 if self.statistic == "prompt-effect" else 1)
        per_group = difference_samples(margin, alpha / max(k, 1), power)
        return math.ceil(per_group / len(self._cells_of(self.subgroups[0], self.named)))

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        """The statistic at level 1 - alpha and, where the spec gives the judge's accuracy, its
        judge-error corrected size (differences only: ratios are left uncorrected)."""
        raw = self._measure_raw(table, alpha, interval)
        if self.judge_accuracy is None or self.statistic == "ratio" or self.scale == "relative":
            return raw  # the judge-error correction is for differences of rates
        third = self._measure_raw(table, alpha / 3, interval).estimate
        return replace(raw, corrected=corrected_difference(third, self.judge_accuracy, alpha))

    # -- outcomes --------------------------------------------------------------------------------

    def _outcomes(self, table: Any, subgroup: tuple[tuple[str, str], ...], named: bool) -> tuple[np.ndarray, np.ndarray, bool]:
        """(outcomes, seeds, seeded) of one subgroup's cells as (sample index, cell) arrays:
        1.0 / 0.0 for a judge call above / below the operating point, NaN for an invalid image."""
        parts = [cell_rows(table, c) for c in self._cells_of(subgroup, named)]
        n = min((len(p) for p in parts), default=0)
        parts = [p.iloc[:n] for p in parts]
        column = score_column(self.finding)
        outcome = np.column_stack([np.where(p["valid"].to_numpy(), (p[column].to_numpy(dtype=float) > OPERATING_POINT).astype(float), np.nan) for p in parts]) if parts else np.empty((0, 1))
        if parts and all("seed" in p.columns for p in parts):
            seeds = np.column_stack([p["seed"].to_numpy() for p in parts])
            seeded = bool(all(p["seeded"].to_numpy().all() for p in parts if "seeded" in p.columns))
        else:  # a table without seeds (made by hand, or elsewhere) cannot pair
            seeds, seeded = np.empty((0, len(parts)), dtype=np.int64), False
        return outcome, seeds, seeded

    def _paired_arrays(self, table: Any, groups: list[tuple[tuple[tuple[str, str], ...], bool]]) -> tuple[list[np.ndarray], bool]:
        """Each (subgroup, named)'s outcomes, and whether they pair: the same seed at every aligned
        position, each image made with its own seed (a folder manifest may not be)."""
        got = [self._outcomes(table, g, named) for g, named in groups]
        size = min(len(o) for o, _, _ in got)
        outcomes = [o[:size] for o, _, _ in got]
        first = got[0][1][:size]
        paired = size > 0 and all(s and np.array_equal(seeds[:size], first) for _, seeds, s in got)
        return outcomes, paired

    def _compared_groups(self) -> list[tuple[tuple[tuple[str, str], ...], bool]]:
        """(subgroup, named) of each group the statistic compares: the subgroups, and for a prompt
        effect the plain prompt last."""
        named = [(g, True) for g in self.subgroups]
        return [*named, ((), False)] if self.statistic == "prompt-effect" else named

    def group_outcomes(self, table: Any) -> tuple[list[str], list[np.ndarray], list[np.ndarray]] | None:
        """Each compared group's label, outcomes (samples x cells) and seeds, for comparing two
        models group by group on the same seeds; None for perceived groups (different images) or
        images without known seeds."""
        if self.perceived:
            return None
        groups = self._compared_groups()
        got = [self._outcomes(table, g, named) for g, named in groups]
        if not all(seeded for _, _, seeded in got):
            return None
        labels = [subgroup_label(g) if named else "plain prompt" for g, named in groups]
        return labels, [o for o, _, _ in got], [seeds for _, seeds, _ in got]

    def contrast_pairs(self) -> list[tuple[int, int]] | None:
        """For comparing two models on the same seeds: the (a, b) pairs of `group_outcomes` groups
        whose rate differences the statistic takes the largest absolute value of (gap: every pair;
        deviation: each against the reference; prompt effect: each named against the plain prompt).
        None where the statistic is not such a maximum (ratio, relative deviation)."""
        if self.statistic == "ratio" or self.scale == "relative":
            return None
        k = len(self.subgroups)
        if self.statistic == "prompt-effect":
            return [(j, k) for j in range(k)]
        if self.statistic == "gap":
            return [(a, b) for a in range(k) for b in range(a + 1, k)]
        ref = self.subgroups.index(self.reference) if self.reference in self.subgroups else 0
        return [(j, ref) for j in range(k) if j != ref]

    def _measure_raw(self, table: Any, alpha: float, interval: IntervalKind) -> Measured:
        if self.perceived:
            return self._perceived(table, alpha, interval)
        core = self._prompt_effect if self.statistic == "prompt-effect" else self._named
        if interval == "fixed":
            return core(table, alpha, interval)
        # anytime: the paired confidence sequence (empirical Bernstein) is loose for its first few
        # dozen pairs, where the unpaired beta-binomial one is tight; both at alpha / 2 hold
        # together with probability >= 1 - alpha, so their intersection does too, and it is the
        # narrower of the two wherever either is narrow
        paired = core(table, alpha / 2, interval)
        if not (paired.stats or {}).get("paired"):
            return core(table, alpha, interval)
        unpaired = core(table, alpha / 2, interval, unpaired=True).estimate
        e = paired.estimate
        low, high = intersect((e.low, e.high), (unpaired.low, unpaired.high))
        detail = paired.detail + "; interval: paired and unpaired confidence sequences (alpha/2 each) intersected"
        return replace(paired, estimate=replace(e, low=low, high=high), detail=detail)

    def _named(self, table: Any, alpha: float, interval: IntervalKind, unpaired: bool = False) -> Measured:
        outcomes, paired = ([], False) if unpaired else self._paired_arrays(table, [(g, True) for g in self.subgroups])
        if not paired:
            counts = [positives(table, self._cells_of(g, True), self.finding) for g in self.subgroups]
            return self._unpaired(counts, [label(g) for g in self.subgroups], alpha, interval, UNPAIRED)
        counts = [(int(np.nansum(o)), int(np.isfinite(o).sum())) for o in outcomes]
        groups = tuple(group_rate(label(g), c, n, alpha) for g, (c, n) in zip(self.subgroups, counts))
        smallest = min(n for _, n in counts)
        ref_index = self.subgroups.index(self.reference) if self.reference in self.subgroups else 0
        if self.statistic == "gap":
            estimate = paired_gap(outcomes, alpha, interval)
            pairs = [(outcomes[a], outcomes[b]) for a in range(len(outcomes)) for b in range(a + 1, len(outcomes))]
            low_g, high_g = min(groups, key=lambda g: g.value), max(groups, key=lambda g: g.value)
            detail = f"lowest {low_g.label} {low_g.value:.3f}, highest {high_g.label} {high_g.value:.3f}"
        elif self.statistic == "ratio":  # a ratio has no paired interval here: the unpaired box decides
            return self._unpaired(counts, [g.label for g in groups], alpha, interval, UNPAIRED_RATIO)
        elif self.scale == "relative":
            estimate, worst = paired_relative_deviation(outcomes, ref_index, alpha, interval)
            pairs = [(outcomes[worst], outcomes[ref_index])]
            w, r = groups[worst], groups[ref_index]
            detail = f"largest: {w.label} {w.value:.3f} vs reference {r.label} {r.value:.3f}" + (f" ({w.value / r.value - 1:+.1%})" if r.value else "")
        else:
            others = [i for i in range(len(outcomes)) if i != ref_index]
            pairs = [(outcomes[i], outcomes[ref_index]) for i in others]
            estimate, worst = paired_largest_difference(pairs, alpha, interval)
            w, r = groups[others[worst]], groups[ref_index]
            detail = f"largest: {w.label} {w.value:.3f} vs reference {r.label} {r.value:.3f}"
        rate = float(np.nanmean([discordance(a, b) for a, b in pairs]))
        detail += f"; {PAIRED.format(n=len(outcomes[0]), d=rate)}"
        estimate = replace(estimate, n=sum(n for _, n in counts))  # distinct images, each counted once
        return Measured(estimate, detail, groups, denominator=smallest, denominator_what=SMALLEST, stats={"paired": 1.0, "discordance": rate})

    def _unpaired(self, counts: list[tuple[int, int]], labels: list[str], alpha: float, interval: IntervalKind, how: str) -> Measured:
        """Today's unpaired statistics from per-subgroup counts (Bonferroni box or Newcombe pairs)."""
        groups = tuple(group_rate(name, c, n, alpha) for name, (c, n) in zip(labels, counts))
        smallest = min(n for _, n in counts)
        cs, ns = [c for c, _ in counts], [n for _, n in counts]
        if self.statistic in ("gap", "ratio"):
            estimate = (gap if self.statistic == "gap" else ratio)(cs, ns, alpha, interval)
            low_g, high_g = min(groups, key=lambda g: g.value), max(groups, key=lambda g: g.value)
            detail = f"lowest {low_g.label} {low_g.value:.3f}, highest {high_g.label} {high_g.value:.3f}"
        else:
            ref_index = labels.index(self._reference_label) if self._reference_label in labels else 0
            if self.scale == "relative":
                estimate, worst = largest_relative_deviation(cs, ns, ref_index, alpha, interval)
                w, r = groups[worst], groups[ref_index]
                detail = f"largest: {w.label} {w.value:.3f} vs reference {r.label} {r.value:.3f}" + (f" ({w.value / r.value - 1:+.1%})" if r.value else "")
            else:
                rc, rn = counts[ref_index]
                others = [i for i in range(len(counts)) if i != ref_index]
                estimate, worst = largest_difference([(counts[i][0], counts[i][1], rc, rn) for i in others], alpha, interval)
                estimate = replace(estimate, n=sum(ns))  # distinct images: the reference once, not once per comparison
                w, r = groups[others[worst]], groups[ref_index]
                detail = f"largest: {w.label} {w.value:.3f} vs reference {r.label} {r.value:.3f}"
        return Measured(estimate, f"{detail}; {how}", groups, denominator=smallest, denominator_what=SMALLEST, stats={"paired": 0.0})

    @property
    def _reference_label(self) -> str:
        return label(self.reference)

    def _perceived(self, table: Any, alpha: float, interval: IntervalKind) -> Measured:
        """Plain prompts: each image's subgroup is the attribute judge's most probable class."""
        selected = rows(table, self._cells_of((), False))
        keys = [k for k, _ in self.subgroups[0]]
        perceived = []
        for key in keys:
            classes = attribute_classes(table, key)
            if not classes:
                raise ValueError(ERR_NO_ATTRIBUTE.format(check=self.nodename, attribute=key, prefix=score_column(f"{key}:")))
            scores = selected[[score_column(f"{key}:{c}") for c in classes]].to_numpy(dtype=float)
            perceived.append((key, classes, np.array(classes, dtype=object)[scores.argmax(axis=1)] if len(scores) else np.array([], dtype=object)))
        judgeable = [g for g in self.subgroups if all(dict(g)[k] in classes for k, classes, _ in perceived)]
        unjudgeable = [label(g) for g in self.subgroups if g not in judgeable]
        if len(judgeable) < 2 or (self.statistic == "deviation" and self.reference not in judgeable):
            raise ValueError(
                f"{self.nodename}: the attribute judge tells too few of these subgroups apart "
                f"(not judgeable: {', '.join(unjudgeable) or 'none'}; the reference must be judgeable); "
                "use by = [\"sex\"], or a judge whose classes cover them"
            )
        flagged = selected[score_column(self.finding)].to_numpy(dtype=float) > OPERATING_POINT
        counts = []
        for g in judgeable:
            mask = np.ones(len(selected), dtype=bool)
            for k, _, predicted in perceived:
                mask &= predicted == dict(g)[k]
            counts.append((int(flagged[mask].sum()), int(mask.sum())))
        if min(n for _, n in counts) == 0:
            empty = [label(g) for g, (_, n) in zip(judgeable, counts) if n == 0]
            estimate = Estimate(math.nan, 0.0, math.inf if self.direction == "max" else 1.0, int(len(selected)))
            groups = tuple(group_rate(f"{label(g)} (perceived)", c, n, alpha) for g, (c, n) in zip(judgeable, counts))
            return Measured(estimate, f"no image perceived as {', '.join(empty)} yet", groups, denominator=0, denominator_what=SMALLEST)
        how = PERCEIVED
        known = dict(self.attribute_accuracy)
        shown = [f"{k} {known[k]:.3f}" for k in keys if k in known]
        how += f"; attribute judge accuracy (its validation set): {', '.join(shown)}" if shown else (
            "; the attribute judge's own accuracy is not recorded in its weights: measure it on a labelled reference set"
        )
        if unjudgeable:
            how += f"; not judgeable (the judge has no such class, left out): {', '.join(unjudgeable)}"
        return self._unpaired(counts, [f"{label(g)} (perceived)" for g in judgeable], alpha, interval, how)

    def _prompt_effect(self, table: Any, alpha: float, interval: IntervalKind, unpaired: bool = False) -> Measured:
        """Per subgroup, its named prompt against the plain prompt (the same for everyone)."""
        groups_in = [*((g, True) for g in self.subgroups), ((), False)]
        outcomes, paired = ([], False) if unpaired else self._paired_arrays(table, groups_in)
        if paired:  # counts of the aligned pairs; the last group is the plain prompt
            counts = [(int(np.nansum(o)), int(np.isfinite(o).sum())) for o in outcomes]
            plain = outcomes[-1]
            estimate, worst = paired_largest_difference([(o, plain) for o in outcomes[:-1]], alpha, interval)
            rate = float(np.nanmean([discordance(o, plain) for o in outcomes[:-1]]))
            how, stats = PAIRED.format(n=len(plain), d=rate), {"paired": 1.0, "discordance": rate}
        else:
            counts = [positives(table, self._cells_of(g, named), self.finding) for g, named in groups_in]
            (cp, np_) = counts[-1]
            estimate, worst = largest_difference([(c, n, cp, np_) for c, n in counts[:-1]], alpha, interval)
            how, stats = UNPAIRED, {"paired": 0.0}
        groups = [group_rate(f"{label(g)} (named)", c, n, alpha) for g, (c, n) in zip(self.subgroups, counts)]
        groups.append(group_rate("plain prompt (all)", *counts[-1], alpha))
        w = groups[worst]
        detail = f"largest: {label(self.subgroups[worst])} named {w.value:.3f} vs plain {groups[-1].value:.3f}; {how}"
        smallest = min(g.n for g in groups)
        estimate = replace(estimate, n=sum(g.n for g in groups))  # distinct images: the plain ones once
        return Measured(estimate, detail, tuple(groups), denominator=smallest, denominator_what=SMALLEST, stats=stats)


__all__ = ["BiasCheck"]
