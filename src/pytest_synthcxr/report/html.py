"""The self-contained HTML report: view model (SVG geometry, embedded images) and rendering.

Nothing here changes a number: every value shown comes from the report data (``data.py``);
this module only lays it out. Images are embedded as downscaled JPEG data URIs, plots are
inline SVG, and the page carries a Content-Security-Policy that forbids every request, so
it opens offline and leaks nothing.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..sampling.cells import subgroup_label

#: bytes of embedded images in the per-cell galleries (keeps a large audit's report small)
GALLERY_BUDGET = 6_000_000
#: longest side of an embedded image, in pixels
MAX_IMAGE_SIDE = 256
JPEG_QUALITY = 80

PLOT_WIDTH = 560
PLOT_LEFT = 165
PLOT_RIGHT = 16
ROW = 20


def templates_dir() -> Path:
    packaged = resources.files("pytest_synthcxr").joinpath("templates")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "templates"  # editable install: the repo's folder


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,  # every value from the data (prompts, paths, error messages) is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["prob"] = prob
    return env


def render(data: dict[str, Any], audit: Any) -> str:
    view = build_view(data, audit)
    return _environment().get_template("report.html.j2").render(data=data, v=view)


def build_view(data: dict[str, Any], audit: Any) -> dict[str, Any]:
    """Everything the template needs beyond the data: geometry, colors, images, run facts."""
    pool = audit._pool
    stats = pool.stats if pool is not None else None
    items = data["items"]
    by_family: dict[str, list[dict[str, Any]]] = {f: [] for f in ("bias", "validity", "uncertainty", "hallucination")}
    for item in items:
        by_family.setdefault(item["family"], []).append(item)
    # what blocks the release, as pytest counts it failed (inconclusive items too under inconclusive = "fail")
    rows = item_rows(data)
    blocked = data.get("blocking", sum(1 for r in rows if r["blocks"]))
    open_ = sum(1 for r in rows if r["verdict"] == "inconclusive" and not r["blocks"])
    return {
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "wall_seconds": time.time() - audit.started,
        "stats": stats,
        "from_cache": stats.cached if stats is not None and audit._cache is not None else None,
        "cache": audit.cache_summary(),
        "outcome": "fail" if blocked else ("inconclusive" if open_ else "pass"),
        "blocked": blocked,
        "open": open_,
        "rows": rows,
        "filters": filters(rows),
        "families": by_family,
        "strips": {item["id"]: strip(item) for item in items},
        "wide_strips": {item["id"]: strip(item, left=PLOT_LEFT, width=PLOT_WIDTH, label=short_name(item)) for item in items},
        "bias_panels": bias_panels(by_family.get("bias", []), data),
        "group_plots": {item["id"]: interval_plot(_rows(item["groups"]), axis=f"{item['subject']} rate", threshold=item["threshold"], scaled=True) for item in items if item["family"] != "bias" and item["groups"]},
        "heatmaps": heatmaps(data["rates"], data),
        "entropy": [histogram(e) for e in data["entropy"]],
        "hallucination": hallucination_gallery(data["hallucination"], pool, {c["key"]: c["subgroup"] for c in data["cells"]}),
        "galleries": galleries(pool, data["cells"]),
        "fuzz": _fuzz_pairs(by_family.get("fuzz", []), pool, data["seed"], image_uri),
        "confidence_pct": f"{100 * data['spec']['confidence']:.0f}%",
        "reference": reference_view(data, audit),
        "compare": _compare_view(data, audit),
        "reader": _reader_view(data, audit),
    }


def _compare_view(data: dict[str, Any], audit: Any) -> dict[str, Any] | None:
    from .compare_view import compare_view

    return compare_view(data, audit, interval_plot, image_uri)


def _reader_view(data: dict[str, Any], audit: Any) -> dict[str, Any] | None:
    from .reader_view import reader_view

    return reader_view(data, audit, interval_plot, image_uri)


def blocks(verdict: str, policy: str) -> bool:
    """Whether an item with this verdict blocks the release, as pytest sees it: a fail or an
    error always does; an inconclusive does under the spec's `inconclusive = "fail"` policy (the
    default), not under "warn", "skip" or "xfail"."""
    return verdict in ("fail", "error") or (verdict == "inconclusive" and policy == "fail")


def item_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the checks table: items that block the release first (fails and blocking
    inconclusives, then errors), then the rest; spec order within each group."""
    policy = data["spec"]["inconclusive"]
    rows = [{"item": item, "error": None, "verdict": item["verdict"], "family": item["family"], "blocks": blocks(item["verdict"], policy)} for item in data["items"]]
    rows += [{"item": None, "error": (name, message), "verdict": "error", "family": _family_of(name), "blocks": True} for name, message in data["errors"].items()]
    return sorted(rows, key=lambda r: not r["blocks"])  # a stable sort keeps the spec order within each group


