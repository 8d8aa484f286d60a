"""The audit report: a plain data structure first, then JSON, CSV and one self-contained HTML file.

JSON holds only what the spec, model and seed determine (no dates, no timings), so the same run
gives byte-identical JSON; the HTML adds the date, wall time and thumbnails.
"""

from __future__ import annotations

import base64
import io
import json
import os
import platform
import tempfile
import time
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from . import __version__

SCHEMA_VERSION = 1


def build(audit: Any) -> dict[str, Any]:
    """Report data (deterministic part): header, verdict counts, every item's numbers."""
    pool = audit._pool
    order = {c.nodename: i for i, c in enumerate(audit.checks)}
    items = [audit.results[name].as_dict() for name in sorted(audit.results, key=lambda n: order.get(n, 0))]
    data: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "model": {
            "name": audit.options.model,
            "fingerprint": pool.generator.fingerprint if pool else None,
            "settings": pool.generator.settings if pool else None,
        },
        "judge": {"name": pool.judge.name, "fingerprint": pool.judge.fingerprint, "outputs": list(pool.judge.outputs)} if pool else None,
        "spec": {"path": audit.loaded.display, "sha256": audit.loaded.sha256, "confidence": audit.spec.confidence},
        "seed": audit.options.seed,
        "samples": {"generated": pool.stats.generated, "invalid": pool.stats.invalid} if pool else {"generated": 0, "invalid": 0},
        "verdicts": audit.verdict_counts(),
        "items": items,
        "errors": dict(sorted(audit.errors.items())),
        "versions": _versions(),
    }
    return data


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "pytest-synthcxr": __version__}
    for name in ("pytest", "numpy", "scipy", "statsmodels", "torch"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _atomic_write(path: Path, payload: bytes) -> Path:
    """Write via a temporary file and rename, so a crash never leaves half a report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(data: dict[str, Any], path: Path) -> Path:
    return _atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def write_csv(audit: Any, path: Path) -> Path:
    table = audit._pool.full_table() if audit._pool is not None else None
    text = table.to_csv(index=False, float_format="%.6f") if table is not None else ""
    return _atomic_write(path, text.encode())


def _templates_dir() -> Path:
    packaged = resources.files("pytest_synthcxr").joinpath("templates")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "templates"  # editable install: the repo's folder


def _png_data_uri(image: Any) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def interval_plot(groups: list[dict[str, Any]], threshold: float | None = None, width: int = 460) -> dict[str, Any]:
    """Geometry of a per-subgroup interval plot on a 0..1 axis (drawn as inline SVG)."""
    left, right, row = 150, 20, 18
    span = width - left - right
    rows = []
    for i, g in enumerate(groups):
        y = 24 + i * row
        rows.append(
            {
                "label": g["label"],
                "y": y,
                "x": left + g["rate"] * span,
                "x0": left + g["low"] * span,
                "x1": left + g["high"] * span,
                "text": f"{g['rate']:.2f} [{g['low']:.2f}, {g['high']:.2f}] n={g['n']}",
            }
        )
    ticks = [{"x": left + t * span, "label": f"{t:.1f}"} for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    return {"width": width, "height": 36 + len(groups) * row, "rows": rows, "ticks": ticks, "left": left, "span": span}


def write_html(data: dict[str, Any], audit: Any, path: Path) -> Path:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_templates_dir())),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
    )
    pool = audit._pool
    cells = []
    if pool is not None:
        for cell in sorted(pool.cells(), key=lambda c: (c.named, c.finding or "~", c.subgroup)):
            thumbs = pool.thumbnails_of(cell)
            cells.append(
                {
                    "key": cell.key,
                    "prompt": cell.prompt,
                    "images": [_png_data_uri(t) for t in thumbs],
                    "invalid": pool.invalid_count(cell),
                }
            )
    plots = {item["check"]: interval_plot(item["groups"]) for item in data["items"] if item["groups"]}
    html = env.get_template("report.html.j2").render(
        data=data,
        cells=cells,
        plots=plots,
        created=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        wall_seconds=time.time() - audit.started,
        timings=pool.stats if pool is not None else None,
    )
    return _atomic_write(path, html.encode("utf-8"))
