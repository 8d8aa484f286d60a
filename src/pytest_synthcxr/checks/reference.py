"""Synthetic vs real: the same judge metric on synthetic and on reference images, their difference
with an interval, and the judge's own accuracy on the labelled reference set.

Every function here is a pure function of tables (no I/O, no torch). A :class:`Versus` bundles
what a check compares: the synthetic score table (as the pool serves it), the reference score
table (judge scores ``p:<output>`` beside the labels ``y:<finding>``, ``sex``, ``race``), and,
where a check needs them, judge features and MS-SSIM values computed beforehand.

Intervals for a difference of independent estimates:
- proportions: Newcombe's hybrid score interval (statsmodels, via ``stats.difference``);
- means (entropy): stratified by the finding (images asked for / labelled with it, and the rest),
  weighted by the synthetic mix, with a Welch-Satterthwaite t interval (one stratum: Welch's
  interval, statsmodels ``CompareMeans.tconfint_diff``);
- gaps: each gap's simultaneous interval at alpha / 2, combined as [low1 - high2, high1 - low2]
  (Bonferroni over the two).
With sequential sampling (looks > 1) alpha is split over the planned looks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..sampling.cells import Cell, subgroup_label
from ..stats.intervals import Estimate, IntervalKind, binary_entropy, difference, gap, wilson
from .base import OPERATING_POINT, Check, Measured, group_rate, rows
from ..sampling.pool import score_column

Metric = Literal["uncertainty", "hallucination", "tpr-drop", "tpr-gap"]


@dataclass(frozen=True)
class Versus:
    """What a synthetic-vs-reference check reads (all rows; checks select their own)."""

    synthetic: Any  # pool score table
    reference: Any  # reference records (y:<finding>, sex, race, age), with judge scores p:<output> where needed
    syn_features: np.ndarray | None = None  # aligned with synthetic's rows
    ref_features: np.ndarray | None = None  # aligned with reference's rows
    msssim: Any = None  # DataFrame: cell, i, j, msssim
    #: results a check computes once per bundle and reuses at other alphas (bootstrap draws)
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


def mean_difference(x: np.ndarray, y: np.ndarray, alpha: float) -> Estimate:
    """mean(x) - mean(y) with Welch's t interval."""
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    value = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2 or (x.std() == 0 and y.std() == 0):
        return Estimate(value, value, value, int(x.size + y.size))
    low, high = CompareMeans(DescrStatsW(x), DescrStatsW(y)).tconfint_diff(alpha=alpha, usevar="unequal")
    return Estimate(value, float(low), float(high), int(x.size + y.size))


def stratified_mean_difference(strata: Sequence[tuple[float, np.ndarray, np.ndarray]], alpha: float) -> Estimate:
    """sum_s w_s (mean(x_s) - mean(y_s)) over strata (w_s, x_s, y_s), with a t interval whose
    variance is sum_s w_s^2 (var x_s / n + var y_s / m) and whose degrees of freedom follow
    Welch-Satterthwaite. One stratum of weight 1 is Welch's interval exactly."""
    from scipy import stats

    value, variance, df_den, n = 0.0, 0.0, 0.0, 0
    for w, x, y in strata:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        n += int(x.size + y.size)
        if w == 0.0:
            continue
        if x.size < 2 or y.size < 2:
            return Estimate(float("nan"), float("nan"), float("nan"), n)
        value += w * (x.mean() - y.mean())
        for sample in (x, y):
            v = w * w * sample.var(ddof=1) / sample.size
            variance += v
            df_den += v * v / (sample.size - 1)
    if variance == 0.0:
        return Estimate(float(value), float(value), float(value), n)
    df = variance * variance / df_den
    half = float(stats.t.ppf(1 - alpha / 2, df)) * np.sqrt(variance)
    return Estimate(float(value), float(value - half), float(value + half), n)


def _positive(scores: Any) -> np.ndarray:
    return np.asarray(scores, dtype=float) > OPERATING_POINT


def reference_subgroups(reference: Any, by: tuple[str, ...] = ("sex", "race")) -> list[tuple[tuple[str, str], ...]]:
    """The sex x race subgroups present in the reference set (unknown values left out)."""
    known = reference[[k for k in by]]
    known = known[(known != "").all(axis=1)]
    return sorted({tuple(zip(by, values)) for values in known.itertuples(index=False)})


def _of(reference: Any, subgroup: tuple[tuple[str, str], ...]) -> np.ndarray:
    mask = np.ones(len(reference), dtype=bool)
    for k, v in subgroup:
        mask &= (reference[k] == v).to_numpy()
    return mask


