"""Comparison with a previous run's JSON (``--synthcxr-baseline``): deltas with an interval each.

The interval of a difference of two independent estimates is built from their own intervals by
MOVER (method of variance estimates recovery; Zou & Donner 2008): with estimates a, b and
intervals (la, ua), (lb, ub),

    delta = a - b,   low = delta - sqrt((a - la)^2 + (ub - b)^2),   high = delta + sqrt((ua - a)^2 + (b - lb)^2)

For two Wilson intervals this is exactly Newcombe's hybrid score interval; for the other
quantities (gaps, ratios, AUROC, mean entropy) it carries over each item's own, possibly
asymmetric, interval. A change is "regressed" or "improved" only when that interval excludes
zero (a statistically supported change at the spec's confidence, per item), never on a moved
point estimate alone.

Spec bounds may also be relative to the baseline (``relative_to_baseline = true`` with
``max_increase`` / ``max_decrease`` in a bias section): :func:`resolve_relative` turns them into
absolute thresholds when the audit starts.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

ERR_READ = "synthcxr: baseline {path}: cannot read: {error}"
ERR_JSON = "synthcxr: baseline {path}: not JSON: {error}"
ERR_SCHEMA = "synthcxr: baseline {path}: not a pytest-synthcxr JSON report (schema_version {found!r}, expected {expected})"
ERR_RELATIVE_NO_BASELINE = (
    "synthcxr: spec item {item} is relative_to_baseline but no baseline was given: "
    "pass a previous run's --synthcxr-json as --synthcxr-baseline=<file>"
)
ERR_RELATIVE_MISSING = "synthcxr: baseline {path}: has no item {item}, which the spec bounds relative_to_baseline (run the baseline with this spec entry)"
ERR_RELATIVE_NAN = "synthcxr: baseline {path}: item {item} has no estimate to bound relative_to_baseline (its estimate was undefined)"


class BaselineError(Exception):
    """An unusable baseline file; str() is the one line shown to the user."""


def load(path: Path, expected_version: int) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BaselineError(ERR_READ.format(path=path, error=exc.strerror or exc)) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(ERR_JSON.format(path=path, error=exc)) from exc
    found = data.get("schema_version") if isinstance(data, dict) else None
    if found != expected_version or not isinstance(data.get("items"), list):
        raise BaselineError(ERR_SCHEMA.format(path=path, found=found, expected=expected_version))
    return data


def resolve_relative(checks: list[Any], path: Path | None, expected_version: int) -> list[Any]:
    """Checks with a bound relative to the baseline (``relative_to_baseline``: a ``baseline_margin``)
    get their threshold from the baseline run's estimate of the same item: estimate + margin for a
    'max' bound ("TPR gap no worse than baseline + 0.02"), estimate - margin for a 'min' bound,
    clipped to [0, 1]. The baseline's estimate is taken as given (its own interval is not added:
    the per-item deltas with intervals say whether a change is statistically supported).
    Raises BaselineError (one line) without a baseline, or when it lacks the item or its estimate.
    """
    relative = [c for c in checks if getattr(c, "baseline_margin", None) is not None]
    if not relative:
        return checks
    if path is None:
        raise BaselineError(ERR_RELATIVE_NO_BASELINE.format(item=relative[0].nodename))
    items = {item.get("check"): item for item in load(path, expected_version)["items"]}
    out = []
    for check in checks:
        margin = getattr(check, "baseline_margin", None)
        if margin is not None:
            item = items.get(check.nodename)
            if item is None:
                raise BaselineError(ERR_RELATIVE_MISSING.format(path=path, item=check.nodename))
            if not _finite(item, "estimate"):
                raise BaselineError(ERR_RELATIVE_NAN.format(path=path, item=check.nodename))
            bound = item["estimate"] - margin if check.direction == "min" else item["estimate"] + margin
            check = replace(check, threshold=_round(min(1.0, max(0.0, bound))))
        out.append(check)
    return out


def mover(a: float, la: float, ua: float, b: float, lb: float, ub: float) -> tuple[float, float, float]:
    """Difference a - b of two independent estimates and its MOVER interval."""
    delta = a - b
    low = delta - math.sqrt((a - la) ** 2 + (ub - b) ** 2)
    high = delta + math.sqrt((ua - a) ** 2 + (b - lb) ** 2)
    return delta, low, high


def change(direction: str, low: float, high: float) -> str:
    """'regressed' / 'improved' when the delta's interval excludes 0, else 'unchanged'."""
    worse_up = direction == "max"  # a bound 'max': a larger value is worse
    if low > 0:
        return "regressed" if worse_up else "improved"
    if high < 0:
        return "improved" if worse_up else "regressed"
    return "unchanged"


def compare(data: dict[str, Any], baseline: dict[str, Any], name: str) -> None:
    """Add the baseline's header and a per-item comparison to the report data (in place)."""
    old = {item["check"]: item for item in baseline.get("items", [])}
    counts = {"regressed": 0, "improved": 0, "unchanged": 0, "new": 0}
    for item in data["items"]:
        prev = old.get(item["check"])
        if prev is None or not _finite(prev, "estimate", "low", "high") or not _finite(item, "estimate", "low", "high"):
            item["baseline"] = {"status": "new"}
            counts["new"] += 1
            continue
        delta, low, high = mover(item["estimate"], *_interval(item), prev["estimate"], *_interval(prev))
        status = change(item["direction"], low, high)
        counts[status] += 1
        item["baseline"] = {
            "status": status,
            "estimate": prev["estimate"],
            "low": prev["low"],
            "high": prev["high"],
            "n": prev.get("n"),
            "verdict": prev.get("verdict"),
            "delta": _round(delta),
            "delta_low": _round(low),
            "delta_high": _round(high),
        }
    current = {item["check"] for item in data["items"]}
    old_model = baseline.get("model") or {}
    old_spec = baseline.get("spec") or {}
    data["baseline"] = {
        "name": name,
        "model": old_model.get("name"),
        "fingerprint": old_model.get("fingerprint"),
        "spec_sha256": old_spec.get("sha256"),
        "seed": baseline.get("seed"),
        "same_spec": old_spec.get("sha256") == data["spec"]["sha256"],
        "same_seed": baseline.get("seed") == data["seed"],
        "counts": counts,
        "missing": sorted(set(old) - current),
    }


def _interval(item: dict[str, Any]) -> tuple[float, float]:
    """The fixed-sample interval where the item kept one (a sequential item decides on a wider,
    anytime-valid interval; a one-off comparison of two runs needs only the fixed one)."""
    fixed = item.get("fixed")
    if isinstance(fixed, dict) and _finite(fixed, "low", "high"):
        return fixed["low"], fixed["high"]
    return item["low"], item["high"]


def _finite(item: dict[str, Any], *keys: str) -> bool:
    return all(isinstance(item.get(k), (int, float)) and math.isfinite(item[k]) for k in keys)


def _round(x: float) -> float:
    return round(float(x), 6)
