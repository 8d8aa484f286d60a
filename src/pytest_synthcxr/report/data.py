"""The report's data: one plain, JSON-ready structure built from the audit's results and score table.

Everything here is determined by the spec, the model and the seed (no dates, no timings, no
paths of temporary files), so the same run serializes to byte-identical JSON. The layout is
documented by ``report_schema.json`` next to this module (``schema.SCHEMA_VERSION``).
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

import numpy as np

from .. import __version__
from ..sampling.cells import subgroup_label
from ..checks.base import OPERATING_POINT
from ..sampling.pool import score_column
from ..stats.intervals import binary_entropy, wilson
from .schema import SCHEMA_VERSION, anchor
from .tables import ENTROPY_BINS, without_aged_cells
from .gallery import spread_pick

#: images per probe in the hallucination gallery (spread over cells and scores)
HALLUCINATION_GALLERY = 8
#: invalid samples listed one by one (all are counted)
INVALID_LISTED = 100


def build(audit: Any) -> dict[str, Any]:
    """The deterministic report data of a finished (or interrupted) audit."""
    pool = audit._pool
    spec = audit.spec
    table = _table(pool)
    prompts = {c.key: c.prompt for c in pool.cells()} if pool is not None else {}
    items = _items(audit)
    rates = _rates(table, spec, audit.spec.confidence)
    _mark_failing(rates, items, audit)
    valid = int(table["valid"].sum()) if table is not None else 0
    total = 0 if table is None else len(table)
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": {"name": audit.options.model, **_generator_identity(pool)},
        "judge": _judge(pool),
        "spec": {
            "path": audit.loaded.display,
            "sha256": audit.loaded.sha256,
            "confidence": spec.confidence,
            "inconclusive": spec.inconclusive,
            "samples_per_cell": spec.samples_per_cell,
            "findings": list(spec.findings),
            "subgroups": {
                "sex": list(spec.subgroups.sex),
                "race": list(spec.subgroups.race),
                **({"age": list(spec.subgroups.age)} if spec.subgroups.age else {}),
                "reference": dict(spec.subgroups.reference),
            },
        },
        "seed": audit.options.seed,
        "samples": {"total": total, "valid": valid, "invalid": total - valid, "cells": len(prompts)},
        "verdicts": audit.verdict_counts(),
        "blocking": audit.blocking_count(),  # the banner's count: what pytest reports failed
        "items": items,
        "errors": dict(sorted(audit.errors.items())),
        "rates": rates,
        "entropy": _entropy(table, audit, items),
        "hallucination": _hallucination(table, audit, items, prompts),
        "cells": _cells(table, pool, spec),
        "invalid": _invalid(table, prompts),
        "baseline": None,
        "reference": _reference_section(audit),
        "versions": _versions(),
    }
    if getattr(audit.spec, "reader", None) is not None:  # reader study (issue 20)
        from .reader_view import reader_facts

        data["reader"] = reader_facts(data, audit)
    if getattr(audit.options, "baseline_model", None) is not None:  # candidate vs released (issue 18)
        data["released_model"] = {"name": audit.options.baseline_model, **_generator_identity(getattr(audit, "_released_pool", None))}
    return data


def _reference_section(audit: Any) -> Any:
    from .reference import section

    return section(audit)


def _table(pool: Any) -> Any:
    if pool is None:
        return None
    table = pool.full_table()
    return None if table is None or len(table) == 0 else table


def _judge(pool: Any) -> dict[str, Any] | None:
    if pool is None:
        return None
    judge = pool.judge
    return {
        "name": judge.name,
        "fingerprint": judge.fingerprint,
        "outputs": list(judge.outputs),
        "version": str(getattr(judge, "version", __version__)),
    }


def _items(audit: Any) -> list[dict[str, Any]]:
    """Every finished item in spec order, with what it was computed from (cells, samples per cell)."""
    checks = {c.nodename: c for c in audit.checks}
    order = {c.nodename: i for i, c in enumerate(audit.checks)}
    used: set[str] = set()
    items = []
    for name in sorted(audit.results, key=lambda n: (order.get(n, len(order)), n)):
        item = audit.results[name].as_dict()
        check = checks.get(name)
        ident = anchor(name)
        while ident in used:  # two ids that slugify alike
            ident += "-x"
        used.add(ident)
        item["id"] = ident
        if not item.get("samples_per_cell"):  # samples spent per cell (sequential sampling may stop early)
            item["samples_per_cell"] = check.samples if check is not None else None
        item["cells"] = sorted({c.key for c in check.cells()}) if check is not None else []
        spec = audit.spec  # the plan's power-based samples per cell, beside the budget and what was spent
        item["planned_per_cell"] = check.power_samples(1 - spec.confidence, spec.power, spec.margin) if check is not None else None
        item["subject"] = (getattr(check, "finding", None) or getattr(check, "probe", None)) if check is not None else None
        item.setdefault("fuzz", None)  # fuzz items (not in audit.checks) carry their search's facts
        if item["fuzz"] is not None:
            item["subject"] = item["fuzz"]["finding"]
        item["bias"] = _bias_facts(check) if check is not None and check.family == "bias" else None
        item["marked"] = []  # subgroup labels this item implicates (filled for failing bias items)
        item["baseline"] = None
        if item["family"] == "compare":
            item["compare"] = _compare_facts(item.get("stats"))
        items.append(item)
    return items


def _compare_facts(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    """Both models' own estimates and intervals (alpha / 2 each) of a compare item, and whether its
    difference was paired on shared seeds (None: an item measured before these numbers existed)."""
    if not stats or "candidate_estimate" not in stats:
        return None
    side = {m: {k: stats.get(f"{m}_{k}") for k in ("estimate", "low", "high")} for m in ("candidate", "released")}
    return {**side, "paired": bool(stats.get("paired"))}


def _bias_facts(check: Any) -> dict[str, Any]:
    return {
        "metric": check.metric,
        "statistic": check.statistic,
        "scale": check.scale,
        "finding": check.finding,
        "by": [k for k, _ in check.subgroups[0]] if check.subgroups else [],
        "prompt": "both" if check.statistic == "prompt-effect" else ("named" if check.named else "plain"),
        "reference": subgroup_label(check.reference) if check.reference else None,
    }


def _generator_identity(pool: Any) -> dict[str, Any]:
    """Fingerprint and settings (None for both when the generator could not be built or loaded:
    the report of a stopped run still gets written)."""
    from ..models.generators.diffusers import GeneratorError

    if pool is None:
        return {"fingerprint": None, "settings": None}
    try:
        return {"fingerprint": pool.generator.fingerprint, "settings": _jsonable(pool.generator.settings)}
    except GeneratorError:
        return {"fingerprint": None, "settings": None}


def _mode(named: bool) -> str:
    return "named" if named else "plain"


def _subgroup_order(spec: Any) -> Any:
    sexes, races = list(spec.subgroups.sex), list(spec.subgroups.race)

    def key(subgroup: tuple[tuple[str, str], ...]) -> tuple[int, int, int]:
        values = dict(subgroup)
        sex = sexes.index(values["sex"]) if values.get("sex") in sexes else -1
        race = races.index(values["race"]) if values.get("race") in races else -1
        return (-len(subgroup), sex, race)  # full grid first, then sex-only / race-only groups

    return key


def _subgroup_of(row_sex: str, row_race: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in (("sex", row_sex), ("race", row_race)) if v)


def _rates(table: Any, spec: Any, confidence: float) -> list[dict[str, Any]]:
    """TPR and SR of every finding x subgroup x prompt style present in the pool.

    TPR: images generated for the finding in the subgroup that the judge calls positive for it.
    SR: all images of the subgroup (any finding asked, or a normal study) called positive for it,
    the same number of samples from each of its cells (the weighting the bias items use).
    """
    if table is None:
        return []
    alpha = 1 - confidence
    valid = without_aged_cells(table[table["valid"]])
    subgroups = {_subgroup_of(s, r) for s, r in zip(valid["sex"], valid["race"])}
    finest = max((len(g) for g in subgroups), default=0)  # the full sex x race grid; coarser cells (by race only) are left out
    subgroups = sorted((g for g in subgroups if len(g) == finest), key=_subgroup_order(spec))
    asked_findings = set(spec.findings) | {""}
    out = []
    for named in (False, True):
        mode_rows = valid[valid["named"] == named]
        if mode_rows.empty:
            continue
        for finding in spec.findings:
            column = score_column(finding)
            if column not in mode_rows:
                continue
            for subgroup in subgroups:
                values = dict(subgroup)
                in_group = (mode_rows["sex"] == values.get("sex", "")) & (mode_rows["race"] == values.get("race", ""))
                group_rows = mode_rows[in_group]
                # SR needs the subgroup's whole population (every finding asked, and normal studies)
                complete = asked_findings <= set(group_rows["finding"])
                for metric, selected in (
                    ("tpr", group_rows[group_rows["finding"] == finding]),
                    ("sr", _equal_per_cell(group_rows) if complete else group_rows.iloc[:0]),
                ):
                    n = int(len(selected))
                    if n == 0:
                        continue
                    count = int((selected[column].to_numpy() > OPERATING_POINT).sum())
                    low, high = wilson(count, n, alpha)
                    out.append(
                        {
                            "metric": metric,
                            "finding": finding,
                            "prompt": _mode(named),
                            "subgroup": subgroup_label(subgroup),
                            "attributes": values,
                            "count": count,
                            "n": n,
                            "rate": _round(count / n),
                            "low": _round(low),
                            "high": _round(high),
                            "flags": [],
                        }
                    )
    return out


def _equal_per_cell(rows: Any) -> Any:
    """The first k samples of every cell, k the fewest any of them has: a selection rate pooled
    over cells with the same weight per cell, as the bias items pool it (cells that other items
    grew further would otherwise weigh more)."""
    if rows.empty:
        return rows
    k = int(rows.groupby("cell")["i"].max().min()) + 1
    return rows[rows["i"] < k]


def _implicated(check: Any, item: dict[str, Any]) -> list[tuple[tuple[tuple[str, str], ...], tuple[str, ...]]]:
    """(subgroup, prompt styles) a failing or inconclusive bias item points at."""
    groups = item["groups"]
    if not groups:
        return []
    if check.statistic == "prompt-effect":  # groups: each subgroup named, then the plain prompt (all)
        diffs = [abs(groups[i]["rate"] - groups[-1]["rate"]) for i in range(len(check.subgroups))]
        return [(check.subgroups[int(np.argmax(diffs))], ("named",))]
    if getattr(check, "perceived", False):  # perceived subgroups have no heatmap cell of their own
        return []
    mode = (_mode(check.named),)
    rates = [g["rate"] for g in groups]
    if check.statistic in ("gap", "ratio"):
        picks = {int(np.argmin(rates)), int(np.argmax(rates))}
        return [(check.subgroups[i], mode) for i in sorted(picks)]
    ref = check.subgroups.index(check.reference) if check.reference in check.subgroups else None
    if ref is None:
        return []
    diffs = [abs(r - rates[ref]) if i != ref else -1.0 for i, r in enumerate(rates)]
    return [(check.subgroups[int(np.argmax(diffs))], mode), (check.reference, mode)]


def _mark_failing(rates: list[dict[str, Any]], items: list[dict[str, Any]], audit: Any) -> None:
    """Flag the heatmap entries (and name the subgroups) behind every failing or inconclusive bias item."""
    checks = {c.nodename: c for c in audit.checks}
    for item in items:
        check = checks.get(item["check"])
        if check is None or check.family != "bias" or item["verdict"] == "pass":
            continue
        implicated = _implicated(check, item)
        item["marked"] = [subgroup_label(g) for g, _ in implicated]
        for subgroup, modes in implicated:
            wanted = dict(subgroup)
            for entry in rates:
                if (
                    entry["metric"] == check.metric
                    and entry["finding"] == check.finding
                    and entry["prompt"] in modes
                    and all(entry["attributes"].get(k) == v for k, v in wanted.items())
                    and item["id"] not in entry["flags"]
                ):
                    entry["flags"].append(item["id"])


def _item_rows(table: Any, items: list[dict[str, Any]], family: str, subject: str) -> Any:
    """Valid rows behind the first item of `family` about `subject`: its cells, the samples it spent."""
    for item in items:
        if item["family"] == family and item["subject"] == subject and item["samples_per_cell"]:
            return table[table["cell"].isin(item["cells"]) & (table["i"] < item["samples_per_cell"]) & table["valid"]]
    return None


def _entropy(table: Any, audit: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Histogram of the judge's binary entropy (bits) per finding, on each uncertainty item's images."""
    if table is None:
        return []
    out = []
    edges = np.linspace(0.0, 1.0, ENTROPY_BINS + 1)
    seen = set()
    for check in audit.checks:
        if check.family != "uncertainty" or check.finding in seen:
            continue
        seen.add(check.finding)
        selected = _item_rows(table, items, "uncertainty", check.finding)
        column = score_column(check.finding)
        if selected is None or column not in selected:
            continue
        entropy = binary_entropy(selected[column].to_numpy())
        counts, _ = np.histogram(entropy, bins=edges)
        asked = (selected["finding"] == check.finding).to_numpy()
        out.append(
            {
                "finding": check.finding,
                "n": int(entropy.size),
                "mean": _round(float(entropy.mean())) if entropy.size else None,
                "edges": [_round(e) for e in edges],
                "counts": [int(c) for c in counts],
                "counts_asked": [int(c) for c in np.histogram(entropy[asked], bins=edges)[0]],
                "reference": None,  # real reference images: not configured
            }
        )
    return out


