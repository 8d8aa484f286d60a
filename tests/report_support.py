"""A minimal JSON report that satisfies report_schema.json, for tests that need a baseline file
with chosen items (a baseline is validated against the schema when an audit starts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def minimal_item(check: str, estimate: float | None = 0.1, family: str = "bias") -> dict[str, Any]:
    anchor = "item-" + "".join(ch if ch.isalnum() or ch in "_-" else "-" for ch in check)
    return {
        "check": check, "id": anchor, "family": family, "quantity": "q", "subject": None,
        "estimate": estimate, "low": estimate, "high": estimate, "n": 10, "threshold": 0.1,
        "direction": "max", "verdict": "pass", "confidence": 0.95, "detail": "", "groups": [],
        "cells": [], "samples_per_cell": 10, "bias": None, "marked": [], "baseline": None,
    }  # fmt: skip


def minimal_report(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "model": {"name": "phantom", "fingerprint": None, "settings": None},
        "judge": None,
        "spec": {"path": "synthcxr.toml", "sha256": "0" * 64, "confidence": 0.95, "inconclusive": "fail", "samples_per_cell": 10,
                 "findings": [], "subgroups": {"sex": [], "race": [], "reference": {}}},
        "seed": 0,
        "samples": {"total": 0, "valid": 0, "invalid": 0, "cells": 0},
        "verdicts": {"pass": len(items), "fail": 0, "inconclusive": 0},
        "items": items, "errors": {}, "rates": [], "entropy": [], "hallucination": [], "cells": [],
        "invalid": {"count": 0, "samples": []}, "baseline": None,
        "versions": {"python": "3", "pytest-synthcxr": "0"},
    }  # fmt: skip


def write_report(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(minimal_report(items)))
    return path