@dataclass(frozen=True)
class VersusRealCheck(Check):
    """(synthetic - real) of a judge metric, bounded above by max_difference."""

    family = "versus-real"
    needs_reference = True
    needs_scores = True
    metric: Metric = "uncertainty"
    finding: str = ""  # the finding, or the probe for hallucination
    population: tuple[Cell, ...] = ()
    subgroups: tuple[tuple[tuple[str, str], ...], ...] = ()

    @property
    def quantity(self) -> str:
        return {
            "uncertainty": f"mean judge entropy (bits) for {self.finding}, synthetic minus real",
            "hallucination": f"{self.finding} detection rate, synthetic minus real",
            "tpr-drop": f"TPR for {self.finding}, real minus synthetic",
            "tpr-gap": f"TPR gap (max-min) across sex*race for {self.finding}, synthetic minus real",
        }[self.metric]

    def cells(self) -> tuple[Cell, ...]:
        if self.metric == "uncertainty":
            return self.population
        if self.metric == "hallucination":
            return tuple(c for c in self.population if c.finding != self.finding)
        if self.metric == "tpr-drop":
            return tuple(c for c in self.population if c.finding == self.finding)
        return tuple(Cell(self.finding, g, True) for g in self.subgroups)  # tpr-gap: prompts naming the subgroup

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        versus: Versus = table
        alpha = alpha / looks  # Bonferroni over the planned looks: valid under optional stopping
        syn = rows(versus.synthetic, self.cells())
        ref = versus.reference
        column = score_column(self.finding)
        if column not in ref:
            raise ValueError(f"{self.nodename}: the judge has no output {self.finding!r}")
        if self.metric == "uncertainty":
            # like for like: images with the finding (synthetic: asked for it; real: labelled with
            # it) and without, each compared within its stratum, weighted by the synthetic mix
            s, r = binary_entropy(syn[column].to_numpy()), binary_entropy(ref[column].to_numpy())
            asked = (syn["finding"] == self.finding).to_numpy()
            label = ref[f"y:{self.finding}"].to_numpy(dtype=float) if f"y:{self.finding}" in ref else np.full(len(ref), np.nan)
            strata = [(float(asked.mean()), s[asked], r[label == 1.0]), (float(1 - asked.mean()), s[~asked], r[label == 0.0])]
            estimate = stratified_mean_difference(strata, alpha)
            if not np.isfinite(estimate.value):  # a stratum too small on one side: the plain difference
                estimate = mean_difference(s, r, alpha)
                how = "unstratified"
            else:
                how = f"stratified by the finding, weights {strata[0][0]:.2f}/{strata[1][0]:.2f}"
            return Measured(estimate, f"synthetic {s.mean():.3f} (n={s.size}) vs real {r.mean():.3f} (n={r.size}); {how}")
        if self.metric == "hallucination":
            cs, ns = int(_positive(syn[column]).sum()), len(syn)
            cr, nr = int(_positive(ref[column]).sum()), len(ref)
            groups = (group_rate("synthetic", cs, ns, alpha), group_rate("real", cr, nr, alpha))
            return Measured(difference(cs, ns, cr, nr, alpha), f"synthetic {cs}/{ns} vs real {cr}/{nr}", groups)
        labelled = (ref[f"y:{self.finding}"] == 1.0).to_numpy()
        if self.metric == "tpr-drop":
            cs, ns = int(_positive(syn[column]).sum()), len(syn)
            cr, nr = int(_positive(ref.loc[labelled, column]).sum()), int(labelled.sum())
            if nr == 0:
                raise ValueError(f"{self.nodename}: no reference image is labelled {self.finding}")
            groups = (group_rate("real", cr, nr, alpha), group_rate("synthetic", cs, ns, alpha))
            return Measured(difference(cr, nr, cs, ns, alpha), f"real {cr}/{nr} vs synthetic {cs}/{ns}", groups)
        # tpr-gap: gap across the subgroups on each side, each gap's interval at alpha / 2
        syn_counts, ref_counts, groups = [], [], []
        for g in self.subgroups:
            part = rows(versus.synthetic, (Cell(self.finding, g, True),))
            c, n = int(_positive(part[column]).sum()), len(part)
            mask = labelled & _of(ref, g)
            rc, rn = int(_positive(ref.loc[mask, column]).sum()), int(mask.sum())
            if rn == 0:
                raise ValueError(f"{self.nodename}: no reference image of {subgroup_label(g)} is labelled {self.finding}")
            syn_counts.append((c, n))
            ref_counts.append((rc, rn))
            groups += [group_rate(f"{subgroup_label(g)} (synthetic)", c, n, alpha), group_rate(f"{subgroup_label(g)} (real)", rc, rn, alpha)]
        gs = gap([c for c, _ in syn_counts], [n for _, n in syn_counts], alpha / 2)
        gr = gap([c for c, _ in ref_counts], [n for _, n in ref_counts], alpha / 2)
        estimate = Estimate(gs.value - gr.value, gs.low - gr.high, gs.high - gr.low, gs.n + gr.n)
        return Measured(estimate, f"synthetic gap {gs.value:.3f} vs real gap {gr.value:.3f}", tuple(groups))


