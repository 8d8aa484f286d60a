"""pytest hooks only: options, turning the audit spec into items, and writing the report.

This module is loaded by every pytest run in the environment, so it imports nothing heavy:
the spec schema, statistics, torch and the report are imported only once an audit is requested.
"""

from __future__ import annotations

import argparse
import re
import tomllib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .checks import Check, Result
    from .session import AuditSession

FAMILY_MARKERS = {
    "bias": "subgroup disparity checks (TPR, selection rate)",
    "validity": "does the model draw what it was asked (sensitivity, FPR, AUROC)",
    "uncertainty": "judge uncertainty (predictive entropy) checks",
    "hallucination": "out-of-training probe detection (e.g. COVID-19) checks",
    "versus-real": "synthetic-minus-real bounds on judge metrics (needs a reference set)",
    "fidelity": "Frechet distance of judge features, synthetic vs reference",
    "diversity": "MS-SSIM between images of the same prompt",
    "memorization": "synthetic images nearly identical to a reference image",
    "demographic": "does the image show the sex / race its prompt named (attribute judges)",
    "fuzz": "property-based prompt fuzzing (hypothesis search over counterfactual prompt pairs)",
}
AUDIT_KEY = pytest.StashKey["AuditSession"]()
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class SynthCXRInconclusiveWarning(pytest.PytestWarning):
    """An audit item whose interval still straddles its threshold after the sample budget."""


class SynthCXRJudgeWarning(pytest.PytestWarning):
    """An audit item whose verdict reads a judge output that the labelled reference set shows
    biased across the subgroups it judges, or uncalibrated."""


class AuditFailure(Exception):
    """A failed (or inconclusive, when configured to fail) audit item; str() is its one-line message."""


def _seed(value: str) -> int:
    try:
        seed = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {value!r}") from None
    if seed < 0:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {value!r}")
    return seed