def _family_of(name: str) -> str:
    return name.split("::")[-1].split("[", 1)[0]


def filters(rows: list[dict[str, Any]]) -> dict[str, list[tuple[str, int]]]:
    """The verdicts and families present, with their counts (the checks table's filter buttons)."""
    verdicts = [v for v in ("fail", "inconclusive", "error", "pass") if any(r["verdict"] == v for r in rows)]
    families: list[str] = []
    for r in rows:
        if r["family"] not in families:
            families.append(r["family"])
    return {
        "verdict": [(v, sum(1 for r in rows if r["verdict"] == v)) for v in verdicts],
        "family": [(f, sum(1 for r in rows if r["family"] == f)) for f in families],
    }


def _fuzz_pairs(*args: Any) -> dict[str, dict[str, Any]]:
    from .fuzz_view import fuzz_pairs

    return fuzz_pairs(*args)


def reference_view(data: dict[str, Any], audit: Any) -> dict[str, Any]:
    """Images of the closest pairs (synthetic regenerated from its seed, reference as read)."""
    section_data = data.get("reference")
    if not section_data:
        return {"pairs": [], "entropy": []}
    from ..sampling.cells import Cell

    entropy = [histogram({**e, "finding": f"{e['finding']} (reference label)"}) for e in section_data["entropy"]]
    if not section_data["closest"]:
        return {"pairs": [], "entropy": entropy}

    pool, comparison = audit._pool, audit.comparison
    cells = {c.key: c for c in pool.cells()}
    reference_images = comparison.reference_images()
    pairs = []
    for pair in section_data["closest"]:
        cell: Cell | None = cells.get(pair["cell"])
        synthetic = pool.generator.generate([cell.prompt], [pair["seed"]])[0] if cell is not None else None
        pairs.append(
            {
                **pair,
                "synthetic_src": image_uri(synthetic) if synthetic is not None else None,
                "reference_src": image_uri(reference_images[pair["reference_index"]]),
            }
        )
    return {"pairs": pairs, "entropy": entropy}


# ---------------------------------------------------------------- numbers and colors


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}"


def prob(p: float | None) -> str:
    """A judge probability with 3 decimals, or as many more (up to 6) as it takes not to read
    1.000 when it is below 1: a saturated judge's flags then still show their order."""
    if p is None or not math.isfinite(p):
        return "–"
    digits = 3
    while digits < 6 and p < 1.0 and round(p, digits) >= 1.0:
        digits += 1
    return f"{p:.{digits}f}"


def _x(value: float, left: int = PLOT_LEFT, width: int = PLOT_WIDTH) -> float:
    span = width - left - PLOT_RIGHT
    return round(left + min(max(value, 0.0), 1.0) * span, 1)


_BLUES = [(247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)]


def heat_color(value: float) -> tuple[str, str]:
    """Background and text color of a heatmap cell (sequential blues, 0 light .. 1 dark)."""
    t = min(max(value, 0.0), 1.0) * (len(_BLUES) - 1)
    i = min(int(t), len(_BLUES) - 2)
    f = t - i
    rgb = [round(a + (b - a) * f) for a, b in zip(_BLUES[i], _BLUES[i + 1])]
    return f"#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}", ("#fff" if value > 0.55 else "#111")


# ---------------------------------------------------------------- plots


