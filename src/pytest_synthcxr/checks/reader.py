"""Reader-corrected items (verdict = "reader"): a rate from the judge's calls on every image,
rectified by reader labels on the sampled ones (prediction-powered inference, stats.ppi).
Named-prompt bias gaps and deviations (TPR, selection rate) take per-subgroup PPI rates.

A validity sensitivity or false-positive rate, or a hallucination rate, whose spec entry says
``verdict = "reader"`` becomes a ReaderValidityCheck / ReaderHallucinationCheck: the same item
(same id, cells and budget) whose estimate is the PPI rate with its interval. The reader's truth
for output o on an image: 1 for "present", 0 for "absent", 0 for every output when the image is
"not a usable chest radiograph" (it does not show the finding); "unsure" leaves that reader out
for that image; several readers' answers are averaged. Labels join the score table on
(cell, seed), which the labels store recorded when the study sampled the image.

Strata are cells (the study samples per cell): PPI per cell, combined with each cell's share of
the images (stats.ppi.stratified). Under sequential sampling the interval is taken at alpha split
over the item's planned looks (PPI's CLT interval is not anytime-valid).

The labels file is read once, when the spec is expanded into checks (`read_labels`); measuring
stays a pure function of the score table and the labels held by the check.
"""

from __future__ import annotations

import csv
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..sampling.cells import Cell, subgroup_label
from ..spec.schema import SpecError
from ..stats.agreement import Confusion, confusion, subgroup_flags
from ..stats.intervals import Estimate, IntervalKind
from ..stats.ppi import stratified
from ..sampling.pool import score_column
from ..stats.intervals import absolute
from .base import OPERATING_POINT, SPLIT_GROWTH, Check, GroupRate, Measured, cells_by_label, rows, sample_frame
from .bias import BiasCheck
from .hallucination import HallucinationCheck
from .validity import ValidityCheck

ERR_LABELS = "synthcxr: [reader] labels: {path}: {why} (give the reader study's reader-labels.sqlite or its CSV export)"


@dataclass(frozen=True)
class ReaderLabel:
    """One answer of one reader about one image (a row of the labels store)."""

    reader: str
    image_sha: str
    cell: str
    seed: int | None
    task: str
    question: str
    answer: str
    confidence: int | None = None
    kind: str = "generated"
    subgroup: str = ""


class LabelsError(SpecError):
    """A labels file that cannot be read; str() is one line (a spec error: the spec names it)."""


