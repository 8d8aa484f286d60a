"""Validity: does the model draw what it was asked? Sensitivity, false-positive rate and AUROC of
the judge on images whose prompt asked for a finding versus images whose prompt did not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..cells import Cell
from ..stats import IntervalKind, auroc, proportion
from .base import OPERATING_POINT, Check, Measured, rows, score_column


@dataclass(frozen=True)
class ValidityCheck(Check):
    family = "validity"
    metric: Literal["sensitivity", "fpr", "auroc"] = "sensitivity"
    finding: str = ""
    population: tuple[Cell, ...] = ()  # plain-prompt cells over the subgroup grid, every finding + normal

    @property
    def quantity(self) -> str:
        return {
            "sensitivity": f"judge sensitivity on images asked for {self.finding}",
            "fpr": f"false-positive rate on images not asked for {self.finding}",
            "auroc": f"AUROC of asked vs not asked for {self.finding}",
        }[self.metric]

    def cells(self) -> tuple[Cell, ...]:
        return self.population

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        selected = rows(table, self.population)
        scores = selected[score_column(self.finding)].to_numpy()
        asked = (selected["finding"] == self.finding).to_numpy()
        pos, neg = scores[asked], scores[~asked]
        if self.metric == "sensitivity":
            estimate = proportion(int((pos > OPERATING_POINT).sum()), int(pos.size), alpha, interval, self.threshold)
            detail = f"{estimate.n} images asked for {self.finding}"
        elif self.metric == "fpr":
            estimate = proportion(int((neg > OPERATING_POINT).sum()), int(neg.size), alpha, interval, self.threshold)
            detail = f"{estimate.n} images not asking for {self.finding}"
        else:
            estimate = auroc(pos, neg, alpha / looks)  # no confidence sequence: alpha split over planned looks
            detail = f"{pos.size} asked vs {neg.size} not asked"
        return Measured(estimate, detail)
