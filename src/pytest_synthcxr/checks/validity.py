"""Validity: does the model draw what it was asked? Sensitivity, false-positive rate and AUROC of
the judge on images whose prompt asked for a finding versus images whose prompt did not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..cells import Cell
from ..stats import auroc, proportion
from .base import Check, Result, rows, score_column, OPERATING_POINT


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

    def evaluate(self, table: Any, confidence: float) -> Result:
        alpha = 1 - confidence
        selected = rows(table, self.population)
        scores = selected[score_column(self.finding)].to_numpy()
        asked = (selected["finding"] == self.finding).to_numpy()
        pos, neg = scores[asked], scores[~asked]
        if self.metric == "sensitivity":
            estimate = proportion(int((pos > OPERATING_POINT).sum()), int(pos.size), alpha)
            detail = f"{estimate.n} images asked for {self.finding}"
        elif self.metric == "fpr":
            estimate = proportion(int((neg > OPERATING_POINT).sum()), int(neg.size), alpha)
            detail = f"{estimate.n} images not asking for {self.finding}"
        else:
            estimate = auroc(pos, neg, alpha)
            detail = f"{pos.size} asked vs {neg.size} not asked"
        return self._result(estimate, confidence, detail)
