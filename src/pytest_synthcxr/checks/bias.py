"""Bias: TPR and selection rate per subgroup, and their gap, ratio, deviation or prompt effect."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..sampling.cells import Cell
from ..stats.intervals import IntervalKind, gap, largest_difference, ratio
from ..stats.judge_error import corrected_difference
from ..stats.power import difference_samples
from ..stats.relative import largest_relative_deviation
from .base import ANYTIME_GROWTH, Check, Measured, group_rate, label, positives

Metric = Literal["tpr", "sr"]
Statistic = Literal["gap", "ratio", "deviation", "prompt-effect"]
#: a deviation as a difference of rates, or relative to the reference rate (r_g / r_ref - 1)
Scale = Literal["absolute", "relative"]
SMALLEST = "valid images in the smallest subgroup"
PLAIN_CONTROL = (
    ", plain prompts: a seed-noise control (the prompt is the same for every subgroup, "
    "so its 'subgroups' differ only in seed, not in demographics)"
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
        # plain prompts are the same text for every subgroup: their cells differ only in seed, so
        # such an item measures seed noise, not bias (issue 17): say so wherever it is shown
        mode = "" if self.statistic == "prompt-effect" else (", demographics named in prompt" if self.named else PLAIN_CONTROL)
        relative = ""
        if self.baseline_margin is not None:
            sign = "-" if self.direction == "min" else "+"
            base = self.threshold + self.baseline_margin if self.direction == "min" else self.threshold - self.baseline_margin
            relative = f" (bound: baseline {round(base, 6):.3f} {sign} {self.baseline_margin:g})"
        return f"{what} {how} across {by} for {self.finding}{mode}{relative}"

    def _cells_of(self, subgroup: tuple[tuple[str, str], ...], named: bool) -> tuple[Cell, ...]:
        if self.metric == "tpr":
            return (Cell(self.finding, subgroup, named),)
        # selection rate: every image of the subgroup, whatever its prompt asked for
        return tuple(Cell(f, subgroup, named) for f in (*self.all_findings, None))

    def cells(self) -> tuple[Cell, ...]:
        modes = (False, True) if self.statistic == "prompt-effect" else (self.named,)
        return tuple(c for named in modes for g in self.subgroups for c in self._cells_of(g, named))

    def round_growth(self) -> float:
        return ANYTIME_GROWTH  # confidence sequences decide every statistic

    def power_samples(self, alpha: float, power: float, margin: float) -> int | None:
        """Per subgroup, a two-rate difference exceeding its bound by `margin`, at the alpha each
        subgroup's interval gets (alpha / k); ratios have no power calculation here."""
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

    def _measure_raw(self, table: Any, alpha: float, interval: IntervalKind) -> Measured:
        if self.statistic == "prompt-effect":
            return self._prompt_effect(table, alpha, interval)
        counts = [positives(table, self._cells_of(g, self.named), self.finding) for g in self.subgroups]
        groups = tuple(group_rate(label(g), c, n, alpha) for g, (c, n) in zip(self.subgroups, counts))
        if self.statistic in ("gap", "ratio"):
            how = gap if self.statistic == "gap" else ratio
            estimate = how([c for c, _ in counts], [n for _, n in counts], alpha, interval)
            low_g = min(groups, key=lambda g: g.value)
            high_g = max(groups, key=lambda g: g.value)
            detail = f"lowest {low_g.label} {low_g.value:.3f}, highest {high_g.label} {high_g.value:.3f}"
            return Measured(estimate, detail, groups, denominator=min(n for _, n in counts), denominator_what=SMALLEST)
        # deviation from the reference subgroup
        ref_index = self.subgroups.index(self.reference)
        if self.scale == "relative":
            estimate, worst = largest_relative_deviation([c for c, _ in counts], [n for _, n in counts], ref_index, alpha, interval)
            w, r = groups[worst], groups[ref_index]
            detail = f"largest: {w.label} {w.value:.3f} vs reference {r.label} {r.value:.3f} ({w.value / r.value - 1:+.1%})" if r.value else f"largest: {w.label} {w.value:.3f} vs reference {r.label} 0"
            return Measured(estimate, detail, groups, denominator=min(n for _, n in counts), denominator_what=SMALLEST)
        rc, rn = counts[ref_index]
        others = [i for i in range(len(self.subgroups)) if i != ref_index]
        estimate, worst = largest_difference([(counts[i][0], counts[i][1], rc, rn) for i in others], alpha, interval)
        estimate = replace(estimate, n=sum(n for _, n in counts))  # distinct images: the reference once, not once per comparison
        w, r = groups[others[worst]], groups[ref_index]
        detail = f"largest: {w.label} {w.value:.3f} vs reference {r.label} {r.value:.3f}"
        return Measured(estimate, detail, groups, denominator=min(n for _, n in counts), denominator_what=SMALLEST)

    def _prompt_effect(self, table: Any, alpha: float, interval: IntervalKind) -> Measured:
        pairs, groups = [], []
        for g in self.subgroups:
            cn, nn = positives(table, self._cells_of(g, True), self.finding)
            cp, np_ = positives(table, self._cells_of(g, False), self.finding)
            pairs.append((cn, nn, cp, np_))
            groups += [group_rate(f"{label(g)} (named)", cn, nn, alpha), group_rate(f"{label(g)} (plain)", cp, np_, alpha)]
        estimate, worst = largest_difference(pairs, alpha, interval)
        cn, nn, cp, np_ = pairs[worst]
        detail = f"largest: {label(self.subgroups[worst])} named {cn / nn:.3f} vs plain {cp / np_:.3f}"
        smallest = min(min(p[1], p[3]) for p in pairs)
        return Measured(estimate, detail, tuple(groups), denominator=smallest, denominator_what=SMALLEST)


__all__ = ["BiasCheck"]
