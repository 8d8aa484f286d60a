"""The "Candidate vs released" section of the HTML report (issue 18): one row per compare item
with both models' estimates side by side, the worse-way difference with its interval and the
verdict; an interval plot of each difference against its margin; a forest plot per item of the
per-subgroup differences (candidate minus released, simultaneous intervals); and same-prompt,
same-seed image pairs of both models for the items that regressed most, picked where the judge's
score changed most between the models (in the subgroup whose rate changed most).

Nothing here changes a number: the estimates come from the report data (``item["compare"]``)."""

from __future__ import annotations

from typing import Any

#: compare items that get image pairs (the most regressed first), and pairs shown per item
PAIRED_ITEMS = 3
PAIRED_IMAGES = 3


def regression_excess(item: dict[str, Any]) -> float:
    """How far an item's difference lies beyond its margin (its low end first, then the estimate):
    the order of "regressed most"."""
    low, est = item.get("low"), item.get("estimate")
    key = est if low is None else low
    return float("-inf") if key is None else float(key) - float(item["threshold"])


def compare_view(data: dict[str, Any], audit: Any, interval_plot: Any, image_uri: Any) -> dict[str, Any] | None:
    """None when the report has no compare item; else the rows, plots and image pairs."""
    items = [item for item in data["items"] if item["family"] == "compare"]
    if not items:
        return None
    rows, plots, forests = [], {}, {}
    for item in items:
        diffs = item.get("differences") or []
        forests[item["id"]] = interval_plot(
            [{"label": d["label"], "rate": d["estimate"], "low": d["low"], "high": d["high"], "count": None, "n": d["n"]} for d in diffs],
            axis="candidate − released", threshold=0.0, scaled=True,
        ) if diffs else None
        facts = item.get("compare")
        inner = item["check"][len("compare["):-1] if item["check"].startswith("compare[") else item["check"]
        rows.append({"item": item, "inner": inner, "facts": facts})
        plots[item["id"]] = interval_plot(
            [{"label": "difference", "rate": item["estimate"], "low": item["low"], "high": item["high"], "count": None, "n": item["n"]}],
            axis="regression", threshold=item["threshold"], scaled=True,
        ) if item["estimate"] is not None and item["low"] is not None and item["high"] is not None else None
    worst = sorted((i for i in items if i["verdict"] != "pass"), key=regression_excess, reverse=True)[:PAIRED_ITEMS]
    return {"rows": rows, "plots": plots, "forests": forests, "pairs": _pairs(worst, audit, image_uri)}


def _pairs(items: list[dict[str, Any]], audit: Any, image_uri: Any) -> list[dict[str, Any]]:
    """For each item: same-prompt, same-seed samples of both models where the judge's score for
    the item's finding changed most (in the subgroup whose rate changed most), read from the cache
    or drawn again from their seeds, as the judge saw them."""
    candidate, released = getattr(audit, "_pool", None), getattr(audit, "_released_pool", None)
    if candidate is None or released is None:
        return []
    checks = {c.nodename: c for c in getattr(audit, "checks", [])}
    cells = {c.key: c for c in candidate.cells()}
    out = []
    for item in items:
        check = checks.get(item["check"])
        n = int(item.get("samples_per_cell") or 0)
        if check is None or not n:
            continue
        entry: dict[str, Any] = {"item": item, "subgroup": None, "images": [], "error": None}
        try:
            picks = _most_changed(item, check, audit._table(check, n))
            entry["subgroup"] = picks[0] if picks else None
            for key, i, seed, change in picks[1] if picks else []:
                cell = cells[key]
                a, b = candidate.images_at(cell, [seed])[0], released.images_at(cell, [seed])[0]
                entry["images"].append({"i": i, "seed": seed, "change": change, "prompt": cell.prompt, "candidate": image_uri(a), "released": image_uri(b)})
        except Exception as exc:  # noqa: BLE001 - the report must still be written
            entry["error"] = f"{type(exc).__name__}: {exc}"
        if entry["images"] or entry["error"]:  # no sample changed the worse way: nothing to show
            out.append(entry)
    return out


def _most_changed(item: dict[str, Any], check: Any, table: Any) -> tuple[str | None, list[tuple[str, int, int, float]]] | None:
    """(subgroup label or None, the samples whose score changed most) of one compare item."""
    subject = item.get("subject") or getattr(check.inner, "finding", None) or getattr(check.inner, "probe", None)
    if not subject:
        return None
    diffs = item.get("differences") or []
    label = max(diffs, key=lambda d: abs(d["estimate"]))["label"] if diffs else None
    cells = check.label_cells(label) if label is not None else list(check.cells())
    return label, check.changed_samples(table, subject, cells or list(check.cells()), PAIRED_IMAGES)
