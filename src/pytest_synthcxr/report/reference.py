"""The report's synthetic-vs-reference section: the reference set, judge metrics on synthetic and
reference images side by side, the judge's own accuracy on the labelled reference set (with
warnings for items that rely on a biased or uncalibrated judge output), and the synthetic images
closest to a reference image.

``section`` returns JSON-ready data (deterministic); ``view`` adds the images for the HTML page.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks.base import OPERATING_POINT
from ..sampling.pool import score_column
from ..stats.intervals import binary_entropy, wilson
from .tables import without_aged_cells

#: closest synthetic-reference pairs listed (and shown side by side)
CLOSEST_PAIRS = 6
#: judge-audit warning levels: subgroup TPR/FPR gap (CI low above it), expected calibration error
MAX_JUDGE_GAP = 0.1
MAX_JUDGE_ECE = 0.1


def _r(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def _rate(count: int, n: int, alpha: float) -> dict[str, Any]:
    low, high = wilson(count, n, alpha)
    return {"count": int(count), "n": int(n), "rate": _r(count / n) if n else None, "low": _r(low), "high": _r(high)}


def section(audit: Any) -> dict[str, Any] | None:
    """None when no reference set is configured or nothing was generated."""
    reference = getattr(audit.options, "reference", None)
    if reference is None or audit._pool is None:
        return None
    from ..checks.reference import judge_audit

    comparison = audit.comparison
    scores = comparison.reference_scores()
    table = without_aged_cells(audit._pool.full_table())
    spec = audit.spec
    alpha = 1 - spec.confidence
    judge = judge_audit(scores, tuple(spec.findings), alpha, max_gap=MAX_JUDGE_GAP, max_ece=MAX_JUDGE_ECE)
    return {
        "set": reference.summary(),
        "features": comparison.feature_kind,
        "beside": _beside(table, scores, spec, alpha),
        "entropy": _entropy(scores, spec),
        "hallucination": _hallucination(table, scores, audit, alpha),
        "judge": judge,
        "attributes": _attributes(audit, alpha),
        "warnings": _warnings(audit),
        "closest": _closest(audit, comparison),
    }


def _beside(table: Any, scores: Any, spec: Any, alpha: float) -> list[dict[str, Any]]:
    """Per finding: mean judge entropy, TPR and per-subgroup TPR on synthetic and on reference images."""
    out = []
    valid = table[table["valid"]] if len(table) else table
    for finding in spec.findings:
        column = score_column(finding)
        if column not in scores:
            continue
        row: dict[str, Any] = {"finding": finding}
        ref_entropy = binary_entropy(scores[column].to_numpy())
        syn_entropy = binary_entropy(valid[column].to_numpy()) if len(valid) else np.empty(0)
        row["entropy"] = {"synthetic": _r(syn_entropy.mean()) if syn_entropy.size else None, "real": _r(ref_entropy.mean()), "n_synthetic": int(syn_entropy.size), "n_real": int(ref_entropy.size)}
        asked = valid[valid["finding"] == finding] if len(valid) else valid
        labelled = scores[scores[f"y:{finding}"] == 1.0]
        row["tpr"] = {
            "synthetic": _rate(int((asked[column] > OPERATING_POINT).sum()), len(asked), alpha),
            "real": _rate(int((labelled[column] > OPERATING_POINT).sum()), len(labelled), alpha),
        }
        # per subgroup: images whose prompt named it (a plain prompt leaves sex and race to the model)
        named = asked[asked["named"].astype(bool)] if len(asked) else asked
        per_group = named if len(named) else asked
        row["tpr_groups_prompt"] = "named" if len(named) else "plain"
        groups = []
        for sex in spec.subgroups.sex:
            for race in spec.subgroups.race:
                s = per_group[(per_group["sex"] == sex) & (per_group["race"] == race)] if len(per_group) else per_group
                r = labelled[(labelled["sex"] == sex) & (labelled["race"] == race)]
                groups.append(
                    {
                        "subgroup": f"{race} {sex}",
                        "synthetic": _rate(int((s[column] > OPERATING_POINT).sum()), len(s), alpha),
                        "real": _rate(int((r[column] > OPERATING_POINT).sum()), len(r), alpha),
                    }
                )
        row["tpr_groups"] = groups
        out.append(row)
    return out


def _entropy(scores: Any, spec: Any) -> list[dict[str, Any]]:
    """Per finding: the histogram of the judge's entropy on the reference images, binned like the
    uncertainty section's (images labelled with the finding stacked under the others)."""
    from .tables import ENTROPY_BINS

    edges = np.linspace(0.0, 1.0, ENTROPY_BINS + 1)
    out = []
    for finding in spec.findings:
        column = score_column(finding)
        if column not in scores:
            continue
        entropy = binary_entropy(scores[column].to_numpy())
        labelled = (scores[f"y:{finding}"] == 1.0).to_numpy()
        out.append(
            {
                "finding": finding,
                "n": int(entropy.size),
                "mean": _r(entropy.mean()) if entropy.size else None,
                "edges": [_r(e) for e in edges],
                "counts": [int(c) for c in np.histogram(entropy, bins=edges)[0]],
                "counts_asked": [int(c) for c in np.histogram(entropy[labelled], bins=edges)[0]],
            }
        )
    return out