def short_name(item: dict[str, Any]) -> str:
    """The estimated quantity in a word or two (label of the item's strip plot)."""
    if item.get("bias"):
        return {"gap": "gap", "ratio": "ratio", "deviation": "deviation", "prompt-effect": "prompt effect"}[item["bias"]["statistic"]]
    if item["family"] == "validity":
        return item["check"].split("[", 1)[1].split("-", 1)[0].replace("fpr", "FPR").replace("auroc", "AUROC")
    return {"uncertainty": "mean entropy", "hallucination": "rate", "compare": "regression"}.get(item["family"], item["family"])


def _nice(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least value (> 0)."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= value * (1 - 1e-9))


#: share of the data's span added on each side of a strip's axis
AXIS_PADDING = 0.12


def axis_range(values: list[float | None], *, intervals: int = 4) -> tuple[float, float, float]:
    """(low, high, tick step) of an axis scaled to its own quantity: it spans the given values
    (estimate, interval, threshold) with some padding, widened to round ticks. It reaches 0 when
    0 is close relative to the span (a rate of 0.4 against a bound of 0.05 reads from 0), and
    stays inside 0..1 when every value does (rates, entropies in bits), so an entropy bound of
    0.03 or an FPR bound of 0.1 spans most of the strip instead of a few pixels of 0..1."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0, 0.25
    a, b = min(finite), max(finite)
    span = b - a
    if span <= 0.0:  # one value only (no estimate, or all equal): 0 .. twice it
        span = abs(a) if a != 0.0 else 1.0
        lo, hi = (0.0, 2 * a) if a > 0.0 else (a - span / 2, a + span / 2)
    else:
        lo, hi = a - AXIS_PADDING * span, b + AXIS_PADDING * span
        if 0.0 <= a <= 0.5 * span:
            lo = 0.0
    unit = 0.0 <= a and b <= 1.0
    if unit:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    # the smallest round step that covers lo..hi in at most intervals + 1 ticks' worth of steps
    step = _nice((hi - lo) / (intervals + 1))
    while math.ceil(hi / step - 1e-9) - math.floor(lo / step + 1e-9) > intervals + 1:
        step = _nice(step * 1.0001)
    lo, hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    if unit:  # 0 and 1 are multiples of every step up to 1, so the ends stay on ticks
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    return round(lo, 12), round(hi, 12), step


def _axis(item: dict[str, Any], intervals: int = 4) -> tuple[float, float, float]:
    return axis_range([item["threshold"], item["estimate"], item["low"], item["high"]], intervals=intervals)


def _tick_label(value: float) -> str:
    return f"{round(value, 10):g}"


def strip(item: dict[str, Any], *, left: int = 16, width: int = 208, label: str = "") -> dict[str, Any]:
    """One-line plot of an item's estimate and interval against its threshold, on an axis scaled
    to the item's own quantity (axis_range); the forbidden side is shaded."""
    lo, hi, step = _axis(item, intervals=3 if width < 300 else 5)

    def x(value: float) -> float:
        return _x((value - lo) / (hi - lo), left, width)

    t = item["threshold"]
    forbidden = (x(t), x(hi)) if item["direction"] == "max" else (x(lo), x(t))
    est = item["estimate"]
    ok = est is not None and math.isfinite(est)
    count = int(round((hi - lo) / step))
    return {
        "width": width,
        "height": 34,
        "left": left,
        "label": label,
        "forbidden": forbidden,
        "threshold": x(t),
        "x": x(est) if ok else None,
        "x0": x(item["low"]) if ok else None,
        "x1": x(item["high"]) if ok else None,
        "axis": (lo, hi),
        "ticks": [{"x": x(lo + k * step), "label": _tick_label(lo + k * step)} for k in range(count + 1)],
    }


def _rows(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(g) for g in groups]


#: pixels per character of an SVG row label (11.5 px system-ui, bold when marked), a safe upper bound
LABEL_CHAR_PX = 7.2


def label_margin(labels: list[str]) -> int:
    """Left margin of a plot whose rows carry these labels: PLOT_LEFT, or more for long ones
    ("60-year-old Hispanic female"), so no label is cut at the plot's left edge."""
    longest = max((len(label) for label in labels), default=0)
    return max(PLOT_LEFT, int(math.ceil(16 + LABEL_CHAR_PX * longest)))


def interval_plot(
    rows: list[dict[str, Any]],
    *,
    axis: str = "rate",
    band: tuple[float, float] | None = None,
    reference: float | None = None,
    row_bands: list[tuple[float, float] | None] | None = None,
    threshold: float | None = None,
    scaled: bool = False,
) -> dict[str, Any]:
    """Per-subgroup estimates with intervals on a 0..1 axis (scaled: an axis fitted to the rows
    and the threshold, as the strips), an optional shared allowed band, per-row allowed bands
    (prompt effect) and a dashed reference line; the axis is at the bottom. The label column
    grows with the longest label and the plot with it (the page scales it down where narrow)."""
    top = 6
    left = label_margin([str(r["label"]) for r in rows])
    width = PLOT_WIDTH + left - PLOT_LEFT
    if scaled:
        lo, hi, step = axis_range([threshold, *(r[k] for r in rows for k in ("rate", "low", "high"))], intervals=5)
    else:
        lo, hi, step = 0.0, 1.0, 0.25

    def x(value: float) -> float:
        return _x((value - lo) / (hi - lo), left, width)

    out_rows = []
    for i, r in enumerate(rows):
        y = top + i * ROW + ROW // 2
        rb = row_bands[i] if row_bands else None
        out_rows.append(
            {
                **r,
                "y": y,
                "x": x(r["rate"]),
                "x0": x(r["low"]),
                "x1": x(r["high"]),
                "band": (x(rb[0]), x(rb[1])) if rb else None,
                "marked": r.get("marked", False),
            }
        )
    bottom = top + len(rows) * ROW + 2
    count = int(round((hi - lo) / step))
    return {
        "width": width,
        "height": bottom + 16,
        "top": top,
        "bottom": bottom,
        "left": left,
        "axis": axis,
        "rows": out_rows,
        "band": (x(band[0]), x(band[1])) if band else None,
        "band_values": band,
        "reference": x(reference) if reference is not None else None,
        "reference_value": reference,
        "threshold": x(threshold) if threshold is not None else None,
        "threshold_value": threshold,
        "ticks": [{"x": x(lo + k * step), "label": _tick_label(lo + k * step)} for k in range(count + 1)],
    }


def _allowed_band(item: dict[str, Any]) -> tuple[tuple[float, float] | None, float | None]:
    """Where every subgroup's rate must lie for the item to hold at its point estimates."""
    facts, groups, t = item["bias"], item["groups"], item["threshold"]
    rates = [g["rate"] for g in groups]
    ref = next((g["rate"] for g in groups if g["label"] == facts["reference"]), None)
    if not rates:
        return None, ref
    if facts["statistic"] == "gap":
        return (max(max(rates) - t, 0.0), max(rates)), ref
    if facts["statistic"] == "ratio":
        return (t * max(rates), max(rates)), ref
    if facts["statistic"] == "deviation" and ref is not None and facts.get("scale") == "relative":
        return (max(ref * (1 - t), 0.0), min(ref * (1 + t), 1.0)), ref
    if facts["statistic"] == "deviation" and ref is not None:
        return (max(ref - t, 0.0), min(ref + t, 1.0)), ref
    return None, ref


def _band_text(item: dict[str, Any]) -> str:
    s, t = item["bias"]["statistic"], item["threshold"]
    if s == "deviation" and item["bias"].get("scale") == "relative":
        return f"shaded: within {t:.0%} of the reference subgroup's rate (dashed)"
    return {
        "gap": f"shaded: within {t:g} of the highest subgroup (max gap {t:g})",
        "ratio": f"shaded: at least {t:g} x the highest subgroup (min ratio {t:g})",
        "deviation": f"shaded: within {t:g} of the reference subgroup (dashed)",
        "prompt-effect": f"shaded per row: within {t:g} of the plain prompt's rate (the last row)",
    }.get(s, "")


def bias_panels(items: list[dict[str, Any]], data: dict[str, Any]) -> list[dict[str, Any]]:
    """Bias items grouped so that the plain- and named-prompt versions of a check sit side by side."""
    panels: dict[tuple[Any, ...], dict[str, Any]] = {}
    for item in items:
        f = item["bias"]
        key = (f["metric"], f["statistic"], f["finding"], tuple(f["by"]))
        axis = "TPR" if f["metric"] == "tpr" else "selection rate"
        panel = panels.setdefault(key, {"key": "-".join(map(str, key[:3])), "metric": f["metric"], "statistic": f["statistic"], "finding": f["finding"], "by": f["by"], "columns": []})
        if f["statistic"] == "prompt-effect":
            groups = item["groups"]
            rows, row_bands = [], []
            for g in groups:
                rows.append(g)
            # groups: each subgroup's named prompt, then the plain prompt (one for everyone)
            plain = groups[-1]["rate"]
            row_bands = [(max(plain - item["threshold"], 0.0), min(plain + item["threshold"], 1.0))] * (len(groups) - 1) + [None]
            plot = interval_plot(rows, axis=axis, row_bands=row_bands)
        else:
            band, ref = _allowed_band(item)
            plot = interval_plot(item["groups"], axis=axis, band=band, reference=ref)
        for row in plot["rows"]:
            hit = any(row["label"] == m or row["label"].startswith(m + " (") for m in item["marked"])
            row["marked"] = item["verdict"] if hit else False
        panel["columns"].append({"item": item, "plot": plot, "band_text": _band_text(item), "prompt": f["prompt"]})
    out = list(panels.values())
    for panel in out:
        panel["columns"].sort(key=lambda c: {"plain": 0, "named": 1}.get(c["prompt"], 2))
    return out


def heatmaps(rates: list[dict[str, Any]], data: dict[str, Any]) -> list[dict[str, Any]]:
    """Findings x subgroups tables, one per metric (TPR, SR); each finding's plain-prompt row sits
    right above its named-prompt row, so the prompt-demographics effect reads down a column."""
    ids = {item["id"]: item for item in data["items"]}
    maps: dict[str, dict[str, Any]] = {}
    for entry in rates:
        m = maps.setdefault(entry["metric"], {"metric": entry["metric"], "columns": [], "rows": {}})
        if entry["subgroup"] not in m["columns"]:
            m["columns"].append(entry["subgroup"])
        bg, fg = heat_color(entry["rate"])
        verdicts = [ids[i]["verdict"] for i in entry["flags"] if i in ids]
        mark = "fail" if "fail" in verdicts else ("inconclusive" if verdicts else None)
        links = [{"id": i, "label": short_name(ids[i]), "check": ids[i]["check"]} for i in entry["flags"] if i in ids]
        row = m["rows"].setdefault((entry["finding"], entry["prompt"]), {"finding": entry["finding"], "prompt": entry["prompt"], "cells": {}})
        row["cells"][entry["subgroup"]] = {**entry, "bg": bg, "fg": fg, "mark": mark, "links": links}
    findings = {f: i for i, f in enumerate(data["spec"]["findings"])}
    out = []
    for metric in ("tpr", "sr"):
        if metric in maps:
            m = maps[metric]
            keys = sorted(m["rows"], key=lambda k: (findings.get(k[0], len(findings)), k[0], k[1] != "plain"))
            rows = [m["rows"][k] for k in keys]
            for i, row in enumerate(rows):  # the finding's name spans its plain and named rows
                row["first"] = i == 0 or rows[i - 1]["finding"] != row["finding"]
                row["span"] = sum(1 for r in rows if r["finding"] == row["finding"])
            out.append({"metric": metric, "columns": m["columns"], "rows": rows})
    return out


def histogram(entry: dict[str, Any]) -> dict[str, Any]:
    """Bars of an entropy histogram (images asked for the finding stacked under the others).
    Heights are square-root scaled, so a few uncertain images still show next to a tall 0 bin."""
    width, height, left, bottom, top = PLOT_WIDTH, 132, PLOT_LEFT, 104, 14
    counts, asked = entry["counts"], entry["counts_asked"]
    peak = max(counts) if counts and max(counts) > 0 else 1
    span = width - left - PLOT_RIGHT
    bw = span / len(counts)

    def h(c: int) -> float:
        return round((bottom - top) * math.sqrt(c / peak), 1)

    bars = []
    for i, (c, a) in enumerate(zip(counts, asked)):
        bars.append(
            {
                "x": round(left + i * bw, 1),
                "w": round(bw - 1, 1),
                "y": round(bottom - h(c), 1),
                "h": h(c),
                "ya": round(bottom - h(a), 1),
                "ha": h(a),
                "lo": entry["edges"][i],
                "hi": entry["edges"][i + 1],
                "count": c,
                "asked": a,
            }
        )
    ticks = [{"x": round(left + v * span, 1), "label": f"{v:g}"} for v in (0.0, 0.25, 0.5, 0.75, 1.0)]
    yticks = sorted({peak, max(1, round(peak / 4))}, reverse=True)
    mean_x = round(left + entry["mean"] * span, 1) if entry["mean"] is not None else None
    return {
        **entry,
        "width": width,
        "height": height,
        "left": left,
        "right": width - PLOT_RIGHT,
        "top": top,
        "bottom": bottom,
        "bars": bars,
        "yticks": [{"y": round(bottom - h(c), 1), "label": c} for c in yticks],
        "ticks": ticks,
        "mean_x": mean_x,
    }


# ---------------------------------------------------------------- images


def image_uri(image: np.ndarray) -> str:
    """A grayscale image (uint8, or float in [0, 1]) as a downscaled JPEG data URI."""
    from PIL import Image

    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(np.nan_to_num(array.astype(np.float32)), 0.0, 1.0) * 255).round().astype(np.uint8)
    picture = Image.fromarray(array, mode="L")
    if max(picture.size) > MAX_IMAGE_SIDE:
        picture.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def hallucination_gallery(entries: list[dict[str, Any]], pool: Any, subgroups: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Regenerate the gallery's flagged images (spread over cells and scores by the report data)
    from their prompt and seed (the seed rule makes them the very images that were judged), one
    generator call per probe."""
    out: dict[str, list[dict[str, Any]]] = {}
    if pool is None:
        return out
    for entry in entries:
        top = [{**t, "subgroup": subgroups.get(t["cell"], "")} for t in entry["top"]]
        if not top:
            out[entry["probe"]] = []
            continue
        try:
            images = pool.generator.generate([t["prompt"] for t in top], [t["seed"] for t in top])
        except Exception as exc:  # noqa: BLE001 - the report must still be written
            out[entry["probe"]] = [{**t, "src": None, "error": f"{type(exc).__name__}: {exc}"} for t in top]
            continue
        out[entry["probe"]] = [{**t, "src": image_uri(img), "error": None} for t, img in zip(top, images)]
    return out


def galleries(pool: Any, cell_data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-cell thumbnails grouped by prompt style and finding. Embedding stops at GALLERY_BUDGET
    bytes (the cells' first images first), so a large audit's report stays small."""
    if pool is None:
        return []
    facts = {c["key"]: c for c in cell_data}
    order = {c["key"]: i for i, c in enumerate(cell_data)}  # the data's order: style, finding, spec's subgroup order
    cells = sorted((c for c in pool.cells() if c.key in facts), key=lambda c: order[c.key])
    thumbs = {c.key: pool.thumbnails_of(c) for c in cells}
    shown: dict[str, list[dict[str, Any]]] = {c.key: [] for c in cells}
    used = 0
    for i in range(max((len(t) for t in thumbs.values()), default=0)):  # first image of every cell, then the second...
        for cell in cells:
            if i < len(thumbs[cell.key]) and used < GALLERY_BUDGET:
                src = image_uri(thumbs[cell.key][i])
                used += len(src)
                shown[cell.key].append({"src": src, "i": i})
    groups: dict[tuple[bool, str], dict[str, Any]] = {}
    for cell in cells:
        group = groups.setdefault(
            (cell.named, cell.finding or ""),
            {"prompt": "named" if cell.named else "plain", "finding": cell.finding or "normal (no finding asked)", "cells": []},
        )
        group["cells"].append(
            {
                "key": cell.key,
                "subgroup": subgroup_label(cell.subgroup),
                "prompt": cell.prompt,
                "images": shown[cell.key],
                "hidden": len(thumbs[cell.key]) - len(shown[cell.key]),
                "invalid": facts[cell.key]["invalid"],
                "samples": facts[cell.key]["samples"],
            }
        )
    return list(groups.values())
