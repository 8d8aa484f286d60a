"""What every check shares: the result record, its one-line message, and score-table helpers."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from ..sampling.cells import Cell, subgroup_label
from ..sampling.pool import score_column
from ..stats.intervals import Direction, Estimate, IntervalKind, Outcome, verdict, wilson
from ..stats.judge_error import JudgeAccuracy

#: Judge calls are "positive" above the calibrated operating point, which judges map to 0.5.
OPERATING_POINT = 0.5

#: growth of the sequential rounds of checks decided by a confidence sequence (valid at every
#: look, so looking more often costs nothing but overshoot; benchmarks/sequential_vs_fixed.py)
ANYTIME_GROWTH = 1.5
#: growth for checks that split alpha over their planned looks (fewer looks, less splitting)
SPLIT_GROWTH = 2.0

SMALL_DENOMINATOR = "only {n} {what} behind the estimate (min_denominator {min}): too few to pass"


@dataclass(frozen=True)
class GroupRate:
    """A per-subgroup rate, shown in the report's interval plots."""

    label: str
    count: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.count / self.n if self.n else float("nan")


@dataclass(frozen=True)
class GroupDifference:
    """A per-subgroup difference of a rate between two models (the comparison's forest plot):
    candidate minus released, with a simultaneous interval (alpha split over the subgroups)."""

    label: str
    estimate: float
    low: float
    high: float
    n: int
    paired: bool


@dataclass(frozen=True)
class Result:
    check: str
    family: str
    quantity: str
    estimate: Estimate
    threshold: float
    direction: Direction
    verdict: Outcome
    confidence: float
    detail: str = ""
    groups: tuple[GroupRate, ...] = ()
    #: the fixed-sample (descriptive) interval; `estimate` holds the one that decided
    fixed: Estimate | None = None
    interval: IntervalKind = "fixed"
    #: samples per cell spent, and the most the spec allowed
    samples: int = 0
    budget: int = 0
    #: multiple-testing adjusted p-value of the fail side (None: not adjusted)
    p_fail: float | None = None
    #: a fail's label from the fail-side correction: significant family-wise or not (None: not a
    #: fail, or no correction). Either way a fail blocks the release.
    familywise: bool | None = None
    note: str = ""
    #: the judge-error (Rogan-Gladen) corrected rate, where the spec gives the judge's accuracy
    corrected: Estimate | None = None
    judge_accuracy: JudgeAccuracy | None = None
    #: which estimate the verdict was computed from
    decided_on: Literal["raw", "corrected"] = "raw"
    #: further numbers of the estimate a JSON reader may want (e.g. an age item's mean absolute error)
    stats: dict[str, float] | None = None
    #: per-subgroup differences between candidate and released model (compare items only)
    differences: tuple[GroupDifference, ...] = ()

    def message(self) -> str:
        """One line: verdict, estimate, interval, threshold and n."""
        e = self.estimate
        bound = "max" if self.direction == "max" else "min"
        text = (
            f"{self.verdict}: {self.quantity} = {e.value:.3f} "
            f"[{self.confidence:.0%} CI {e.low:.3f}, {e.high:.3f}], {bound} {self.threshold:g}, n={e.n}"
        )
        text = f"{text} ({self.detail})" if self.detail else text
        if self.corrected is not None and self.judge_accuracy is not None:
            c, j = self.corrected, self.judge_accuracy
            how = "verdict on the" if self.decided_on == "corrected" else ""
            text += (
                f"; {how}{' ' if how else ''}judge-corrected {c.value:.3f} [CI {c.low:.3f}, {c.high:.3f}] "
                f"(judge sensitivity {j.sensitivity:.3f}, specificity {j.specificity:.3f})"
            )
        return f"{text}; {self.note}" if self.note else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "family": self.family,
            "quantity": self.quantity,
            "estimate": _round(self.estimate.value),
            "low": _round(self.estimate.low),
            "high": _round(self.estimate.high),
            "n": self.estimate.n,
            "threshold": self.threshold,
            "direction": self.direction,
            "verdict": self.verdict,
            "confidence": self.confidence,
            "detail": self.detail,
            "interval": self.interval,
            "fixed": None if self.fixed is None else {"low": _round(self.fixed.low), "high": _round(self.fixed.high)},
            "samples_per_cell": self.samples,
            "budget_per_cell": self.budget,
            "p_fail_adjusted": None if self.p_fail is None else _round(self.p_fail),
            "familywise": self.familywise,
            "note": self.note,
            "judge_corrected": None if self.corrected is None or self.judge_accuracy is None else {
                "estimate": _round(self.corrected.value),
                "low": _round(self.corrected.low),
                "high": _round(self.corrected.high),
                "sensitivity": _round(self.judge_accuracy.sensitivity),
                "specificity": _round(self.judge_accuracy.specificity),
                "counts": {"tp": self.judge_accuracy.tp, "fn": self.judge_accuracy.fn, "tn": self.judge_accuracy.tn, "fp": self.judge_accuracy.fp},
                "decides": self.decided_on == "corrected",
            },
            "groups": [
                {"label": g.label, "count": g.count, "n": g.n, "rate": _round(g.value), "low": _round(g.low), "high": _round(g.high)}
                for g in self.groups
            ],
            **({"stats": {k: None if v is None else _round(v) for k, v in self.stats.items()}} if self.stats else {}),
            **({"differences": [
                {"label": d.label, "estimate": _round(d.estimate), "low": _round(d.low), "high": _round(d.high), "n": d.n, "paired": d.paired}
                for d in self.differences
            ]} if self.differences else {}),
        }


