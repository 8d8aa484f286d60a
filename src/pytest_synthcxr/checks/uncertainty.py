"""Uncertainty: the judge's mean predictive (binary) entropy per finding, in bits (0 certain, 1 coin-flip)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..sampling.cells import Cell
from ..stats.intervals import IntervalKind, binary_entropy, mean_bounded
from ..stats.power import mean_samples
from .base import Check, Measured, rows, sample_frame
from ..sampling.pool import score_column


@dataclass(frozen=True)
class UncertaintyCheck(Check):
    family = "uncertainty"
    finding: str = ""
    population: tuple[Cell, ...] = ()
    #: relative_to_baseline: the bound is the baseline run's estimate + this (report.baseline.resolve_relative)
    baseline_margin: float | None = None

    @property
    def quantity(self) -> str:
        return f"mean judge entropy (bits) for {self.finding}"

    def cells(self) -> tuple[Cell, ...]:
        return self.population

    def power_samples(self, alpha: float, power: float, margin: float) -> int | None:
        return math.ceil(mean_samples(margin, alpha, power) / len(self.population))

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        selected = rows(table, self.population)
        entropy = binary_entropy(selected[score_column(self.finding)].to_numpy())
        estimate = mean_bounded(entropy, alpha / looks, (0.0, 1.0))  # alpha split over planned looks
        share = float((entropy > 0.5).mean()) if entropy.size else 0.0
        return Measured(estimate, f"{share:.1%} of images above 0.5 bits", denominator=int(entropy.size))

    def sample_values(self, table: Any) -> Any:
        """Per valid image, its judge entropy in bits (cell, i, seed, value)."""
        selected = rows(table, self.population)
        return sample_frame(selected, binary_entropy(selected[score_column(self.finding)].to_numpy()))
