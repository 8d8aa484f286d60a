"""Stage 4, checks: pure functions of the score table (no I/O, no torch), one module per family,
and their expansion from the spec.

May import: spec, stats, sampling."""

from __future__ import annotations

from ..sampling.cells import Cell
from ..spec.schema import AuditSpec
from ..stats.judge_error import JudgeAccuracy
from .base import Check, GroupRate, Result, grid
from .bias import BiasCheck
from .hallucination import HallucinationCheck
from .reference import build_reference_checks
from .uncertainty import UncertaintyCheck
from .validity import ValidityCheck

FAMILIES = ("bias", "validity", "uncertainty", "hallucination", "versus-real", "fidelity", "diversity", "memorization", "demographic")


def build_checks(spec: AuditSpec) -> list[Check]:
    """Expand every spec entry into checks, one per pytest item, in a stable order."""
    attributes = {"sex": spec.subgroups.sex, "race": spec.subgroups.race}
    full_grid = grid(attributes, ("sex", "race"))
    # validity, uncertainty and hallucination share the plain-prompt cells of the full grid
    population = tuple(Cell(f, g, False) for g in full_grid for f in (*spec.findings, None))
    checks: list[Check] = []
    by_readers: set[int] = set()  # positions of items whose spec entry says verdict = "reader"

    def judged(output: str) -> dict[str, object]:
        """The judge's accuracy for `output` from the spec's judge_error table, if given."""
        entry = spec.judge_error.get(output)
        if entry is None:
            return {}
        if entry.reference:  # measured on the reference set when the run first evaluates
            return {"judge_accuracy_from_reference": True, "decide_corrected": entry.verdict == "corrected"}
        return {"judge_accuracy": JudgeAccuracy(*entry.counts()), "decide_corrected": entry.verdict == "corrected"}

    for entry in spec.bias:
        by = [k for k in ("sex", "race") if k in entry.by]
        groups = tuple(grid(attributes, by))
        reference = tuple((k, spec.subgroups.reference[k]) for k in by if k in spec.subgroups.reference)
        modes: list[bool | None] = [None] if entry.statistic == "prompt-effect" else [m == "named" for m in entry.prompt]
        for metric in entry.metric:
            for finding in entry.findings or spec.findings:
                for named in modes:
                    # plain prompts: subgroups as an attribute judge perceives them (issue 17)
                    suffix = "-named" if named else "" if named is None else "-perceived"
                    statistic = "relative-deviation" if entry.scale == "relative" else entry.statistic
                    checks.append(
                        BiasCheck(
                            name=f"{metric}-{statistic}-{finding}-{'*'.join(by)}{suffix}",
                            samples=entry.samples or spec.samples_per_cell,
                            # relative_to_baseline: NaN until the baseline's estimate is known
                            threshold=float("nan") if entry.relative_to_baseline else (entry.min if entry.statistic == "ratio" else entry.max),  # type: ignore[arg-type]
                            direction="min" if entry.statistic == "ratio" else "max",
                            metric=metric,
                            statistic=entry.statistic,
                            finding=finding,
                            subgroups=groups,
                            reference=reference,
                            named=bool(named),
                            all_findings=tuple(spec.findings),
                            scale=entry.scale,
                            compare_margin=entry.max_decline if entry.statistic == "ratio" else entry.max_regression,
                            baseline_margin=(entry.max_decrease if entry.statistic == "ratio" else entry.max_increase) if entry.relative_to_baseline else None,
                            **(judged(finding) if entry.statistic != "ratio" else {}),  # type: ignore[arg-type]
                        )
                    )
                    if entry.verdict == "reader":
                        by_readers.add(len(checks) - 1)
    for v in spec.validity:
        for finding in v.findings or spec.findings:
            for metric, bound, margin, direction in (
                ("sensitivity", v.min_sensitivity, v.max_sensitivity_decrease, "min"),
                ("fpr", v.max_fpr, v.max_fpr_increase, "max"),
                ("auroc", v.min_auroc, v.max_auroc_decrease, "min"),
            ):
                if bound is not None or margin is not None:
                    checks.append(
                        ValidityCheck(
                            name=f"{metric}-{finding}",
                            samples=v.samples or spec.samples_per_cell,
                            # relative_to_baseline: NaN until the baseline's estimate is known
                            threshold=float("nan") if margin is not None else bound,  # type: ignore[arg-type]
                            direction=direction,  # type: ignore[arg-type]
                            metric=metric,  # type: ignore[arg-type]
                            finding=finding,
                            population=population,
                            baseline_margin=margin,
                            compare_margin=v.max_regression if metric == "fpr" else v.max_decline,
                            **(judged(finding) if metric != "auroc" else {}),  # type: ignore[arg-type]
                        )
                    )
                    if v.verdict == "reader":
                        by_readers.add(len(checks) - 1)
    for u in spec.uncertainty:
        for finding in u.findings or spec.findings:
            checks.append(
                UncertaintyCheck(
                    name=finding,
                    samples=u.samples or spec.samples_per_cell,
                    threshold=float("nan") if u.relative_to_baseline else u.max_entropy,  # type: ignore[arg-type]
                    direction="max",
                    finding=finding,
                    population=population,
                    baseline_margin=u.max_increase,
                    compare_margin=u.max_regression,
                )
            )
    for h in spec.hallucination:
        for probe in h.probes:
            checks.append(
                HallucinationCheck(
                    name=probe,
                    samples=h.samples or spec.samples_per_cell,
                    threshold=float("nan") if h.relative_to_baseline else h.max_rate,  # type: ignore[arg-type]
                    direction="max",
                    probe=probe,
                    population=population,
                    baseline_margin=h.max_increase,
                    compare_margin=h.max_regression,
                    **judged(probe),  # type: ignore[arg-type]
                )
            )
            if h.verdict == "reader":
                by_readers.add(len(checks) - 1)
    checks += build_reference_checks(spec, population, full_grid)
    if spec.reader is not None and by_readers:  # verdict = "reader": rates corrected by the reader study's labels (PPI)
        from .reader import read_labels, with_reader

        labels = read_labels(spec.reader.labels)
        checks = [with_reader(c, labels, spec.reader.lam) if i in by_readers else c for i, c in enumerate(checks)]
    for check in checks:  # the small-denominator rule applies to every check that reports a denominator
        object.__setattr__(check, "min_denominator", spec.min_denominator)
    seen: dict[str, int] = {}
    for i, check in enumerate(checks):
        if check.nodename in seen:  # two spec entries expanding to the same item: keep ids unique and stable
            seen[check.nodename] += 1
            object.__setattr__(check, "name", f"{check.name}-{seen[check.nodename]}")
        else:
            seen[check.nodename] = 0
    return checks


__all__ = ["FAMILIES", "Check", "GroupRate", "Result", "build_checks"]
