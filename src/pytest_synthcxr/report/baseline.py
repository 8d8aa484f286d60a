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
import re
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


#: a JSON report of any real audit is far smaller; a larger file is refused unread
MAX_BYTES = 256 * 2**20
#: a report nests about 8 levels deep; anything past this is refused before parsing
MAX_DEPTH = 64


def _depth(text: str) -> int:
    """Deepest nesting of [ and { outside strings (a cheap scan: json.loads recurses and would
    hit Python's recursion limit on a pathological file)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def load(path: Path, expected_version: int) -> dict[str, Any]:
    """Read a baseline and validate it against the report schema; raises BaselineError with one
    line that names the file and the problem (never the file's contents)."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_BYTES:
            raise BaselineError(f"synthcxr: baseline {path}: {size} bytes, larger than any report ({MAX_BYTES} at most)")
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise BaselineError(ERR_READ.format(path=path, error=exc.strerror or type(exc).__name__)) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BaselineError(f"synthcxr: baseline {path}: not UTF-8 text (byte {exc.start}); give a --synthcxr-json report") from None
    if _depth(text) > MAX_DEPTH:
        raise BaselineError(f"synthcxr: baseline {path}: nested more than {MAX_DEPTH} levels deep; not a pytest-synthcxr JSON report")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(ERR_JSON.format(path=path, error=f"{exc.msg} at line {exc.lineno} column {exc.colno}")) from None
    except RecursionError:
        raise BaselineError(f"synthcxr: baseline {path}: nested too deeply; not a pytest-synthcxr JSON report") from None
    found = data.get("schema_version") if isinstance(data, dict) else None
    if found != expected_version or not isinstance(data.get("items"), list):
        shown = found if isinstance(found, (int, float, type(None))) else type(found).__name__
        raise BaselineError(ERR_SCHEMA.format(path=path, found=shown, expected=expected_version))
    _validate(data, path)
    return data


def _validate(data: dict[str, Any], path: Path) -> None:
    """The report schema, so the comparison at the end never meets a shape it cannot read."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - a runtime dependency
        return
    from .schema import load_schema

    validator = jsonschema.Draft202012Validator(load_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        # the path may hold the file's own keys: only plain characters of them are shown
        where = re.sub(r"[^A-Za-z0-9_.\-/\[\]]", "?", "/".join(str(p) for p in error.absolute_path)) or "(top level)"
        expected = error.validator_value if isinstance(error.validator_value, (str, int, float, bool)) else None
        if error.validator == "required" and isinstance(error.instance, dict):  # the schema's own key names
            expected = ", ".join(k for k in error.validator_value if k not in error.instance)
        wanted = f" {error.validator} {expected!r}" if expected is not None else f" ({error.validator})"
        raise BaselineError(f"synthcxr: baseline {path}: not a valid pytest-synthcxr JSON report: at {where[:200]}: fails{wanted[:200]}")


def resolve_relative(checks: list[Any], path: Path | None, expected_version: int, data: dict[str, Any] | None = None) -> list[Any]:
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
    items = {item.get("check"): item for item in (data if data is not None else load(path, expected_version))["items"]}
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
