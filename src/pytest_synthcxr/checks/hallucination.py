"""Hallucination: how often a probe finding (COVID-19 by default, absent from the training data) is
detected on images whose prompt did not ask for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..cells import Cell
from ..stats import IntervalKind, proportion
from .base import Check, Measured, group_rate, label, positives


@dataclass(frozen=True)
class HallucinationCheck(Check):
    family = "hallucination"
    probe: str = "COVID-19"
    population: tuple[Cell, ...] = ()

    @property
    def quantity(self) -> str:
        return f"{self.probe} detection rate on images not asking for it"

    def cells(self) -> tuple[Cell, ...]:
        return tuple(c for c in self.population if c.finding != self.probe)

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        count, n = positives(table, self.cells(), self.probe)
        by_group: dict[tuple[tuple[str, str], ...], list[Cell]] = {}
        for cell in self.cells():
            by_group.setdefault(cell.subgroup, []).append(cell)
        groups = tuple(group_rate(label(g), *positives(table, cells, self.probe), alpha) for g, cells in by_group.items())
        return Measured(proportion(count, n, alpha, interval, self.threshold), f"{count} of {n} images flagged", groups)