def _round(x: float) -> float:
    return round(float(x), 6)


@dataclass(frozen=True)
class Check:
    """A spec entry expanded into one pytest item: which cells it needs and how it decides."""

    family: ClassVar[str] = ""
    name: str
    samples: int
    threshold: float
    direction: Direction
    #: fewer valid images behind the estimate (smallest subgroup, for subgroup statistics) never pass
    min_denominator: int = 0
    #: the judge's accuracy for this check's finding or probe (single-rate checks use it)
    judge_accuracy: JudgeAccuracy | None = None
    #: decide on the judge-corrected rate instead of the judge-flagged one
    decide_corrected: bool = False
    #: with --synthcxr-baseline-model: how much worse than the released model the candidate may
    #: be (checks.compare.CompareCheck); None: no comparison item
    compare_margin: float | None = None
    #: judge_accuracy is measured on the labelled reference set (set by the session before use)
    judge_accuracy_from_reference: bool = False

    @property
    def nodename(self) -> str:
        return f"{self.family}[{self.name}]"

    @property
    def quantity(self) -> str:
        """What is estimated, in words (the start of the item's message)."""
        raise NotImplementedError

    def cells(self) -> tuple[Cell, ...]:
        raise NotImplementedError

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> "Measured":
        """Estimate with its interval at level 1 - alpha; `looks` planned looks share alpha where
        no confidence sequence exists (AUROC, means)."""
        raise NotImplementedError

    def attributes_needed(self) -> tuple[str, ...]:
        """Attribute outputs (sex, race, age) the judge panel must score for this check."""
        return ()

    def round_growth(self) -> float:
        """Sequential rounds grow by this factor: checks split alpha over their looks by default."""
        return SPLIT_GROWTH

    def power_samples(self, alpha: float, power: float, margin: float) -> int | None:
        """Samples per cell a fixed-sample design needs to decide this check with `power` when the
        truth lies `margin` beyond the threshold (None: no power calculation for this check)."""
        return None

    def rule_power(self, alpha: float, margin: float, *, sequential: bool, first_round: int) -> float | None:
        """Chance that the rule that runs (this check's looks and intervals, within its budget)
        decides right when the truth lies `margin` beyond the threshold, the smaller of the two
        sides (None: no simulation for this check)."""
        return None

    def _pooled_rate_power(self, pooled: int, alpha: float, margin: float, *, sequential: bool, first_round: int) -> float:
        """rule_power of a check deciding one rate pooled over `pooled` cells."""
        from ..stats.sequential import rate_rule_power, schedule

        looks = tuple(schedule(self, first_round, sequential))
        truths = [min(max(self.threshold + d, 0.0), 1.0) for d in (-margin, margin)]
        return min(rate_rule_power(self.threshold, self.direction, t, pooled, looks, alpha, sequential) for t in truths)

    def decisive(self, measured: "Measured") -> Estimate:
        """The estimate the verdict is computed from: the judge-corrected one where the spec asks."""
        if self.decide_corrected and measured.corrected is not None:
            return measured.corrected
        return measured.estimate

    def decide(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Estimate:
        return self.decisive(self.measure(table, alpha, interval, looks))

    def evaluate(self, table: Any, confidence: float, *, interval: IntervalKind = "fixed", looks: int = 1) -> Result:
        """The verdict from `interval` intervals, with the fixed-sample interval kept for the report.

        A pass whose denominator (valid images, or the smallest subgroup's) is below
        `min_denominator` becomes inconclusive, and the note says so."""
        alpha = 1 - confidence
        fixed = self.measure(table, alpha, "fixed", 1)
        decided = fixed if interval == "fixed" and looks == 1 else self.measure(table, alpha, interval, looks)
        outcome = verdict(self.decisive(decided), self.threshold, self.direction)
        note = ""
        if outcome == "pass" and decided.denominator is not None and decided.denominator < self.min_denominator:
            outcome = "inconclusive"
            note = SMALL_DENOMINATOR.format(n=decided.denominator, what=decided.denominator_what, min=self.min_denominator)
        return Result(
            check=self.nodename,
            family=self.family,
            quantity=self.quantity,
            estimate=decided.estimate,
            threshold=self.threshold,
            direction=self.direction,
            verdict=outcome,
            confidence=confidence,
            detail=fixed.detail,
            groups=tuple(fixed.groups),
            fixed=fixed.estimate,
            interval=interval,
            note=note,
            corrected=decided.corrected,
            judge_accuracy=self.judge_accuracy if decided.corrected is not None else None,
            decided_on="corrected" if self.decide_corrected and decided.corrected is not None else "raw",
            stats=fixed.stats,
            differences=tuple(fixed.differences),
        )


@dataclass(frozen=True)
class Measured:
    estimate: Estimate
    detail: str = ""
    groups: tuple[GroupRate, ...] = ()
    #: judge-error corrected estimate (None: the spec gives no judge accuracy for this check)
    corrected: Estimate | None = None
    #: the count the small-denominator rule looks at (None: the rule does not apply), and its words
    denominator: int | None = None
    denominator_what: str = "valid images"
    #: further numbers for the JSON item (Result.stats)
    stats: dict[str, float] | None = None
    #: per-subgroup differences between two models (Result.differences)
    differences: tuple[GroupDifference, ...] = ()


def grid(attributes: dict[str, Sequence[str]], by: Iterable[str]) -> list[tuple[tuple[str, str], ...]]:
    """Subgroups as the cartesian product of the chosen attributes' values (sex before race)."""
    keys = [k for k in ("sex", "race") if k in set(by)]
    return [tuple(zip(keys, values)) for values in itertools.product(*(attributes[k] for k in keys))]


def rows(table: Any, cells: Iterable[Cell]) -> Any:
    keys = {c.key for c in cells}
    return table[table["cell"].isin(keys) & table["valid"]]


def sample_frame(selected: Any, values: np.ndarray) -> Any:
    """(cell, i, seed, value) of the selected rows: what a comparison of two models pairs on."""
    import pandas as pd

    return pd.DataFrame({
        "cell": selected["cell"].to_numpy(), "i": selected["i"].to_numpy(), "seed": selected["seed"].to_numpy(), "value": np.asarray(values, dtype=float),
    })


def cells_by_label(cells: Iterable[Cell], label: Any = None) -> dict[str, list[str]]:
    """Cell keys grouped by a label of each cell (default: its subgroup's), in first-seen order."""
    out: dict[str, list[str]] = {}
    for cell in cells:
        out.setdefault(label(cell) if label is not None else subgroup_label(cell.subgroup), []).append(cell.key)
    return out


def cell_rows(table: Any, cell: Cell) -> Any:
    """Every row of one cell (invalid images too), in sample-index order."""
    selected = table[table["cell"] == cell.key]
    return selected.sort_values("i", kind="stable") if "i" in selected.columns else selected


def positives(table: Any, cells: Iterable[Cell], output: str) -> tuple[int, int]:
    """(count called positive for `output`, number of valid images) over the cells' rows."""
    selected = rows(table, cells)
    return int((selected[score_column(output)].to_numpy() > OPERATING_POINT).sum()), int(len(selected))


def group_rate(label: str, count: int, n: int, alpha: float) -> GroupRate:
    low, high = wilson(count, n, alpha)
    return GroupRate(label, count, n, low, high)


def label(subgroup: tuple[tuple[str, str], ...]) -> str:
    return subgroup_label(subgroup)


def as_array(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=float)
