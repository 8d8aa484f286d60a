"""The run: every audit of one pytest run (one per collected spec file, or the --synthcxr-model
audit), and the hooks that only matter while audits run: selection, the plan, outputs, the
terminal summary (complete under pytest-xdist too: workers send their figures to the controller).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .collect import MODEL_ONLY_ID, AuditCollector, AuditSetupError, SpecFile, model_of, open_audit, uncaptured
from .items import AUDIT_KEY, AuditItem
from .options import spec_location

if TYPE_CHECKING:
    from .session import AuditSession

#: key of the figures an xdist worker sends to the controller in config.workeroutput
WORKER_OUTPUT = "synthcxr"


class AuditRun:
    """Owns the run's audits; registered as a plugin by pytest_configure."""

    def __init__(self, config: pytest.Config, *, model_only: bool, selected_ids: list[str]) -> None:
        self.config = config
        self.model_only = model_only  # --synthcxr-model given: audit the usual spec if no audit file is collected
        self.selected_ids = selected_ids  # pasted synthcxr::... ids (run only these)
        #: the --synthcxr-model audit, opened (checked) at configure; it runs only if no audit file is collected
        self.pending: AuditSession | None = None
        self.pending_path: Path | None = None
        self.audits: dict[str, AuditSession] = {}
        self.written: list[Path] = []
        self.worker_figures: list[dict[str, Any]] = []
        self.controller = False  # the pytest-xdist controller: workers run the items and write the files

    # ------------------------------------------------------------------ opening audits
    def open_file(self, path: Path) -> "AuditSession":
        key = str(path)
        if key not in self.audits and self.pending is not None and self.pending_path == path:
            self.audits[key] = self._prepare(self.pending)  # the --synthcxr-model audit's own file, collected
            self.pending = None
        if key not in self.audits:
            model, source = model_of(self.config, path)
            self.audits[key] = self._prepare(open_audit(self.config, path, model, source, several=bool(self.audits)))
        return self.audits[key]

    def _prepare(self, audit: "AuditSession") -> "AuditSession":
        from .progress import Progress

        config = self.config
        interval = getattr(config.option, "synthcxr_progress_interval", None) or 30.0
        audit.progress = Progress(
            lambda: config.pluginmanager.get_plugin("terminalreporter"), float(interval), uncaptured=uncaptured(config)
        )
        if AUDIT_KEY not in config.stash:  # fixtures and pytest-html read the first audit
            config.stash[AUDIT_KEY] = audit
            if config.pluginmanager.hasplugin("html"):
                from ..report.pytest_html_hooks import PytestHtmlHooks

                config.pluginmanager.register(PytestHtmlHooks(audit, config), "synthcxr-pytest-html")
        return audit

    # ------------------------------------------------------------------ collection
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.controller = session.config.pluginmanager.getplugin("dsession") is not None

    def open_model_only(self) -> None:
        """--synthcxr-model: open the audit of the usual spec now, so a bad spec, model or
        reference is a usage error before anything is collected."""
        spec_path = spec_location(self.config)
        try:
            model, source = model_of(self.config, spec_path)
            self.pending = open_audit(self.config, spec_path, model, source)
        except AuditSetupError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.pending_path = spec_path if spec_path is not None and spec_path.is_file() else None

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
        # tryfirst: added before -k / -m / --lf deselection runs, so all of them apply to audit items
        audit, self.pending = self.pending, None
        if audit is not None and not any(isinstance(i, AuditItem) for i in items):
            # --synthcxr-model and no audit file collected: audit the usual spec
            if self.pending_path is not None:  # a spec file: ids under it, like a collected audit file
                self.audits[str(self.pending_path)] = self._prepare(audit)
                collector: pytest.Collector = SpecFile.from_parent(session, path=self.pending_path)
            else:
                self.audits[MODEL_ONLY_ID] = self._prepare(audit)
                collector = AuditCollector.from_parent(session, name=MODEL_ONLY_ID, nodeid=MODEL_ONLY_ID, path=config.rootpath, audit=audit)
            # the public collection hooks, so reporters count these items like collected ones
            session.ihook.pytest_collectstart(collector=collector)
            report = session.ihook.pytest_make_collect_report(collector=collector)
            session.ihook.pytest_collectreport(report=report)
            if report.passed:
                items.extend(report.result)
        if self.selected_ids:  # pasted synthcxr::<item> ids: exactly those
            keep = [i for i in items if i.nodeid in self.selected_ids]
            missing = [s for s in self.selected_ids if not any(i.nodeid == s for i in keep)]
            if missing:
                raise pytest.UsageError(f"synthcxr: no audit item {missing[0]!r} (the run's items: {', '.join(sorted(i.nodeid for i in items if isinstance(i, AuditItem))[:5])}, ...)")
            dropped = [i for i in items if i not in keep]
            if dropped:
                config.hook.pytest_deselected(items=dropped)
            items[:] = keep

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # after -k / -m / --lf deselection: only the selected checks are sampled
        for audit in self.audits.values():
            audit.selected = [i.check for i in session.items if isinstance(i, AuditItem) and i.audit is audit and i.check.family != "fuzz"]
        if session.config.option.synthcxr_plan:
            from .plan_view import plan_lines

            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            for key, audit in self.audits.items():
                fuzz = [i.check for i in session.items if isinstance(i, AuditItem) and i.audit is audit and i.check.family == "fuzz"]
                lines = [f"synthcxr plan: {audit.loaded.display}, model {audit.options.model}"] + plan_lines(audit, fuzz, session.config)
                for line in lines:
                    reporter.write_line(line) if reporter else print(line)
            pytest.exit("synthcxr: plan printed, nothing generated", returncode=pytest.ExitCode.OK)

    def pytest_report_collectionfinish(self, config: pytest.Config, start_path: Path, items: list[pytest.Item]) -> list[str]:
        return [
            f"synthcxr: {a.loaded.display}: model {a.options.model}, seed {a.options.seed}, {len(a.checks)} checks"
            for a in self.audits.values()
        ]

    # ------------------------------------------------------------------ results and outputs
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" or not report.failed or self.controller:
            return
        for audit in self.audits.values():
            name = report.nodeid.rsplit("::", 1)[-1]
            if any(c.nodename == name for c in audit.checks) and name not in audit.results:
                audit.errors[name] = str(report.longrepr).splitlines()[-1] if report.longrepr else "error"

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # runs after interrupts and -x too: whatever finished is written
        if self.controller:
            return
        for audit in self.audits.values():
            if audit.results or audit.errors:
                self.written += audit.write_outputs()
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: the controller prints the summary
            workeroutput[WORKER_OUTPUT] = [self._figures(a) for a in self.audits.values()]

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """pytest-xdist (controller): a worker finished; keep what it generated and wrote."""
        figures = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
        if figures:
            self.worker_figures.extend(figures)

    def _figures(self, audit: "AuditSession") -> dict[str, Any]:
        stats = audit._pool.stats if audit._pool is not None else None
        return {
            "spec": audit.loaded.display,
            "verdicts": {name: r.verdict for name, r in audit.results.items()},
            "errors": dict(audit.errors),
            "inconclusive_policy": audit.spec.inconclusive,
            "generated": stats.generated if stats else 0,
            "invalid": stats.invalid if stats else 0,
            "generation_seconds": stats.generation_seconds if stats else 0.0,
            "judge_seconds": stats.judge_seconds if stats else 0.0,
            "cache": audit.cache_summary(),
            "written": [
                str(p)
                for p in (audit.options.report, audit.options.json, audit.options.csv)
                if p is not None and (audit.results or audit.errors) and not any(str(p) in e for e in audit.output_errors)
            ],  # an output that could not be written is not listed (its one line was shown)
        }

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from ..stats.gate import blocks

        if self.controller:  # the workers' figures; the audits themselves live in the workers
            summaries = [(None, f) for f in self._merge_workers()]
        else:
            summaries = [(a, self._figures(a)) for a in self.audits.values() if a.results or a.errors]
        for audit, f in summaries:
            terminalreporter.section(f"synthcxr audit: {f['spec']}")
            counts = {"pass": 0, "fail": 0, "inconclusive": 0}
            for verdict in f["verdicts"].values():
                counts[verdict] = counts.get(verdict, 0) + 1
            if f["errors"]:
                counts["error"] = len(f["errors"])
            blocking = len(f["errors"]) + sum(blocks(v, f["inconclusive_policy"]) for v in f["verdicts"].values())
            verdict = f"release blocked by {blocking} item(s)" if blocking else "no item blocks the release"
            terminalreporter.write_line(", ".join(f"{v} {k}" for k, v in counts.items()) + f": {verdict}")
            terminalreporter.write_line(
                f"{f['generated']} images generated ({f['invalid']} invalid), "
                f"generation {f['generation_seconds']:.1f}s, judging {f['judge_seconds']:.1f}s"
                + (f" (summed over {f['workers']} workers)" if f.get("workers", 1) > 1 else "")
            )
            if audit is not None and audit.spec.fuzz:
                from .fuzz_item import fuzz_summary

                line = fuzz_summary(audit)
                if line:
                    terminalreporter.write_line(line)
            cache = f["cache"]
            if cache is not None:
                terminalreporter.write_line(
                    f"sample cache: {cache['hits']} hits, {cache['misses']} misses, {cache['samples']} samples, "
                    f"{cache['size_bytes'] / 2**20:.1f} MiB in {cache['dir']}"
                )
            for path in f["written"]:
                terminalreporter.write_line(f"report written: {path}")

    def _merge_workers(self) -> list[dict[str, Any]]:
        """One summary per audit from the workers' figures: verdicts and errors joined, counts summed."""
        merged: dict[str, dict[str, Any]] = {}
        for f in self.worker_figures:
            m = merged.setdefault(
                f["spec"],
                {"spec": f["spec"], "inconclusive_policy": f["inconclusive_policy"], "verdicts": {}, "errors": {}, "generated": 0, "invalid": 0, "generation_seconds": 0.0,
                 "judge_seconds": 0.0, "cache": None, "written": [], "workers": 0},
            )
            m["workers"] += 1
            m["verdicts"].update(f["verdicts"])
            m["errors"].update(f["errors"])
            for k in ("generated", "invalid", "generation_seconds", "judge_seconds"):
                m[k] += f[k]
            c = f["cache"]
            if c is not None:
                if m["cache"] is None:
                    m["cache"] = dict(c)
                else:
                    m["cache"]["hits"] += c["hits"]
                    m["cache"]["misses"] += c["misses"]
                    m["cache"]["samples"] = max(m["cache"]["samples"], c["samples"])
                    m["cache"]["size_bytes"] = max(m["cache"]["size_bytes"], c["size_bytes"])
            m["written"] = sorted(set(m["written"]) | set(f["written"]))
        return [m for m in merged.values() if m["verdicts"] or m["errors"]]


def selected_from_args(args: list[str]) -> list[str]:
    """Remove pasted ``synthcxr::<item>`` ids from the command line (there is no file of that
    name to collect) and return them; the run then keeps exactly those items."""
    picked = [a for a in args if a.startswith(MODEL_ONLY_ID + "::")]
    for a in picked:
        args.remove(a)
    return picked
