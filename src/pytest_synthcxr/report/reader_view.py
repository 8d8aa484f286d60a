"""The "Reader study" section of the HTML report (issue 20), shown when the spec has [reader]:

- reader-corrected items: the judge-alone rate beside the prediction-powered one, per item;
- judge vs readers: sensitivity, specificity and Cohen's kappa per finding and subgroup on the
  reader-labelled images, subgroups where the judge agrees with readers significantly less than in
  the best subgroup flagged;
- real or synthetic: the readers' AUROC and accuracy (0.5: they cannot tell), per reader and
  pooled, and inter-reader agreement (Cohen's kappa per pair, Fleiss' kappa);
- the images readers disagreed with the judge on most (regenerated from prompt and seed, as the
  report's other galleries).

The numbers are also the JSON report's "reader" key (reader_facts); plots and images are HTML
only. Nothing here changes a verdict: the items' numbers come from the report data; the tables are computed from the score
table and the labels the reader items hold."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

#: images shown in the "readers disagreed with the judge" gallery
DISAGREED_IMAGES = 8


def reader_facts(data: dict[str, Any], audit: Any) -> dict[str, Any] | None:
    """The section's numbers for the JSON report (key "reader"): None without [reader] in the
    spec; else the readers, the corrected items (judge alone beside reader-corrected), judge vs
    reader agreement per output and subgroup, and the real-or-synthetic tables."""
    spec = audit.spec
    if getattr(spec, "reader", None) is None:
        return None
    from ..checks.reader import LabelsError, agreement_rows, read_labels

    reader_checks = [c for c in audit.checks if hasattr(c, "reader_labels")]
    try:
        labels = reader_checks[0].reader_labels if reader_checks else read_labels(spec.reader.labels)
    except LabelsError as exc:
        return {"error": str(exc), "readers": [], "labels": 0, "items": [], "agreement": [], "versus": None}
    alpha = 1 - spec.confidence
    pool = audit._pool
    table = pool.full_table() if pool is not None else None
    items, agreement = [], []
    by_id = {item["check"]: item for item in data["items"]}
    seen_outputs: set[str] = set()
    for check in reader_checks:
        item = by_id.get(check.nodename)
        if item is None:
            continue
        stats = item.get("stats") or {}
        items.append({
            "check": item["check"], "labelled": int(stats.get("reader_labelled", 0) or 0),
            "judge_only": [_num(stats.get(k)) for k in ("judge_only", "judge_only_low", "judge_only_high")],
            "corrected": [_num(item[k]) for k in ("estimate", "low", "high")],
        })  # fmt: skip
        output = check._output()
        if table is not None and output not in seen_outputs:
            seen_outputs.add(output)
            rows = agreement_rows(check.sample_values(table), labels, output, check._judge_cells(), alpha)
            agreement.append({"output": output, "cells": check.metric if hasattr(check, "metric") else "not asked", "rows": [_clean(r) for r in rows]})
    return {
        "error": None,
        "readers": sorted({lab.reader for lab in labels}),
        "labels": len(labels),
        "items": items,
        "agreement": agreement,
        "versus": versus_tables(labels, alpha),
    }


def reader_view(data: dict[str, Any], audit: Any, interval_plot: Any, image_uri: Any) -> dict[str, Any] | None:
    """None without [reader] in the spec; else the section: the JSON's numbers (data["reader"]),
    an interval plot per corrected item, and the images readers disagreed with the judge on most."""
    facts = data.get("reader") if "reader" in data else reader_facts(data, audit)
    if facts is None:
        return None
    if facts["error"]:
        return {**facts, "disagreed": []}
    by_id = {item["check"]: item for item in data["items"]}
    items = []
    for entry in facts["items"]:
        item = by_id[entry["check"]]
        rows = [
            {"label": "judge alone", "rate": entry["judge_only"][0], "low": entry["judge_only"][1], "high": entry["judge_only"][2], "count": None, "n": item["n"]},
            {"label": "reader-corrected", "rate": item["estimate"], "low": item["low"], "high": item["high"], "count": None, "n": item["n"]},
        ]
        ok = all(r[k] is not None for r in rows for k in ("rate", "low", "high"))
        plot = interval_plot(rows, axis="rate" if item["family"] != "bias" else "gap / deviation", threshold=item["threshold"], scaled=True) if ok else None
        items.append({"item": item, "labelled": entry["labelled"], "plot": plot})
    reader_checks = [c for c in audit.checks if hasattr(c, "reader_labels")]
    pool = audit._pool
    table = pool.full_table() if pool is not None else None
    labels = reader_checks[0].reader_labels if reader_checks else ()
    outputs = [c._output() for c in reader_checks] or list(audit.spec.findings)
    return {**facts, "items": items, "disagreed": disagreed_images(table, labels, pool, image_uri, outputs)}


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """NaN (an empty subgroup's rate) as None: JSON has no NaN."""
    return {k: [_num(x) for x in v] if isinstance(v, list) and v and not isinstance(v[0], str) else v for k, v in row.items()}


def versus_tables(labels: Any, alpha: float) -> dict[str, Any] | None:
    """Real-or-synthetic answers: AUROC and accuracy per reader and pooled, inter-reader kappas."""
    from ..stats.agreement import cohens_kappa, fleiss_kappa, real_vs_synthetic

    answers = [lab for lab in labels if lab.task == "real-synthetic" and lab.question == "synthetic" and lab.kind in ("generated", "reference")]
    if not answers:
        return None

    def summary(who: str, rows: list[Any]) -> dict[str, Any]:
        result = real_vs_synthetic(
            [r.kind == "generated" for r in rows], [r.answer == "synthetic" for r in rows], [r.confidence or 1 for r in rows], alpha
        )
        return {"reader": who, "n": len(rows), "synthetic": result.synthetic, "real": result.real,
                "auroc": _triple(result.auroc), "accuracy": _triple(result.accuracy)}

    readers = sorted({a.reader for a in answers})
    rows = [summary(r, [a for a in answers if a.reader == r]) for r in readers]
    if len(readers) > 1:
        rows.append(summary("pooled", answers))
    said = {(a.reader, a.image_sha): a.answer == "synthetic" for a in answers}
    pairs = []
    for r1, r2 in itertools.combinations(readers, 2):
        common = sorted({s for (r, s) in said if r == r1} & {s for (r, s) in said if r == r2})
        if common:
            t = np.zeros((2, 2))
            for s in common:
                t[int(said[(r1, s)]), int(said[(r2, s)])] += 1
            pairs.append({"readers": f"{r1} / {r2}", "n": len(common), "kappa": _triple(cohens_kappa(t, alpha))})
    everyone = [s for s in {s for (_, s) in said} if all((r, s) in said for r in readers)]
    fleiss = None
    if len(readers) > 2 and everyone:
        counts = np.array([[sum(not said[(r, s)] for r in readers), sum(said[(r, s)] for r in readers)] for s in everyone])
        fleiss = {"n": len(everyone), "kappa": _num(fleiss_kappa(counts))}
    return {"rows": rows, "pairs": pairs, "fleiss": fleiss}


def disagreed_images(table: Any, labels: Any, pool: Any, image_uri: Any, outputs: list[str]) -> list[dict[str, Any]]:
    """The labelled generated images where the readers' mean answer is furthest from the judge's
    score, summed over the outputs readers were asked about (ties: image hash order)."""
    from ..checks.reader import reader_truth
    from ..sampling.pool import score_column

    if table is None or pool is None:
        return []
    outputs = [o for o in dict.fromkeys(outputs) if score_column(o) in table.columns]
    index = {(c, int(s)): i for i, (c, s) in enumerate(zip(table["cell"], table["seed"]))}
    scored: dict[tuple[str, int], dict[str, Any]] = {}
    for output in outputs:
        scores = table[score_column(output)].to_numpy(dtype=float)
        for key, (truth, sha) in reader_truth(labels, output).items():
            row = index.get(key)
            if row is None:
                continue
            entry = scored.setdefault(key, {"sha": sha, "gap": 0.0, "answers": []})
            gap = abs(truth - float(scores[row]))
            entry["gap"] += gap
            entry["answers"].append({"output": output, "readers": truth, "judge": float(scores[row])})
    top = sorted(scored.items(), key=lambda kv: (-kv[1]["gap"], kv[1]["sha"]))[:DISAGREED_IMAGES]
    if not top:
        return []
    cells = {c.key: c for c in pool.cells()}
    wanted = [(key, cells[key[0]]) for key, _ in top if key[0] in cells]
    if not wanted:
        return []
    try:
        images = pool.generator.generate([c.prompt for _, c in wanted], [key[1] for key, _ in wanted])
    except Exception:  # noqa: BLE001 - a generator that cannot draw again leaves the gallery out, not the report
        return []
    from ..sampling.cells import subgroup_label

    out = []
    for (key, cell), image in zip(wanted, images):
        entry = scored[key]
        out.append({"uri": image_uri(image), "subgroup": subgroup_label(cell.subgroup), "asked": cell.finding or "normal study",
                    "seed": key[1], "gap": entry["gap"], "answers": entry["answers"]})
    return out


def _triple(estimate: Any) -> list[float | None]:
    return [_num(estimate.value), _num(estimate.low), _num(estimate.high)]


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
