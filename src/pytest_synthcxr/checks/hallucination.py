"""Hallucination: how often a probe finding (COVID-19 by default, absent from the training data) is
detected on images whose prompt did not ask for it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..sampling.cells import Cell
from ..stats.intervals import IntervalKind, proportion
from ..stats.judge_error import corrected_proportion, flagged_center
from ..stats.power import proportion_samples
from ..sampling.pool import score_column
from .base import ANYTIME_GROWTH, OPERATING_POINT, Check, Measured, group_rate, label, positives, rows, sample_frame


@dataclass(frozen=True)
class HallucinationCheck(Check):
    family = "hallucination"
    probe: str = "COVID-19"
    population: tuple[Cell, ...] = ()
    #: relative_to_baseline: the bound is the baseline run's estimate + this (report.baseline.resolve_relative)
    baseline_margin: float | None = None

    @property
    def quantity(self) -> str:
        return f"{self.probe} detection rate on images not asking for it"

    def cells(self) -> tuple[Cell, ...]:
        return tuple(c for c in self.population if c.finding != self.probe)

    def round_growth(self) -> float:
        return ANYTIME_GROWTH  # a confidence sequence decides

    def power_samples(self, alpha: float, power: float, margin: float) -> int | None:
        # the rate pools every cell's images
        return math.ceil(proportion_samples(self.threshold, margin, alpha, power) / len(self.cells()))

    def rule_power(self, alpha: float, margin: float, *, sequential: bool, first_round: int) -> float | None:
        return self._pooled_rate_power(len(self.cells()), alpha, margin, sequential=sequential, first_round=first_round)

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        count, n = positives(table, self.cells(), self.probe)
        by_group: dict[tuple[tuple[str, str], ...], list[Cell]] = {}
        for cell in self.cells():
            by_group.setdefault(cell.subgroup, []).append(cell)
        groups = tuple(group_rate(label(g), *positives(table, cells, self.probe), alpha) for g, cells in by_group.items())
        center = flagged_center(self.threshold, self.judge_accuracy) if self.decide_corrected else self.threshold
        raw = proportion(count, n, alpha, interval, center)
        corrected = None if self.judge_accuracy is None else corrected_proportion(count, n, self.judge_accuracy, alpha, interval, center)
        return Measured(raw, f"{count} of {n} images flagged", groups, corrected=corrected, denominator=n)

    def sample_values(self, table: Any) -> Any:
        """Per valid image not asking for the probe, 1 when the judge flags it (cell, i, seed, value)."""
        selected = rows(table, self.cells())
        return sample_frame(selected, (selected[score_column(self.probe)].to_numpy() > OPERATING_POINT).astype(float))