# ------------------------------------------------------------------------- auditing the judge


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE: bin-size-weighted mean |accuracy - confidence| over equal-width probability bins,
    on the judge's calibrated scores (the operating point at 0.5)."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=float)
    if p.size == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / p.size)


def judge_audit(reference: Any, findings: tuple[str, ...], alpha: float, *, max_gap: float = 0.1, max_ece: float = 0.1) -> list[dict[str, Any]]:
    """Per finding: the judge's TPR and FPR on the labelled reference set, overall and per sex x
    race subgroup (Wilson intervals), its expected calibration error, and warnings: the TPR or FPR
    gap across subgroups is above max_gap with its simultaneous interval above it too (a judge
    biased for these subgroups), or ECE is above max_ece."""
    out = []
    subgroups = reference_subgroups(reference)
    for finding in findings:
        column, label = score_column(finding), f"y:{finding}"
        if column not in reference or label not in reference:
            continue
        known = reference[label].notna().to_numpy()
        y = reference[label].to_numpy(dtype=float)
        positive = _positive(reference[column])
        entry: dict[str, Any] = {"finding": finding, "labelled": int(known.sum()), "positives": int(np.nansum(y == 1.0))}
        for name, want in (("tpr", 1.0), ("fpr", 0.0)):
            mask = known & (y == want)
            c, n = int(positive[mask].sum()), int(mask.sum())
            low, high = wilson(c, n, alpha)
            entry[name] = {"count": c, "n": n, "rate": _r(c / n) if n else None, "low": _r(low), "high": _r(high)}
            rates = []
            for g in subgroups:
                gm = mask & _of(reference, g)
                gc, gn = int(positive[gm].sum()), int(gm.sum())
                if gn:
                    rates.append((subgroup_label(g), gc, gn))
            entry[f"{name}_groups"] = [
                {"subgroup": s, "count": gc, "n": gn, "rate": _r(gc / gn), "low": _r(lo), "high": _r(hi)}
                for (s, gc, gn), (lo, hi) in zip(rates, [wilson(gc, gn, alpha / max(len(rates), 1)) for _, gc, gn in rates])
            ]
            if len(rates) >= 2:
                g_est = gap([gc for _, gc, _ in rates], [gn for _, _, gn in rates], alpha)
                entry[f"{name}_gap"] = {"value": _r(g_est.value), "low": _r(g_est.low), "high": _r(g_est.high)}
            else:
                entry[f"{name}_gap"] = None
        tpr, fpr = entry["tpr"], entry["fpr"]
        entry["confusion"] = {"tp": tpr["count"], "fn": tpr["n"] - tpr["count"], "tn": fpr["n"] - fpr["count"], "fp": fpr["count"]}
        scores = reference.loc[known, column].to_numpy(dtype=float)
        entry["ece"] = _r(expected_calibration_error(scores, y[known])) if known.any() else None
        warnings = []
        for name in ("tpr", "fpr"):
            g = entry[f"{name}_gap"]
            if g is not None and g["low"] > max_gap:
                warnings.append(f"{name.upper()} gap across subgroups {g['value']:.2f} (CI low {g['low']:.2f}) > {max_gap:g}")
        if entry["ece"] is not None and entry["ece"] > max_ece:
            warnings.append(f"expected calibration error {entry['ece']:.2f} > {max_ece:g}")
        entry["warnings"] = warnings
        out.append(entry)
    return out