def _hallucination(table: Any, scores: Any, audit: Any, alpha: float) -> list[dict[str, Any]]:
    probes = sorted({c.finding for c in audit.checks if c.family == "hallucination"} | {getattr(c, "finding", "") for c in audit.checks if getattr(c, "metric", "") == "hallucination"})
    out = []
    valid = table[table["valid"]] if len(table) else table
    for probe in probes:
        column = score_column(probe)
        if not probe or column not in scores:
            continue
        rows = valid[valid["finding"] != probe] if len(valid) else valid
        out.append(
            {
                "probe": probe,
                "synthetic": _rate(int((rows[column] > OPERATING_POINT).sum()), len(rows), alpha),
                "real": _rate(int((scores[column] > OPERATING_POINT).sum()), len(scores), alpha),
            }
        )
    return out


def _attributes(audit: Any, alpha: float) -> list[dict[str, Any]]:
    """Each attribute judge in the panel (sex, race, age) against the reference set's recorded
    values; age at the tolerance of the spec's age item (16 years without one)."""
    # one age row per tolerance the spec's age items use (16 years without one)
    tolerances = sorted({c.tolerance for c in audit.checks if c.family == "demographic" and c.attribute == "age" and c.tolerance is not None})
    out = []
    for attribute, tolerance in [("sex", None), ("race", None), *(("age", t) for t in tolerances or [None])]:
        entry = audit.comparison.attribute_audit(attribute, alpha, tolerance)
        if entry is not None:
            out.append(entry)
    return out


def _warnings(audit: Any) -> list[dict[str, Any]]:
    """Items whose verdict reads a judge output that the reference set shows biased (for the
    subgroups the item judges) or uncalibrated."""
    out = []
    alpha = 1 - audit.spec.confidence
    for check in audit.checks:
        if check.nodename not in audit.results:
            continue
        reasons = audit.comparison.concerns(check, alpha, max_gap=MAX_JUDGE_GAP, max_ece=MAX_JUDGE_ECE)
        if reasons:
            finding = getattr(check, "finding", None) or getattr(check, "attribute", "")  # demographic items: the attribute
            out.append({"item": check.nodename, "finding": finding, "reasons": list(reasons)})
    return out


def _closest(audit: Any, comparison: Any) -> list[dict[str, Any]]:
    """The synthetic images nearest to a reference image (cosine similarity of judge features),
    among the samples memorization items used."""
    from ..checks.fidelity import nearest_cosine

    checks = [c for c in audit.checks if c.family == "memorization" and c.nodename in audit.results]
    if not checks:
        return []
    check, result = checks[0], audit.results[checks[0].nodename]
    features, table = comparison.synthetic_features(check.cells(), result.samples or check.samples)
    keep = table["valid"].to_numpy()
    sims, index = nearest_cosine(features[keep], comparison.reference_features())
    rows = table[keep].reset_index(drop=True)
    order = np.argsort(-sims, kind="stable")[:CLOSEST_PAIRS]
    prompts = {c.key: c.prompt for c in check.cells()}
    records = comparison.reference.records
    return [
        {
            "cell": str(rows.loc[k, "cell"]),
            "i": int(rows.loc[k, "i"]),
            "seed": int(rows.loc[k, "seed"]),
            "prompt": prompts.get(str(rows.loc[k, "cell"]), ""),
            "reference_index": int(index[k]),
            "reference_image": str(records.loc[int(index[k]), "image"]),
            "similarity": _r(sims[k]),
        }
        for k in order
    ]