def read_labels(path: Path | str) -> tuple[ReaderLabel, ...]:
    """Every answer in a labels database (.sqlite / .db) or its CSV export."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(ERR_LABELS.format(path=path, why="no such file"))
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        else:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                db.row_factory = sqlite3.Row
                rows = [dict(r) for r in db.execute(
                    "SELECT l.reader, l.image_sha, COALESCE(i.kind, '') AS kind, COALESCE(i.cell, '') AS cell, i.seed, "
                    "COALESCE(i.subgroup, '') AS subgroup, l.task, l.question, l.answer, l.confidence "
                    "FROM labels l LEFT JOIN images i ON i.image_sha = l.image_sha"
                )]
            finally:
                db.close()
        return tuple(_label(r) for r in rows)
    except (OSError, sqlite3.Error, csv.Error, KeyError, ValueError, UnicodeDecodeError) as exc:
        raise LabelsError(ERR_LABELS.format(path=path, why=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)) from None


def _label(r: dict[str, Any]) -> ReaderLabel:
    def number(value: Any) -> int | None:
        if value in (None, ""):
            return None
        text = str(value).strip()
        return int(text) if text.lstrip("-").isdigit() else int(float(text))  # 63-bit seeds: never through float

    return ReaderLabel(
        str(r["reader"]), str(r["image_sha"]), str(r.get("cell") or ""), number(r.get("seed")), str(r["task"]),
        str(r["question"]), str(r["answer"]), number(r.get("confidence")), str(r.get("kind") or "generated"), str(r.get("subgroup") or ""),
    )


def reader_truth(labels: Sequence[ReaderLabel], output: str) -> dict[tuple[str, int], tuple[float, str]]:
    """(cell, seed) -> (readers' mean 0/1 truth for `output`, image hash), findings task only."""
    per_reader: dict[tuple[str, int, str], tuple[float, str]] = {}
    unusable: set[tuple[str, int, str]] = set()
    for lab in labels:
        if lab.task != "findings" or lab.seed is None or not lab.cell:
            continue
        key = (lab.cell, lab.seed, lab.reader)
        if lab.question == "usable" and lab.answer == "no":
            unusable.add(key)
            per_reader[key] = (0.0, lab.image_sha)
        elif lab.question == output and lab.answer in ("present", "absent") and key not in unusable:
            per_reader[key] = (1.0 if lab.answer == "present" else 0.0, lab.image_sha)
    out: dict[tuple[str, int], list[Any]] = {}
    for (cell, seed, _), (value, sha) in per_reader.items():
        entry = out.setdefault((cell, seed), [0.0, 0, sha])
        entry[0] += value
        entry[1] += 1
    return {k: (v[0] / v[1], v[2]) for k, v in out.items()}


@dataclass(frozen=True)
class Rectified:
    """The PPI rate of one group of cells, and the judge's agreement with the readers there."""

    estimate: Estimate
    labelled: int
    judge: Confusion


def rectify(values: Any, truth: dict[tuple[str, int], tuple[float, str]], cells: Sequence[str], alpha: float, lam: str) -> Rectified:
    """PPI over the given cells of a (cell, seed, value) frame of 0/1 judge calls."""
    strata, judge_calls, reader_calls = [], [], []
    total = 0
    for key in cells:
        part = values[values["cell"] == key]
        calls = part["value"].to_numpy(dtype=float)
        seeds = part["seed"].to_numpy()
        # a labelled image counts once: a resampled table (the "more samples" note) repeats rows,
        # and repeats of a read image must not pass for more labels
        seen: set[int] = set()
        labelled = np.zeros(seeds.size, dtype=bool)
        for j, s in enumerate(seeds):
            if (key, int(s)) in truth and int(s) not in seen:
                seen.add(int(s))
                labelled[j] = True
        y = np.array([truth[(key, int(s))][0] for s in seeds[labelled]], dtype=float)
        strata.append((y, calls[labelled], calls[~labelled]))
        judge_calls.append(calls[labelled])
        reader_calls.append(y)
        total += calls.size
    est = stratified(strata, alpha, "tuned" if lam == "tuned" else 1.0)
    value = min(max(est.value, 0.0), 1.0) if not math.isnan(est.value) else est.value
    j = np.concatenate(judge_calls) if judge_calls else np.empty(0)
    r = np.concatenate(reader_calls) if reader_calls else np.empty(0)
    return Rectified(Estimate(value, est.low, est.high, total), est.n_labelled, confusion(j > 0.5, r >= 0.5))


class ReaderCorrected:
    """Mixin: the item's rate is the PPI rate from its judge calls and the reader labels."""

    reader_labels: tuple[ReaderLabel, ...]
    reader_lam: str

    @property
    def quantity(self) -> str:
        return f"reader-corrected {super().quantity}"  # type: ignore[misc]

    def _output(self) -> str:
        return getattr(self, "finding", "") or getattr(self, "probe", "")

    def round_growth(self) -> float:
        return SPLIT_GROWTH  # alpha is split over the planned looks: fewer, larger rounds

    def _judge_cells(self) -> tuple[Cell, ...]:
        """The cells whose images the item's rate counts (validity: asked or not asked for the finding)."""
        cells = self.cells()  # type: ignore[attr-defined]
        metric = getattr(self, "metric", None)
        if metric == "sensitivity":
            return tuple(c for c in cells if c.finding == self._output())
        if metric == "fpr":
            return tuple(c for c in cells if c.finding != self._output())
        return tuple(cells)

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        judge = super().measure(table, alpha, interval, looks)  # type: ignore[misc]
        level = alpha / max(looks, 1) if interval == "anytime" else alpha
        values = self.sample_values(table)  # type: ignore[attr-defined]
        truth = reader_truth(self.reader_labels, self._output())
        cells = self._judge_cells()
        whole = rectify(values, truth, [c.key for c in cells], level, self.reader_lam)
        by_group = cells_by_label(cells)
        groups, stats = [], {
            "judge_only": judge.estimate.value, "judge_only_low": judge.estimate.low, "judge_only_high": judge.estimate.high,
            "reader_labelled": float(whole.labelled),
        }
        for label, keys in by_group.items():
            part = rectify(values, truth, keys, level / max(len(by_group), 1), self.reader_lam)
            e = part.estimate
            count = 0 if math.isnan(e.value) else int(round(e.value * e.n))  # GroupRate holds a count: the PPI rate x n
            groups.append(GroupRate(label, count, e.n, e.low, e.high))
        detail = (
            f"reader-corrected (PPI) from {whole.labelled} reader-labelled of {whole.estimate.n} images; "
            f"judge alone {judge.estimate.value:.3f} [{judge.estimate.low:.3f}, {judge.estimate.high:.3f}]"
        )
        return Measured(whole.estimate, detail, tuple(groups), denominator=whole.labelled, denominator_what="reader-labelled images", stats=stats)


@dataclass(frozen=True)
class ReaderValidityCheck(ReaderCorrected, ValidityCheck):
    reader_labels: tuple[ReaderLabel, ...] = field(default=(), compare=False, repr=False)
    reader_lam: str = "classic"


@dataclass(frozen=True)
class ReaderHallucinationCheck(ReaderCorrected, HallucinationCheck):
    reader_labels: tuple[ReaderLabel, ...] = field(default=(), compare=False, repr=False)
    reader_lam: str = "classic"


@dataclass(frozen=True)
class ReaderBiasCheck(BiasCheck):
    """A named-prompt TPR or selection-rate gap or (absolute) deviation over subgroups, from each
    subgroup's PPI rate: k intervals at alpha / k hold together (Bonferroni), and the statistic's
    interval is its range over that box (as stats.intervals.gap does for judge-only rates). This
    is where a judge whose error differs by subgroup inflates or hides a bias: the rectifier
    removes the judge's share of it."""

    reader_labels: tuple[ReaderLabel, ...] = field(default=(), compare=False, repr=False)
    reader_lam: str = "classic"

    @property
    def quantity(self) -> str:
        return f"reader-corrected {BiasCheck.quantity.fget(self)}"  # type: ignore[attr-defined]

    def _output(self) -> str:
        return self.finding

    def round_growth(self) -> float:
        return SPLIT_GROWTH

    def _judge_cells(self) -> tuple[Cell, ...]:
        return self.cells()

    def sample_values(self, table: Any) -> Any:
        """Per valid image of the item's cells, 1 when the judge calls the finding (cell, i, seed, value)."""
        selected = rows(table, self.cells())
        return sample_frame(selected, (selected[score_column(self.finding)].to_numpy() > OPERATING_POINT).astype(float))

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        judge = super().measure(table, alpha, interval, looks)
        level = alpha / max(looks, 1) if interval == "anytime" else alpha
        k = len(self.subgroups)
        values = self.sample_values(table)
        truth = reader_truth(self.reader_labels, self.finding)
        parts = [rectify(values, truth, [c.key for c in self._cells_of(g, True)], level / k, self.reader_lam) for g in self.subgroups]
        est = [p.estimate for p in parts]
        if self.statistic == "gap":
            value = max(e.value for e in est) - min(e.value for e in est)
            low = max(0.0, max(e.low for e in est) - min(e.high for e in est))
            high = max(e.high for e in est) - min(e.low for e in est)
        else:  # absolute deviation from the reference subgroup: the largest |r_g - r_ref| over the box
            ref = self.subgroups.index(self.reference) if self.reference in self.subgroups else 0
            r = est[ref]
            others = [e for i, e in enumerate(est) if i != ref]
            value = max(abs(e.value - r.value) for e in others)
            ranges = [absolute(e.low - r.high, e.high - r.low) for e in others]
            low, high = max(a for a, _ in ranges), max(b for _, b in ranges)
        groups = []
        for g, e in zip(self.subgroups, est):
            count = 0 if math.isnan(e.value) else int(round(e.value * e.n))
            groups.append(GroupRate(subgroup_label(g), count, e.n, e.low, e.high))
        smallest = min(p.labelled for p in parts)
        stats = {
            "judge_only": judge.estimate.value, "judge_only_low": judge.estimate.low, "judge_only_high": judge.estimate.high,
            "reader_labelled": float(sum(p.labelled for p in parts)),
        }
        detail = (
            f"reader-corrected (PPI per subgroup at alpha/{k}) from {int(stats['reader_labelled'])} reader-labelled of "
            f"{sum(e.n for e in est)} images; judge alone {judge.estimate.value:.3f} [{judge.estimate.low:.3f}, {judge.estimate.high:.3f}]"
        )
        total = Estimate(value, low, min(high, 1.0), sum(e.n for e in est))
        return Measured(total, detail, tuple(groups), denominator=smallest, denominator_what="reader-labelled images in the smallest subgroup", stats=stats)


def agreement_rows(values: Any, labels: Sequence[ReaderLabel], output: str, cells: Sequence[Cell], alpha: float = 0.05) -> list[dict[str, Any]]:
    """Judge vs readers for one output per subgroup (and all): sensitivity, specificity and
    Cohen's kappa with intervals on the reader-labelled images, and whether the subgroup's
    sensitivity or specificity is significantly below the best subgroup's (flagged)."""
    truth = reader_truth(labels, output)
    by_group = cells_by_label(cells)
    confusions = {}
    for label, keys in by_group.items():
        part = values[values["cell"].isin(keys)]
        pairs = [(v, truth[(k, int(s))][0]) for k, s, v in zip(part["cell"], part["seed"], part["value"]) if (k, int(s)) in truth]
        confusions[label] = confusion([p[0] > 0.5 for p in pairs], [p[1] >= 0.5 for p in pairs])
    # two families of flags (sensitivity, specificity): alpha / 2 each
    flags = {**subgroup_flags(confusions, alpha / 2, "sensitivity")}
    flagged_spec = subgroup_flags(confusions, alpha / 2, "specificity")
    rows = []
    for label, c in confusions.items():
        sens, spec, kappa = c.sensitivity(alpha), c.specificity(alpha), c.kappa(alpha)
        rows.append({
            "output": output, "subgroup": label, "n": c.n, "tp": c.tp, "fn": c.fn, "tn": c.tn, "fp": c.fp,
            "sensitivity": [sens.value, sens.low, sens.high], "specificity": [spec.value, spec.low, spec.high],
            "kappa": [kappa.value, kappa.low, kappa.high],
            "flagged": sorted(({"sensitivity"} if label in flags else set()) | ({"specificity"} if label in flagged_spec else set())),
        })
    return rows


def with_reader(check: Any, labels: tuple[ReaderLabel, ...], lam: str) -> Any:
    """The reader-corrected version of a validity rate or hallucination item (others unchanged)."""
    from dataclasses import fields

    if isinstance(check, ValidityCheck) and check.metric in ("sensitivity", "fpr"):
        kind: type = ReaderValidityCheck
    elif isinstance(check, BiasCheck) and check.named and check.statistic in ("gap", "deviation") and check.scale == "absolute":
        kind = ReaderBiasCheck
    elif isinstance(check, HallucinationCheck):
        kind = ReaderHallucinationCheck
    else:
        return check
    values = {f.name: getattr(check, f.name) for f in fields(check) if f.init}
    return kind(**values, reader_labels=labels, reader_lam=lam)


def without_reader(check: Any) -> Any:
    """The judge-only item behind a reader-corrected one (others unchanged): a comparison with a
    released model is judged on both models' images alike, and the labels were read on one
    model's images only."""
    from dataclasses import fields

    if not hasattr(check, "reader_labels"):
        return check
    base = next(k for k in type(check).__mro__[1:] if isinstance(k, type) and issubclass(k, Check) and "reader_labels" not in getattr(k, "__dataclass_fields__", {}))
    return base(**{f.name: getattr(check, f.name) for f in fields(base) if f.init})


def mismatched_labels(labels: Sequence[ReaderLabel], cells: dict[str, Cell], stored: Any) -> ReaderLabel | None:
    """The first label of a generated image whose (cell, seed) holds another image in this run's
    cache (`stored(prompt, seed)` -> image hash or None): labels read on another model's (or another
    seed's) images. None when every label that can be checked matches."""
    for label in labels:
        if label.kind != "generated" or label.seed is None or label.cell not in cells:
            continue
        sha = stored(cells[label.cell].prompt, int(label.seed))
        if sha is not None and sha != label.image_sha:
            return label
    return None
