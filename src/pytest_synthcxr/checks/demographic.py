"""Demographic fidelity: does the image show the sex (or race) its prompt named? Read from an
attribute judge's class probabilities in the score table (columns ``p:sex:female``,
``p:sex:male``; ``p:race:Asian`` ...; e.g. torchxrayvision's sex and race models in a judge
panel): the predicted class is the most probable one, and the estimate is the share of images
whose predicted class is the one the prompt named, with a Wilson (or anytime-valid) interval.
Subgroups whose value the judge has no class for (e.g. Hispanic for a White/Black/Asian race
model) are left out and named in the detail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..cells import Cell, subgroup_label
from ..stats import IntervalKind, proportion
from .base import Check, Measured, group_rate, rows, score_column

ERR_NO_CLASSES = (
    "{check}: the judge has no {attribute} outputs ({prefix}*); add an attribute judge to the panel "
    "(e.g. judge = [\"xrv\", \"xrv-{attribute}\"])"
)


def attribute_classes(table: Any, attribute: str) -> list[str]:
    """The attribute's classes the judge scores (from the score table's columns)."""
    prefix = score_column(f"{attribute}:")
    return [c[len(prefix) :] for c in table.columns if isinstance(c, str) and c.startswith(prefix)]


@dataclass(frozen=True)
class DemographicCheck(Check):
    family = "demographic"
    attribute: Literal["sex", "race"] = "sex"
    population: tuple[Cell, ...] = ()  # cells whose prompt names the subgroup

    @property
    def quantity(self) -> str:
        return f"share of images whose predicted {self.attribute} is the one the prompt named"

    def cells(self) -> tuple[Cell, ...]:
        return self.population

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        classes = attribute_classes(table, self.attribute)
        if not classes:
            raise ValueError(ERR_NO_CLASSES.format(check=self.nodename, attribute=self.attribute, prefix=score_column(f"{self.attribute}:")))
        columns = [score_column(f"{self.attribute}:{c}") for c in classes]
        by_group: dict[tuple[tuple[str, str], ...], list[Cell]] = {}
        for cell in self.population:
            by_group.setdefault(cell.subgroup, []).append(cell)
        total_count = total_n = 0
        groups, skipped = [], []
        for subgroup, cells in by_group.items():
            wanted = dict(subgroup).get(self.attribute)
            if wanted not in classes:
                skipped.append(subgroup_label(subgroup))
                continue
            selected = rows(table, cells)
            scores = selected[columns].to_numpy(dtype=float)
            predicted = np.array(classes)[scores.argmax(axis=1)] if len(scores) else np.array([], dtype=str)
            count, n = int((predicted == wanted).sum()), int(len(predicted))
            total_count, total_n = total_count + count, total_n + n
            groups.append(group_rate(subgroup_label(subgroup), count, n, alpha))
        if total_n == 0:
            raise ValueError(f"{self.nodename}: no subgroup's {self.attribute} is among the judge's classes {classes}")
        estimate = proportion(total_count, total_n, alpha, interval, self.threshold)
        detail = f"{total_count} of {total_n} images"
        if skipped:
            detail += f"; left out (no such class in the judge): {', '.join(sorted(set(skipped)))}"
        return Measured(estimate, detail, tuple(groups))


__all__ = ["DemographicCheck", "attribute_classes"]
