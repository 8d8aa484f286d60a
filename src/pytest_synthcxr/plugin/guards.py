"""Start-up checks of an audit: everything about the run's inputs and outputs that can fail is
checked before the first image is generated, each failure one line (pytest.UsageError).

- the device exists (``--synthcxr-device=cuda`` on a machine without one);
- every output path (``--synthcxr-report/json/csv``) can be written and collides with nothing:
  not a folder, FIFO or device, not the spec, the baseline, the reference manifest or another output;
- the baseline is read and validated against the report schema once; the audit keeps that copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def check_device(device: str) -> None:
    from ..models.device import device_problem

    problem = device_problem(device)
    if problem:
        raise pytest.UsageError(problem)


def check_outputs(options: Any, spec_path: Path | None) -> None:
    from ..report.writers import OutputError, check_output

    taken: dict[Path, str] = {}
    inputs = {"spec file": spec_path, "baseline (--synthcxr-baseline)": options.baseline}
    reference = getattr(options.reference, "source", None)
    if isinstance(reference, (str, Path)) and Path(reference).exists():
        inputs["reference set"] = Path(reference)
    for role, path in inputs.items():
        if path is not None and Path(path).exists():
            taken[Path(path).resolve()] = role
    try:
        for name in ("report", "json", "csv"):
            path = getattr(options, name)
            if path is not None:
                check_output(Path(path), f"--synthcxr-{name}", taken=taken)
    except OutputError as exc:
        raise pytest.UsageError(str(exc)) from None


def load_baseline(path: Path | None) -> dict[str, Any] | None:
    """The baseline's data, read and validated once (it may change or vanish during the run)."""
    if path is None:
        return None
    from ..report.baseline import load
    from ..report.schema import SCHEMA_VERSION

    return load(path, SCHEMA_VERSION)  # BaselineError: one line, the callers show it


def check_explicit_spec(config: pytest.Config) -> None:
    """An explicit --synthcxr-spec must exist and be valid even when no model is given (a typo in
    CI must not turn the audit into a silent green run)."""
    value = getattr(config.option, "synthcxr_spec", None)
    if not value:
        return
    path = Path(value).absolute()
    from ..spec.schema import SpecError, load_spec  # its own one line for a missing file

    try:
        load_spec(path)
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None