def _hallucination(table: Any, audit: Any, items: list[dict[str, Any]], prompts: dict[str, str]) -> list[dict[str, Any]]:
    """Per probe: flagged images spread over cells and scores (gallery.spread_pick), all from
    prompts not asking for it."""
    if table is None:
        return []
    out = []
    seen = set()
    for check in audit.checks:
        if check.family != "hallucination" or check.probe in seen:
            continue
        seen.add(check.probe)
        selected = _item_rows(table, items, "hallucination", check.probe)
        column = score_column(check.probe)
        if selected is None or column not in selected:
            continue
        probs = selected[column].to_numpy()
        flagged = selected[probs > OPERATING_POINT]
        ranked = flagged.assign(prob=flagged[column]).sort_values(["prob", "cell", "i"], ascending=[False, True, True], kind="mergesort")
        top = [
            {"cell": r.cell, "i": int(r.i), "seed": int(r.seed), "prompt": prompts.get(r.cell, ""), "probability": _round(r.prob)}
            for r in ranked.iloc[spread_pick(ranked["prob"].tolist(), ranked["cell"].tolist(), HALLUCINATION_GALLERY)].itertuples()
        ]
        out.append({"probe": check.probe, "count": int(len(flagged)), "n": int(len(selected)), "top": top})
    return out


