"""Where the audit spec lives. Separate from spec.py (pydantic) because every pytest run asks."""

from __future__ import annotations

import tomllib
from pathlib import Path


def find_spec_file(rootdir: Path) -> Path | None:
    """pyproject.toml with a [tool.synthcxr] table, else synthcxr.toml, in the rootdir."""
    pyproject = rootdir / "pyproject.toml"
    if pyproject.is_file():
        try:
            if "synthcxr" in tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}):
                return pyproject
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            pass  # not ours to complain about unless it holds our table
    candidate = rootdir / "synthcxr.toml"
    return candidate if candidate.is_file() else None
