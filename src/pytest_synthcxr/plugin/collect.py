"""Audit spec files are pytest test files (pytest's "non-python test files" pattern).

A ``synthcxr.toml`` or ``*.synthcxr.toml`` is collected when pytest is pointed at it, at its
folder, or at a folder listed in ``testpaths``; its items have ids under the file
(``audits/roentgen.synthcxr.toml::bias[...]``), so a pasted id, ``--lf``, ``--ff``, ``--sw``, ``-k``
and xdist all work. A bare ``pytest`` that recurses from the invocation folder (no paths given,
no ``testpaths``) never starts an audit: a project's unit tests stay unit tests.

``--synthcxr-model`` with no audit file collected audits the spec found the usual way
(``--synthcxr-spec``, ``[tool.synthcxr]`` in pyproject.toml, ``synthcxr.toml``, else the built-in
spec) under the id prefix ``synthcxr::``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .items import RUN_KEY, AuditItem
from .options import (
    baseline_option,
    cache_dir,
    device_option,
    model_in_spec,
    path_option,
    reference_option,
    seed_option,
    setting,
)

if TYPE_CHECKING:
    from .session import AuditSession

SPEC_NAME = "synthcxr.toml"
SPEC_SUFFIX = ".synthcxr.toml"
#: the id prefix of the audit run by --synthcxr-model alone (no audit file collected)
MODEL_ONLY_ID = "synthcxr"
#: placeholder in an output path, replaced by the audit file's stem (several audit files in one run)
SPEC_PLACEHOLDER = "{spec}"


class AuditSetupError(Exception):
    """An audit file that cannot run (bad spec, unknown model, bad reference); str() is one line."""


def is_spec_file(path: Path) -> bool:
    return path.name == SPEC_NAME or path.name.endswith(SPEC_SUFFIX)


def spec_stem(path: Path | None) -> str:
    if path is None:
        return "builtin"
    name = path.name
    for suffix in (SPEC_SUFFIX, ".toml"):
        if name.endswith(suffix) and name != suffix.lstrip("."):
            return name[: -len(suffix)]
    return path.parent.name or "synthcxr"


def open_audit(config: pytest.Config, spec_path: Path | None, model: str | None, source: str, *, several: bool = False) -> "AuditSession":
    """Everything that can be checked before a test runs, then the audit session of one spec.

    Raises AuditSetupError (one line) for a bad spec, model, baseline or reference.
    """
    from ..models.aliases import ModelError
    from ..models.loading import check_model
    from ..report.baseline import BaselineError
    from ..spec.schema import SpecError, load_spec
    from .session import AuditSession, RunOptions

    if model is None:
        raise AuditSetupError(
            f"synthcxr: {spec_path}: no model to audit: set model = \"...\" in the file (e.g. model = \"phantom\") "
            "or pass --synthcxr-model"
        )
    allow_pickle = bool(config.option.synthcxr_allow_pickle or config.getini("synthcxr_allow_pickle"))
    try:
        loaded = load_spec(spec_path)
        check_model(model, source, loaded, allow_pickle=allow_pickle)
        baseline_model = setting(config, "baseline_model")
        if baseline_model is not None:  # the released model: checked like the candidate, before any test
            check_model(baseline_model, "--synthcxr-baseline-model", loaded, allow_pickle=allow_pickle)
        seed = setting(config, "seed", seed_option)
        outputs = {name: _output_path(config, name, spec_path, several) for name in ("report", "json", "csv")}
        options = RunOptions(
            model=model,
            seed=loaded.spec.seed if seed is None else seed,
            device=setting(config, "device", device_option) or "auto",
            allow_pickle=allow_pickle,
            baseline=baseline_option(config),
            baseline_model=baseline_model,
            cache_dir=cache_dir(config),
            reference=reference_option(config, loaded),
            **outputs,
        )
        return AuditSession(loaded, options, log=terminal_writer(config))
    except (SpecError, ModelError, BaselineError) as exc:
        raise AuditSetupError(str(exc)) from None
    except pytest.UsageError as exc:  # the option readers' one-line errors
        raise AuditSetupError(str(exc)) from None


def _output_path(config: pytest.Config, name: str, spec_path: Path | None, several: bool) -> Path | None:
    path = path_option(config, name)
    if path is None:
        return None
    if SPEC_PLACEHOLDER in str(path):
        return Path(str(path).replace(SPEC_PLACEHOLDER, spec_stem(spec_path)))
    if several:
        raise AuditSetupError(
            f"synthcxr: several audit files in one run would all write --synthcxr-{name}={path}: put {SPEC_PLACEHOLDER} "
            f"in the path (e.g. {path.with_name(SPEC_PLACEHOLDER + path.suffix)}), replaced by each file's name"
        )
    return path


def terminal_writer(config: pytest.Config) -> Any:
    """A line writer that finds pytest's terminal reporter when it writes (the reporter is
    registered after pytest_configure, so it cannot be looked up once at set-up)."""

    def write(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            with uncaptured(config)():
                reporter.ensure_newline()
                reporter.write_line(line)

    return write


def uncaptured(config: pytest.Config) -> Any:
    """A context that lets a line through pytest's output capture (items run captured)."""
    import contextlib

    def context() -> Any:
        capman = config.pluginmanager.getplugin("capturemanager")
        return capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()

    return context


def audit_items(parent: pytest.Collector, audit: "AuditSession") -> list[pytest.Item]:
    # the id given as a string is parsed like a pasted one (name and [params]), so --lf matches it
    items: list[pytest.Item] = [
        AuditItem.from_parent(parent, name=c.nodename, nodeid=f"{parent.nodeid}::{c.nodename}", check=c, audit=audit) for c in audit.checks
    ]
    if audit.spec.fuzz:  # [[fuzz]] sections: hypothesis searches, not score-table checks
        from ..checks.fuzz import build_fuzz_checks
        from .fuzz_item import FuzzItem

        items += [
            FuzzItem.from_parent(parent, name=c.nodename, nodeid=f"{parent.nodeid}::{c.nodename}", check=c, audit=audit)
            for c in build_fuzz_checks(audit.spec)
        ]
    if not items:
        raise AuditSetupError(f"synthcxr: {audit.loaded.display}: the spec defines no audit items (nothing would be checked)")
    return items


class _OneLineFailure:
    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, AuditSetupError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)  # type: ignore[misc]


class SpecFile(_OneLineFailure, pytest.File):
    """An audit spec file: one item per check of its spec."""

    def collect(self) -> list[pytest.Item]:
        run = self.config.stash[RUN_KEY]
        audit = run.open_file(self.path)
        return audit_items(self, audit)


class AuditCollector(_OneLineFailure, pytest.Collector):
    """Parent of the items of --synthcxr-model alone (no audit file collected): ids synthcxr::..."""

    def __init__(self, *, audit: "AuditSession", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.audit = audit

    def collect(self) -> list[pytest.Item]:
        return audit_items(self, self.audit)


def model_of(config: pytest.Config, spec_path: Path | None) -> tuple[str | None, str]:
    """The model to audit and where it was named: --synthcxr-model, else the spec's 'model', else the ini key."""
    model = getattr(config.option, "synthcxr_model", None)
    if model:
        return model, "--synthcxr-model"
    try:
        model = model_in_spec(spec_path)
    except pytest.UsageError as exc:
        raise AuditSetupError(str(exc)) from None
    if model:
        return model, f"'model' in {spec_path}"
    model = config.getini("synthcxr_model")
    return (model or None), "ini key synthcxr_model"
