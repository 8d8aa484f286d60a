"""The "Candidate vs released" section of the HTML report (issue 18): one row per compare item
with both models' estimates side by side, the worse-way difference with its interval and the
verdict; an interval plot of each difference against its margin; and same-prompt, same-seed image
pairs of both models for the items that regressed most.

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
    rows, plots = [], {}
    for item in items:
        facts = item.get("compare")
        inner = item["check"][len("compare["):-1] if item["check"].startswith("compare[") else item["check"]
        rows.append({"item": item, "inner": inner, "facts": facts})
        plots[item["id"]] = interval_plot(
            [{"label": "difference", "rate": item["estimate"], "low": item["low"], "high": item["high"], "count": None, "n": item["n"]}],
            axis="regression", threshold=item["threshold"], scaled=True,
        ) if item["estimate"] is not None and item["low"] is not None and item["high"] is not None else None
    worst = sorted((i for i in items if i["verdict"] != "pass"), key=regression_excess, reverse=True)[:PAIRED_ITEMS]
    return {"rows": rows, "plots": plots, "pairs": _pairs(worst, audit, image_uri)}


def _pairs(items: list[dict[str, Any]], audit: Any, image_uri: Any) -> list[dict[str, Any]]:
    """For each item: the first samples of its first cell from both models (same prompt, same
    seed), read from the cache or drawn again from their seeds, as the judge saw them."""
    candidate, released = getattr(audit, "_pool", None), getattr(audit, "_released_pool", None)
    if candidate is None or released is None:
        return []
    cells = {c.key: c for c in candidate.cells()}
    out = []
    for item in items:
        cell = next((cells[k] for k in item.get("cells", []) if k in cells), None)
        if cell is None:
            continue
        n = min(PAIRED_IMAGES, int(item.get("samples_per_cell") or 0))
        entry: dict[str, Any] = {"item": item, "cell": cell.key, "prompt": cell.prompt, "images": [], "error": None}
        try:
            a, ta = candidate.images([cell], n)
            b, tb = released.images([cell], n)
            entry["images"] = [
                {"i": int(i), "seed": int(s), "same_seed": int(s) == int(r), "candidate": image_uri(x), "released": image_uri(y)}
                for i, s, r, x, y in zip(ta["i"], ta["seed"], tb["seed"], a, b)
            ]
        except Exception as exc:  # noqa: BLE001 - the report must still be written
            entry["error"] = f"{type(exc).__name__}: {exc}"
        out.append(entry)
    return out