def judge_concerns(
    reference: Any,
    finding: str,
    subgroups: Sequence[tuple[tuple[str, str], ...]] = (),
    alpha: float = 0.05,
    *,
    max_gap: float = 0.1,
    max_ece: float = 0.1,
) -> list[str]:
    """Why the judge's `finding` output is questionable for these subgroups (all sex x race
    subgroups of the reference when none are given), from the labelled reference set: its TPR or
    FPR differs across them by more than max_gap (the gap's simultaneous interval lies above
    max_gap), or its expected calibration error exceeds max_ece. Empty: no concern."""
    column, label = score_column(finding), f"y:{finding}"
    if column not in reference or label not in reference:
        return []
    groups = list(subgroups) or reference_subgroups(reference)
    y = reference[label].to_numpy(dtype=float)
    positive = _positive(reference[column])
    reasons = []
    for name, want in (("TPR", 1.0), ("FPR", 0.0)):
        counts = []
        for g in groups:
            mask = (y == want) & _of(reference, g)
            if mask.sum():
                counts.append((subgroup_label(g), int(positive[mask].sum()), int(mask.sum())))
        if len(counts) < 2:
            continue
        estimate = gap([c for _, c, _ in counts], [n for _, _, n in counts], alpha)
        if estimate.low > max_gap:
            rates = sorted(counts, key=lambda t: t[1] / t[2])
            low, high = rates[0], rates[-1]
            reasons.append(
                f"judge {name} for {finding} differs across the subgroups judged by {estimate.value:.2f} "
                f"(CI {estimate.low:.2f}-{estimate.high:.2f}; {low[0]} {low[1]}/{low[2]}, {high[0]} {high[1]}/{high[2]}) on the reference set"
            )
    known = ~np.isnan(y)
    if known.any():
        ece = expected_calibration_error(reference.loc[known, column].to_numpy(dtype=float), y[known])
        if ece > max_ece:
            reasons.append(f"judge {finding} output is uncalibrated on the reference set (expected calibration error {ece:.2f} > {max_ece:g})")
    return reasons


def _r(x: float) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else round(float(x), 6)




def build_reference_checks(spec: Any, population: tuple[Cell, ...], full_grid: list[tuple[tuple[str, str], ...]]) -> list[Check]:
    """Expand the spec's versus_real, fidelity, diversity and memorization entries into checks."""
    from .fidelity import DiversityCheck, FrechetCheck, MemorizationCheck

    checks: list[Check] = []
    for v in spec.versus_real:
        subjects = v.probes if v.metric == "hallucination" else (v.findings or spec.findings)
        for subject in subjects:
            checks.append(
                VersusRealCheck(
                    name=f"{v.metric}-{subject}",
                    samples=v.samples or spec.samples_per_cell,
                    threshold=v.max_difference,
                    direction="max",
                    metric=v.metric,
                    finding=subject,
                    population=population,
                    subgroups=tuple(full_grid),
                )
            )
    for f in spec.fidelity:
        common = {
            "samples": f.samples or spec.samples_per_cell,
            "threshold": f.max_fd,
            "direction": "max",
            "bootstrap": f.bootstrap,
            "statistic": f.statistic,
        }
        for scope in f.by:
            if scope == "overall":
                checks.append(FrechetCheck(name=f.statistic, scope="overall", population=population, **common))
            elif scope == "finding":
                for finding in f.findings or spec.findings:
                    checks.append(FrechetCheck(name=f"{f.statistic}-{finding}", scope="finding", finding=finding, population=population, **common))
            else:  # per sex x race subgroup: prompts naming it
                for g in full_grid:
                    named = tuple(Cell(x, g, True) for x in (*spec.findings, None))
                    name = f"{f.statistic}-" + "-".join(v for _, v in g)
                    checks.append(FrechetCheck(name=name, scope="subgroup", subgroup=g, population=named, **common))
    for d in spec.diversity:
        for finding in [*(d.findings or spec.findings), ""] if d.findings is None else d.findings:
            checks.append(
                DiversityCheck(
                    name=f"msssim-{finding or 'normal'}",
                    samples=d.samples or spec.samples_per_cell,
                    threshold=d.max_msssim,
                    direction="max",
                    finding=finding,
                    population=population,
                )
            )
    for d in getattr(spec, "demographic", ()):
        from .demographic import DEFAULT_AGE_TOLERANCE, DemographicCheck

        # every attribute check judges the same images: prompts naming sex, race (and age, if the
        # spec lists ages: "60 year old White female.")
        ages = [(("age", str(a)),) for a in spec.subgroups.age] or [()]
        named = tuple(Cell(x, g + a, True) for g in full_grid for a in ages for x in (*spec.findings, None))
        checks.append(
            DemographicCheck(
                name=f"{d.attribute}-agreement",
                samples=d.samples or spec.samples_per_cell,
                threshold=d.min_agreement,
                direction="min",
                attribute=d.attribute,
                population=named,
                tolerance=(d.tolerance or DEFAULT_AGE_TOLERANCE) if d.attribute == "age" else None,
            )
        )
    for m in spec.memorization:
        checks.append(
            MemorizationCheck(
                name=f"nn-cosine-{m.similarity:g}",
                samples=m.samples or spec.samples_per_cell,
                threshold=m.max_rate,
                direction="max",
                similarity=m.similarity,
                population=population,
            )
        )
    return checks


__all__ = ["Versus", "VersusRealCheck", "build_reference_checks", "expected_calibration_error", "judge_audit", "judge_concerns", "mean_difference", "reference_subgroups"]