def _device(value: str) -> str:
    if not _DEVICE.match(value):
        raise argparse.ArgumentTypeError(f"device must be auto, cpu, mps, cuda or cuda:N, got {value!r}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("synthcxr", "synthetic chest X-ray generator audit")
    options = [
        ("model", None, "model alias or path to audit (default: 'model' in the spec; none: no audit)"),
        ("spec", None, "audit spec TOML (default: [tool.synthcxr] in pyproject.toml, else synthcxr.toml in the rootdir, else the built-in spec)"),
        ("report", None, "write the self-contained HTML audit report here (default: none)"),
        ("json", None, "write the audit results as JSON here (default: none)"),
        ("csv", None, "write every sample's judge scores as CSV here (default: none)"),
        ("baseline", None, "a previous run's --synthcxr-json to compare with: deltas with intervals, regressions flagged (default: none)"),
        ("seed", _seed, "base seed of every generated sample (default: 'seed' in the spec, else 0)"),
        ("device", _device, "torch device for generator and judges: auto, cpu, mps, cuda[:N] (default: auto)"),
        ("cache-dir", None, "sample cache folder, shareable between runs, workers and CI jobs (default: synthcxr/ under pytest's cache dir)"),
        ("reference", None, "reference images to compare with: a manifest CSV, a MIMIC-CXR-JPG or CheXpert folder or CSV, or phantom[:N] (default: 'reference' in the spec; none: no comparison)"),
    ]
    for name, kind, help_text in options:
        dest = f"synthcxr_{name.replace('-', '_')}"
        group.addoption(f"--synthcxr-{name}", dest=dest, default=None, type=kind, help=help_text)
        parser.addini(dest, f"ini equivalent of --synthcxr-{name}", default=None)
    group.addoption(
        "--synthcxr-no-cache",
        dest="synthcxr_no_cache",
        action="store_true",
        default=False,
        help="neither read nor write the sample cache (every image is generated and judged afresh)",
    )
    group.addoption(
        "--synthcxr-plan",
        dest="synthcxr_plan",
        action="store_true",
        default=False,
        help="print every item's cells and sample budget, and the most images the audit can need; generate nothing",
    )
    group.addoption(
        "--synthcxr-allow-pickle",
        dest="synthcxr_allow_pickle",
        action="store_true",
        default=None,
        help="allow loading pickle weight files (.bin, .pt, .ckpt), which can run code (default: safetensors only)",
    )
    parser.addini("synthcxr_allow_pickle", "ini equivalent of --synthcxr-allow-pickle", type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "synthcxr: an item of the synthetic CXR generator audit")
    config.pluginmanager.import_plugin("pytest_synthcxr.fixtures")  # cheap: fixtures load models when used
    for family, text in FAMILY_MARKERS.items():
        config.addinivalue_line("markers", f"{family}: synthcxr {text}")
    if config.option.help or getattr(config.option, "version", False):
        return
    spec_path = _spec_path(config)
    model = _setting(config, "model")
    source = "--synthcxr-model"
    if model is None:
        model = _model_in_spec(spec_path)
        source = f"'model' in {spec_path}"
    if model is None:
        return  # nothing asked for: the plugin adds nothing to this run
    from .models import ModelError, check_model
    from .session import AuditSession, RunOptions
    from .spec import SpecError, load_spec

    allow_pickle = bool(config.option.synthcxr_allow_pickle or config.getini("synthcxr_allow_pickle"))
    try:
        loaded = load_spec(spec_path)
        check_model(model, source, loaded, allow_pickle=allow_pickle)
    except (SpecError, ModelError) as exc:
        raise pytest.UsageError(str(exc)) from None
    seed = _setting(config, "seed", _seed)
    options = RunOptions(
        model=model,
        seed=loaded.spec.seed if seed is None else seed,
        device=_setting(config, "device", _device) or "auto",
        report=_path(config, "report"),
        json=_path(config, "json"),
        csv=_path(config, "csv"),
        allow_pickle=allow_pickle,
        baseline=_baseline(config),
        cache_dir=cache_dir(config),
        reference=_reference(config, loaded),
    )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    log = (lambda line: reporter.write_line(line)) if reporter is not None else None
    from .report.baseline import BaselineError

    try:
        audit = AuditSession(loaded, options, log=log)
    except (BaselineError, SpecError) as exc:  # a relative bound without a usable baseline; reference-measured judge error without a reference
        raise pytest.UsageError(str(exc)) from None
    config.stash[AUDIT_KEY] = audit
    config.pluginmanager.register(_AuditPlugin(audit), "synthcxr-audit")
    if config.pluginmanager.hasplugin("html"):  # pytest-html: link to the audit report, per-item numbers
        from .report.pytest_html_hooks import PytestHtmlHooks

        config.pluginmanager.register(PytestHtmlHooks(audit, config), "synthcxr-pytest-html")


def _setting(config: pytest.Config, name: str, parse: Any = None) -> Any:
    value = getattr(config.option, f"synthcxr_{name}", None)
    if value is None:
        value = config.getini(f"synthcxr_{name}") or None
        if value is not None and parse is not None:
            try:
                value = parse(value)
            except argparse.ArgumentTypeError as exc:
                raise pytest.UsageError(f"synthcxr: ini key synthcxr_{name}: {exc}") from None
    return value


def _path(config: pytest.Config, name: str) -> Path | None:
    if getattr(config.option, f"synthcxr_{name}", None):
        return Path(getattr(config.option, f"synthcxr_{name}")).absolute()
    ini = config.getini(f"synthcxr_{name}")
    return (config.rootpath / ini) if ini else None


def cache_dir(config: pytest.Config) -> Path | None:
    """The sample cache folder (also home of the fuzzing database); None with --synthcxr-no-cache
    or when pytest's cache provider is disabled and no folder is given."""
    if config.option.synthcxr_no_cache:
        return None
    given = _path(config, "cache_dir")
    if given is not None:
        return given
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
    return cache.mkdir("synthcxr") if cache is not None else None


def _baseline(config: pytest.Config) -> Path | None:
    """The baseline JSON, checked now: a missing or foreign file is a usage error before any test runs."""
    path = _path(config, "baseline")
    if path is not None:
        from .report.baseline import BaselineError, load
        from .report.schema import SCHEMA_VERSION

        try:
            load(path, SCHEMA_VERSION)
        except BaselineError as exc:
            raise pytest.UsageError(str(exc)) from None
    return path


def _reference(config: pytest.Config, loaded: Any) -> Any:
    """The reference set's manifest, read now (a bad file is a usage error before any test runs):
    --synthcxr-reference (relative to the working folder), else the ini key, else the spec's."""
    from .reference import ReferenceError, check_coverage, load_reference, needs_reference

    value, base = config.option.synthcxr_reference, config.invocation_params.dir
    if value is None and config.getini("synthcxr_reference"):
        value, base = config.getini("synthcxr_reference"), config.rootpath
    if value is None and loaded.spec.reference is not None:
        value, base = loaded.spec.reference, loaded.path.parent if loaded.path else config.rootpath
    try:
        if value is None:
            needs_reference(loaded.spec)
            return None
        ref = load_reference(value, base, seed=loaded.spec.seed, max_images=loaded.spec.reference_samples, findings=loaded.spec.findings)
        check_coverage(loaded.spec, ref)
        return ref
    except ReferenceError as exc:
        raise pytest.UsageError(str(exc)) from None


def _spec_path(config: pytest.Config) -> Path | None:
    given = _path(config, "spec")
    if given is not None:
        return given
    from .specfile import find_spec_file

    return find_spec_file(config.rootpath)


def _model_in_spec(path: Path | None) -> str | None:
    """'model' from the spec file, read cheaply (full validation happens only if an audit runs)."""
    if path is None or not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise pytest.UsageError(f"synthcxr: {path}: invalid TOML: {exc}") from None
    table = data.get("tool", {}).get("synthcxr", data if path.name != "pyproject.toml" else {})
    model = table.get("model") if isinstance(table, dict) else None
    return model if isinstance(model, str) else None


class AuditCollector(pytest.Collector):
    """Parent of the audit items, so their ids read synthcxr::bias[...]."""

    def __init__(self, *, audit: "AuditSession", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.audit = audit

    def collect(self) -> list[pytest.Item]:
        items = [AuditItem.from_parent(self, name=check.nodename, check=check, audit=self.audit) for check in self.audit.checks]
        if self.audit.spec.fuzz:  # [[fuzz]] sections: hypothesis searches, not score-table checks
            from .checks.fuzz import build_fuzz_checks
            from .fuzz_item import FuzzItem

            items += [FuzzItem.from_parent(self, name=c.nodename, check=c, audit=self.audit) for c in build_fuzz_checks(self.audit.spec)]
        return items


class AuditItem(pytest.Item):
    def __init__(self, *, check: "Check", audit: "AuditSession", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.audit = audit
        self.add_marker("synthcxr")
        self.add_marker(check.family)

    def runtest(self) -> None:
        result = self.audit.evaluate(self.check)
        self._record(result)
        for reason in self.audit.judge_concerns(self.check):
            warnings.warn(SynthCXRJudgeWarning(f"{self.name}: {reason}"), stacklevel=1)
        if result.verdict == "pass":
            return
        message = result.message()
        if result.verdict == "fail":
            raise AuditFailure(message)
        policy = self.audit.spec.inconclusive
        if policy == "xfail":
            pytest.xfail(message)
        elif policy == "skip":
            pytest.skip(message)
        elif policy == "warn":
            warnings.warn(SynthCXRInconclusiveWarning(f"{self.name}: {message}"), stacklevel=1)
        else:
            raise AuditFailure(message)

    def _record(self, result: "Result") -> None:
        e = result.estimate
        self.user_properties += [
            ("verdict", result.verdict),
            ("estimate", f"{e.value:.6g}"),
            ("ci_low", f"{e.low:.6g}"),
            ("ci_high", f"{e.high:.6g}"),
            ("threshold", f"{result.threshold:g}"),
            ("n", str(e.n)),
        ]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, AuditFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"synthcxr: {self.name}"


class _AuditPlugin:
    """Hooks that only matter while an audit runs (registered by pytest_configure)."""

    def __init__(self, audit: "AuditSession") -> None:
        self.audit = audit
        self.written: list[Path] = []
        self.controller = False  # the pytest-xdist controller: workers run the items and write the files

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.controller = session.config.pluginmanager.getplugin("dsession") is not None

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
        # tryfirst: added before -k / -m deselection runs, so both apply to audit items
        collector = AuditCollector.from_parent(session, name="synthcxr", nodeid="synthcxr", path=config.rootpath, audit=self.audit)
        # the public collection hooks, so reporters count these items like collected ones
        session.ihook.pytest_collectstart(collector=collector)
        report = session.ihook.pytest_make_collect_report(collector=collector)
        session.ihook.pytest_collectreport(report=report)
        if report.passed:
            items.extend(report.result)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # after -k / -m deselection: only the selected checks are sampled
        self.audit.selected = [item.check for item in session.items if isinstance(item, AuditItem) and item.check.family != "fuzz"]
        if session.config.option.synthcxr_plan:
            from .plan import extra_lines, format_plan, plan

            spec = self.audit.spec
            rows, total = plan(
                self.audit.selected, sequential=spec.sampling == "sequential", first_round=spec.first_round,
                alpha=1 - spec.confidence, power=spec.power, margin=spec.margin,
            )
            fuzz = [item.check for item in session.items if isinstance(item, AuditItem) and item.check.family == "fuzz"]
            reference = self.audit.options.reference
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            lines = format_plan(rows, total, power=spec.power, margin=spec.margin) + extra_lines(fuzz, len(reference) if reference is not None else None)
            for line in lines:
                reporter.write_line(line) if reporter else print(line)
            pytest.exit("synthcxr: plan printed, nothing generated", returncode=pytest.ExitCode.OK)

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        o = self.audit.options
        return [f"synthcxr: model {o.model}, spec {self.audit.loaded.display}, seed {o.seed}, {len(self.audit.checks)} checks"]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # runs after interrupts and -x too: whatever finished is written
        if (self.audit.results or self.audit.errors) and not self.controller:
            self.written = self.audit.write_outputs()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.failed and report.nodeid.startswith("synthcxr::") and not self.controller:
            name = report.nodeid.split("::", 1)[1]
            if name not in self.audit.results:
                self.audit.errors[name] = str(report.longrepr).splitlines()[-1] if report.longrepr else "error"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.controller:
            o = self.audit.options
            files = [str(p) for p in (o.report, o.json, o.csv) if p is not None]
            terminalreporter.section("synthcxr audit")
            terminalreporter.write_line(
                "audited by the xdist workers, sharing the sample cache"
                + (f" in {o.cache_dir}" if o.cache_dir else " (no cache: each worker generated its own samples)")
                + (f"; each wrote the same numbers to {', '.join(files)}" if files else "")
            )
            return
        if not (self.audit.results or self.audit.errors):
            return
        terminalreporter.section("synthcxr audit")
        counts = self.audit.verdict_counts()
        terminalreporter.write_line(", ".join(f"{v} {k}" for k, v in counts.items()))
        stats = self.audit._pool.stats if self.audit._pool is not None else None
        if stats is not None:
            terminalreporter.write_line(
                f"{stats.generated} images generated ({stats.invalid} invalid), "
                f"generation {stats.generation_seconds:.1f}s, judging {stats.judge_seconds:.1f}s"
            )
        if self.audit.spec.fuzz:
            from .fuzz_item import fuzz_summary

            fuzz_line = fuzz_summary(terminalreporter.config)
            if fuzz_line:
                terminalreporter.write_line(fuzz_line)
        cache = self.audit.cache_summary()
        if cache is not None:
            terminalreporter.write_line(
                f"sample cache: {cache['hits']} hits, {cache['misses']} misses, {cache['samples']} samples, "
                f"{cache['size_bytes'] / 2**20:.1f} MiB in {cache['dir']}"
            )
        for path in self.written:
            terminalreporter.write_line(f"report written: {path}")
