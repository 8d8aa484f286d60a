"""Demographic fidelity: does the image show the sex, race (or age) its prompt named? Read from an
attribute judge's class probabilities in the score table (columns ``p:sex:female``,
``p:sex:male``; ``p:race:Asian`` ...; e.g. torchxrayvision's sex and race models in a judge
panel): the predicted class is the most probable one, and the estimate is the share of images
whose predicted class is the one the prompt named, with a Wilson (or anytime-valid) interval.
Subgroups whose value the judge has no class for (e.g. Hispanic for a White/Black/Asian race
model) are left out and named in the detail.

Age is read from a regression output in years (column ``p:age``, e.g. torchxrayvision's riken age
model as ``xrv-age``): an image agrees when its predicted age is within ``tolerance`` years of the
age its prompt asked for (RoentGen-v2 rejects its own images beyond 16 years). The detail adds
the mean absolute error and the mean signed error (predicted minus asked: a generator that draws
everyone too old or too young shows here)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..sampling.cells import Cell, subgroup_label
from ..stats.intervals import IntervalKind, proportion
from ..stats.power import proportion_samples
from .base import ANYTIME_GROWTH, Check, Measured, group_rate, rows
from ..sampling.pool import score_column

ERR_NO_CLASSES = (
    "{check}: the judge has no {attribute} outputs ({prefix}*); add an attribute judge to the panel "
    "(e.g. judge = [\"xrv\", \"xrv-{attribute}\"])"
)
ERR_NO_AGE = (
    "{check}: the judge has no age output ({column}); add an age judge to the panel "
    "(e.g. judge = [\"xrv\", \"xrv-age\"])"
)
#: years a predicted age may be off and still agree (RoentGen-v2's own filter)
DEFAULT_AGE_TOLERANCE = 16.0


def age_agreement(error: np.ndarray, tolerance: float) -> tuple[int, int, float | None, float | None]:
    """Of predicted minus wanted ages: (how many lie within `tolerance`, how many there are, mean
    absolute error, mean signed error). NaN (no prediction) never agrees and is left out of the
    means, which are None when nothing was predicted."""
    finite = error[np.isfinite(error)]
    count = int((np.abs(error) <= tolerance).sum())
    if not finite.size:
        return count, int(len(error)), None, None
    return count, int(len(error)), float(np.abs(finite).mean()), float(finite.mean())


def attribute_classes(table: Any, attribute: str) -> list[str]:
    """The attribute's classes the judge scores (from the score table's columns)."""
    prefix = score_column(f"{attribute}:")
    return [c[len(prefix) :] for c in table.columns if isinstance(c, str) and c.startswith(prefix)]


@dataclass(frozen=True)
class DemographicCheck(Check):
    family = "demographic"
    attribute: Literal["sex", "race", "age"] = "sex"
    population: tuple[Cell, ...] = ()  # cells whose prompt names the subgroup
    #: age only: largest |predicted - asked| in years that agrees
    tolerance: float | None = None

    @property
    def age_tolerance(self) -> float:
        return DEFAULT_AGE_TOLERANCE if self.tolerance is None else self.tolerance

    @property
    def quantity(self) -> str:
        if self.attribute == "age":
            return f"share of images whose predicted age is within {self.age_tolerance:g} years of the age the prompt named"
        return f"share of images whose predicted {self.attribute} is the one the prompt named"

    def cells(self) -> tuple[Cell, ...]:
        return self.population

    def attributes_needed(self) -> tuple[str, ...]:
        return (self.attribute,)

    def round_growth(self) -> float:
        return ANYTIME_GROWTH  # a confidence sequence decides

    def power_samples(self, alpha: float, power: float, margin: float) -> int | None:
        # the share pools every cell's images
        return math.ceil(proportion_samples(self.threshold, margin, alpha, power) / max(len(self.cells()), 1))

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        if self.attribute == "age":
            return self._measure_age(table, alpha, interval)
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
        return Measured(estimate, detail, tuple(groups), denominator=total_n)

    def _measure_age(self, table: Any, alpha: float, interval: IntervalKind) -> Measured:
        column = score_column("age")
        if column not in table.columns:
            raise ValueError(ERR_NO_AGE.format(check=self.nodename, column=column))
        tolerance = self.age_tolerance
        by_group: dict[tuple[tuple[str, str], ...], list[Cell]] = {}
        for cell in self.population:
            if "age" not in cell.attributes:
                raise ValueError(f"{self.nodename}: cell {cell.key} names no age; set subgroups.age")
            by_group.setdefault(cell.subgroup, []).append(cell)
        errors: list[np.ndarray] = []
        groups = []
        for subgroup, cells in by_group.items():
            error = rows(table, cells)[column].to_numpy(dtype=float) - float(dict(subgroup)["age"])
            errors.append(error)
            count, n, _, _ = age_agreement(error, tolerance)
            groups.append(group_rate(subgroup_label(subgroup), count, n, alpha))
        error = np.concatenate(errors) if errors else np.empty(0)
        count, n, mae, mean_error = age_agreement(error, tolerance)
        estimate = proportion(count, n, alpha, interval, self.threshold)
        detail = f"{count} of {n} images within {tolerance:g} years"
        if mae is not None:
            detail += f"; mean absolute error {mae:.1f} years, mean predicted - asked {mean_error:+.1f} years"
        missing = n - int(np.isfinite(error).sum())
        if missing:
            detail += f"; {missing} without a prediction"
        stats = {"tolerance_years": float(tolerance), "mean_absolute_error_years": mae, "mean_signed_error_years": mean_error}
        return Measured(estimate, detail, tuple(groups), denominator=n, stats=stats)


def attribute_audit(reference: Any, attribute: str, alpha: float, tolerance: float | None = None) -> dict[str, Any] | None:
    """The attribute judge against the sex, race or age recorded for each reference image: the
    share it gets right (age: within `tolerance` years, DEFAULT_AGE_TOLERANCE when None) with a
    Wilson interval, over the images with a recorded value it has a class for; for age also the
    mean absolute and signed error. None when the judge does not score the attribute or no
    reference image records it."""
    from ..stats.intervals import wilson

    if attribute not in reference.columns:
        return None
    if attribute == "age":
        column = score_column("age")
        if column not in reference.columns:
            return None
        recorded = reference["age"].to_numpy(dtype=float)
        keep = np.isfinite(recorded) & (recorded >= 0)
        tolerance = DEFAULT_AGE_TOLERANCE if tolerance is None else tolerance
        count, n, mae, mean_error = age_agreement(reference.loc[keep, column].to_numpy(dtype=float) - recorded[keep], tolerance)
        extra: dict[str, Any] = {
            "tolerance": float(tolerance),
            "mae": None if mae is None else round(mae, 6),
            "mean_error": None if mean_error is None else round(mean_error, 6),
        }
    else:
        classes = attribute_classes(reference, attribute)
        if not classes:
            return None
        recorded_text = reference[attribute].astype(str).to_numpy()
        keep = np.isin(recorded_text, classes)
        scores = reference.loc[keep, [score_column(f"{attribute}:{c}") for c in classes]].to_numpy(dtype=float)
        predicted = np.array(classes)[scores.argmax(axis=1)] if len(scores) else np.array([], dtype=str)
        count, n = int((predicted == recorded_text[keep]).sum()), int(keep.sum())
        extra = {"classes": classes}
    if n == 0:
        return None
    low, high = wilson(count, n, alpha)
    return {"attribute": attribute, "count": count, "n": n, "rate": round(count / n, 6), "low": round(low, 6), "high": round(high, 6), **extra}


def attribute_concern(entry: dict[str, Any] | None, threshold: float) -> list[str]:
    """Why a demographic item's fail may be the judge's: on real images with a recorded value,
    the judge's own agreement is surely below the item's bound."""
    if entry is None or not entry["high"] < threshold:
        return []
    within = f" within {entry['tolerance']:g} years" if entry["attribute"] == "age" else ""
    return [
        f"on the reference set the {entry['attribute']} judge agrees{within} with the recorded {entry['attribute']} for only "
        f"{entry['rate']:.2f} [{entry['low']:.2f}, {entry['high']:.2f}] of {entry['n']} real images, below this item's bound "
        f"{threshold:g}: a fail may be the judge's, not the generator's"
    ]


__all__ = ["DEFAULT_AGE_TOLERANCE", "DemographicCheck", "age_agreement", "attribute_audit", "attribute_classes", "attribute_concern"]
