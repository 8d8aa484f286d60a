"""pytest hooks only: options, turning the audit spec into items, and writing the report.

This module is loaded by every pytest run in the environment, so it imports nothing heavy:
the spec schema, statistics, torch and the report are imported only once an audit is requested.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .items import AUDIT_KEY, FAMILY_MARKERS, AuditItem
from .options import baseline_option, cache_dir, device_option, model_in_spec, path_option, reference_option, seed_option, setting, spec_location

if TYPE_CHECKING:
    from .session import AuditSession

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("synthcxr", "synthetic chest X-ray generator audit")
    options = [
        ("model", None, "model alias or path to audit (default: 'model' in the spec; none: no audit)"),
        ("spec", None, "audit spec TOML (default: [tool.synthcxr] in pyproject.toml, else synthcxr.toml in the rootdir, else the built-in spec)"),
        ("report", None, "write the self-contained HTML audit report here (default: none)"),
        ("json", None, "write the audit results as JSON here (default: none)"),
        ("csv", None, "write every sample's judge scores as CSV here (default: none)"),
        ("baseline", None, "a previous run's --synthcxr-json to compare with: deltas with intervals, regressions flagged (default: none)"),
        ("seed", seed_option, "base seed of every generated sample (default: 'seed' in the spec, else 0)"),
        ("device", device_option, "torch device for generator and judges: auto, cpu, mps, cuda[:N] (default: auto)"),
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
    config.pluginmanager.import_plugin("pytest_synthcxr.plugin.fixtures")  # cheap: fixtures load models when used
    for family, text in FAMILY_MARKERS.items():
        config.addinivalue_line("markers", f"{family}: synthcxr {text}")
    if config.option.help or getattr(config.option, "version", False):
        return
    spec_path = spec_location(config)
    model = setting(config, "model")
    source = "--synthcxr-model"
    if model is None:
        model = model_in_spec(spec_path)
        source = f"'model' in {spec_path}"
    if model is None:
        return  # nothing asked for: the plugin adds nothing to this run
    from ..models.aliases import ModelError
    from ..models.loading import check_model
    from .session import AuditSession, RunOptions
    from ..spec.schema import SpecError, load_spec

    allow_pickle = bool(config.option.synthcxr_allow_pickle or config.getini("synthcxr_allow_pickle"))
    try:
        loaded = load_spec(spec_path)
        check_model(model, source, loaded, allow_pickle=allow_pickle)
    except (SpecError, ModelError) as exc:
        raise pytest.UsageError(str(exc)) from None
    seed = setting(config, "seed", seed_option)
    options = RunOptions(
        model=model,
        seed=loaded.spec.seed if seed is None else seed,
        device=setting(config, "device", device_option) or "auto",
        report=path_option(config, "report"),
        json=path_option(config, "json"),
        csv=path_option(config, "csv"),
        allow_pickle=allow_pickle,
        baseline=baseline_option(config),
        cache_dir=cache_dir(config),
        reference=reference_option(config, loaded),
    )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    log = (lambda line: reporter.write_line(line)) if reporter is not None else None
    from ..report.baseline import BaselineError

    try:
        audit = AuditSession(loaded, options, log=log)
    except (BaselineError, SpecError) as exc:  # a relative bound without a usable baseline; reference-measured judge error without a reference
        raise pytest.UsageError(str(exc)) from None
    config.stash[AUDIT_KEY] = audit
    config.pluginmanager.register(_AuditPlugin(audit), "synthcxr-audit")
    if config.pluginmanager.hasplugin("html"):  # pytest-html: link to the audit report, per-item numbers
        from ..report.pytest_html_hooks import PytestHtmlHooks

        config.pluginmanager.register(PytestHtmlHooks(audit, config), "synthcxr-pytest-html")


class AuditCollector(pytest.Collector):
    """Parent of the audit items, so their ids read synthcxr::bias[...]."""

    def __init__(self, *, audit: "AuditSession", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.audit = audit

    def collect(self) -> list[pytest.Item]:
        items = [AuditItem.from_parent(self, name=check.nodename, check=check, audit=self.audit) for check in self.audit.checks]
        if self.audit.spec.fuzz:  # [[fuzz]] sections: hypothesis searches, not score-table checks
            from ..checks.fuzz import build_fuzz_checks
            from .fuzz_item import FuzzItem

            items += [FuzzItem.from_parent(self, name=c.nodename, check=c, audit=self.audit) for c in build_fuzz_checks(self.audit.spec)]
        return items


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
            from ..sampling.plan import extra_lines, format_plan, plan

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
