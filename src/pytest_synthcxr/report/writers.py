"""The audit report: a plain data structure first (``data``), then JSON, CSV and one self-contained
HTML file (``html``), and the comparison with a previous run (``baseline``).

JSON holds only what the spec, model, seed (and baseline file) determine: no dates, no timings,
so the same run gives byte-identical JSON; its layout is ``report_schema.json`` (versioned by
``SCHEMA_VERSION``). The HTML adds the date, wall time and images.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from .baseline import BaselineError
from .schema import SCHEMA_VERSION, load_schema

__all__ = ["SCHEMA_VERSION", "BaselineError", "build", "load_schema", "write_csv", "write_html", "write_json"]


def build(audit: Any, baseline: Path | None = None) -> dict[str, Any]:
    """Report data of the audit; with a baseline JSON, each item also carries its change since then."""
    from . import baseline as compare
    from .data import build as build_data

    data = build_data(audit)
    path = baseline if baseline is not None else getattr(audit.options, "baseline", None)
    if path is not None:
        compare.compare(data, compare.load(Path(path), SCHEMA_VERSION), Path(path).name)
    return data


def _atomic_write(path: Path, payload: bytes) -> Path:
    """Write via a temporary file and rename, so a crash never leaves half a report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _finite(value: Any) -> Any:
    """JSON has no NaN: a number that is not finite (an empty subgroup's rate) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(_finite(data), indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"


def write_json(data: dict[str, Any], path: Path) -> Path:
    return _atomic_write(path, dumps(data).encode("utf-8"))


def write_csv(audit: Any, path: Path) -> Path:
    """One row per generated image: cell, its prompt, index, seed, valid flag, judge probabilities."""
    pool = audit._pool
    table = pool.full_table() if pool is not None else None
    if table is None or len(table) == 0:
        return _atomic_write(path, b"")
    prompts = {c.key: c.prompt for c in pool.cells()}
    table.insert(table.columns.get_loc("valid") + 1, "prompt", table["cell"].map(prompts))
    return _atomic_write(path, table.to_csv(index=False, lineterminator="\n").encode("utf-8"))


def write_html(data: dict[str, Any], audit: Any, path: Path) -> Path:
    from .html import render

    return _atomic_write(path, render(data, audit).encode("utf-8"))
