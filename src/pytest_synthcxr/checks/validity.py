"""Validity: does the model draw what it was asked? Sensitivity, false-positive rate and AUROC of
the judge on images whose prompt asked for a finding versus images whose prompt did not."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from ..sampling.cells import Cell
from ..stats.intervals import IntervalKind, auroc, proportion
from ..stats.judge_error import corrected_proportion, flagged_center
from ..stats.power import proportion_samples
from .base import ANYTIME_GROWTH, OPERATING_POINT, SPLIT_GROWTH, Check, Measured, rows, sample_frame
from ..sampling.pool import score_column


@dataclass(frozen=True)
class ValidityCheck(Check):
    family = "validity"
    metric: Literal["sensitivity", "fpr", "auroc"] = "sensitivity"
    finding: str = ""
    population: tuple[Cell, ...] = ()  # plain-prompt cells over the subgroup grid, every finding + normal
    #: relative_to_baseline: the bound is the baseline run's estimate - this (sensitivity, AUROC)
    #: or + this (false-positive rate) (report.baseline.resolve_relative)
    baseline_margin: float | None = None

    @property
    def quantity(self) -> str:
        return {
            "sensitivity": f"judge sensitivity on images asked for {self.finding}",
            "fpr": f"false-positive rate on images not asked for {self.finding}",
            "auroc": f"AUROC of asked vs not asked for {self.finding}",
        }[self.metric]

    def cells(self) -> tuple[Cell, ...]:
        return self.population

    def round_growth(self) -> float:
        return SPLIT_GROWTH if self.metric == "auroc" else ANYTIME_GROWTH  # AUROC splits alpha over looks

    def power_samples(self, alpha: float, power: float, margin: float) -> int | None:
        if self.metric == "auroc":
            return None
        # sensitivity pools the cells asked for the finding; the false-positive rate all others
        asked = sum(c.finding == self.finding for c in self.population)
        cells = asked if self.metric == "sensitivity" else len(self.population) - asked
        return math.ceil(proportion_samples(self.threshold, margin, alpha, power) / max(cells, 1))

    def rule_power(self, alpha: float, margin: float, *, sequential: bool, first_round: int) -> float | None:
        if self.metric == "auroc":
            return None
        asked = sum(c.finding == self.finding for c in self.population)
        cells = asked if self.metric == "sensitivity" else len(self.population) - asked
        return self._pooled_rate_power(max(cells, 1), alpha, margin, sequential=sequential, first_round=first_round)

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        selected = rows(table, self.population)
        scores = selected[score_column(self.finding)].to_numpy()
        asked = (selected["finding"] == self.finding).to_numpy()
        pos, neg = scores[asked], scores[~asked]
        if self.metric in ("sensitivity", "fpr"):
            called = pos if self.metric == "sensitivity" else neg
            count, n = int((called > OPERATING_POINT).sum()), int(called.size)
            center = flagged_center(self.threshold, self.judge_accuracy) if self.decide_corrected else self.threshold
            estimate = proportion(count, n, alpha, interval, center)
            corrected = None if self.judge_accuracy is None else corrected_proportion(count, n, self.judge_accuracy, alpha, interval, center)
            detail = f"{n} images {'asked' if self.metric == 'sensitivity' else 'not asking'} for {self.finding}"
            return Measured(estimate, detail, corrected=corrected, denominator=n)
        estimate = auroc(pos, neg, alpha / looks)  # no confidence sequence: alpha split over planned looks
        detail = f"{pos.size} asked vs {neg.size} not asked"
        return Measured(estimate, detail, denominator=min(pos.size, neg.size), denominator_what="images in the smaller class")

    def sample_values(self, table: Any) -> Any:
        """Per valid image, the 0/1 call this rate counts (cell, i, seed, value); AUROC: None."""
        if self.metric == "auroc":
            return None
        selected = rows(table, self.population)
        asked = (selected["finding"] == self.finding).to_numpy()
        part = selected[asked] if self.metric == "sensitivity" else selected[~asked]
        return sample_frame(part, (part[score_column(self.finding)].to_numpy() > OPERATING_POINT).astype(float))