def _cells(table: Any, pool: Any, spec: Any) -> list[dict[str, Any]]:
    """Every generation condition in the pool: its prompt and how many samples (and invalid ones)."""
    if table is None:
        return []
    sizes = table.groupby("cell", sort=False)["valid"].agg(["size", "sum"])
    out = []
    by_subgroup = _subgroup_order(spec)
    findings = {f: i for i, f in enumerate(spec.findings)}
    for cell in sorted(pool.cells(), key=lambda c: (c.named, findings.get(c.finding, len(findings)), c.finding or "~", by_subgroup(c.subgroup))):
        if cell.key not in sizes.index:
            continue
        size, valid = sizes.loc[cell.key]
        out.append(
            {
                "key": cell.key,
                "finding": cell.finding,
                "subgroup": subgroup_label(cell.subgroup),
                "attributes": dict(cell.subgroup),
                "prompt_style": _mode(cell.named),
                "prompt": cell.prompt,
                "samples": int(size),
                "invalid": int(size - valid),
            }
        )
    return out


def _invalid(table: Any, prompts: dict[str, str]) -> dict[str, Any]:
    """Samples the judge never saw (non-finite or constant images): all counted, the first listed."""
    if table is None:
        return {"count": 0, "samples": []}
    bad = table[~table["valid"]].sort_values(["cell", "i"], kind="mergesort")
    samples = [{"cell": r.cell, "i": int(r.i), "seed": int(r.seed), "prompt": prompts.get(r.cell, "")} for r in bad.head(INVALID_LISTED).itertuples()]
    return {"count": int(len(bad)), "samples": samples}


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "pytest-synthcxr": __version__}
    for name in ("pytest", "numpy", "scipy", "statsmodels", "pandas", "torch", "diffusers", "torchxrayvision"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _jsonable(value: Any) -> Any:
    """Settings as plain JSON types (tuples become lists, numpy scalars become numbers)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _round(x: float) -> float:
    return round(float(x), 6)
