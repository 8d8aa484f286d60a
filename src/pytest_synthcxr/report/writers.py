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

__all__ = ["SCHEMA_VERSION", "BaselineError", "OutputError", "build", "check_output", "load_schema", "write_csv", "write_html", "write_json"]


class OutputError(Exception):
    """An output path that cannot be written; str() is the one line shown to the user."""


def build(audit: Any, baseline: Path | None = None) -> dict[str, Any]:
    """Report data of the audit; with a baseline JSON, each item also carries its change since then.
    The baseline read and validated at start-up (``audit.baseline_data``) is used when there is one,
    so a baseline deleted or changed mid-run cannot lose the finished report."""
    from . import baseline as compare
    from .data import build as build_data

    data = build_data(audit)
    path = baseline if baseline is not None else getattr(audit.options, "baseline", None)
    if path is not None:
        old = getattr(audit, "baseline_data", None) if baseline is None else None
        compare.compare(data, old if old is not None else compare.load(Path(path), SCHEMA_VERSION), Path(path).name)
    return data


def _kind(path: Path) -> str:
    import stat

    mode = path.stat().st_mode
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def write_target(path: Path, option: str = "output") -> Path:
    """The file a write to `path` goes to: the path itself, or the regular file an existing symlink
    points at (written through, the link kept). Raises OutputError (one line) for a folder, a FIFO,
    a device or a link to one: those are never replaced."""
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    if target.is_dir():
        raise OutputError(f"synthcxr: {option} {path}: is a folder; give a file path")
    if target.exists() and not target.is_file():
        raise OutputError(f"synthcxr: {option} {path}: is {_kind(target)}; only regular files are written (it is never replaced)")
    return target


def check_output(path: Path, option: str, *, taken: dict[Path, str]) -> None:
    """Everything about an output path that can fail before any image is generated: a folder, a
    FIFO or a device, an input of the run (spec, baseline, reference), another output, a parent
    that cannot be created or written. `taken` maps resolved paths to their role; this one is added."""
    target = write_target(path, option)
    key = target.resolve()
    if key in taken:
        raise OutputError(f"synthcxr: {option} {path}: is also the {taken[key]}; give each output its own file")
    taken[key] = option
    parent = target.parent
    while not parent.exists():  # written under a folder created on write: the first existing one must be writable
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"synthcxr: {option} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"synthcxr: {option} {path}: the folder {parent} is not writable")


def _atomic_write(path: Path, payload: bytes) -> Path:
    """Write via a temporary file and rename, so a crash never leaves half a report. Only a regular
    file is replaced; an existing symlink is written through (see write_target)."""
    path = write_target(Path(path))
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
    size_of = getattr(pool.generator, "original_size", None)
    if size_of is not None and "seed" in table.columns:  # pre-generated images: the size before resizing
        table["original_size"] = [size_of(p, int(s)) for p, s in zip(table["prompt"], table["seed"])]
    return _atomic_write(path, table.to_csv(index=False, lineterminator="\n").encode("utf-8"))


def write_html(data: dict[str, Any], audit: Any, path: Path) -> Path:
    from .html import render

    return _atomic_write(path, render(data, audit).encode("utf-8"))
