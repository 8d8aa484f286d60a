"""The audit session: owns one run's state (spec, checks, pool, results) across pytest hooks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import Check, Result, build_checks
from .spec import LoadedSpec


@dataclass
class RunOptions:
    model: str
    seed: int
    device: str = "auto"
    report: Path | None = None
    json: Path | None = None
    csv: Path | None = None
    baseline: Path | None = None  # a previous run's JSON report to compare with


@dataclass
class AuditSession:
    loaded: LoadedSpec
    options: RunOptions
    log: Any = None  # callable(str) writing a line to the terminal, or None
    checks: list[Check] = field(init=False)
    results: dict[str, Result] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    _pool: Any = None
    _generator: Any = None
    _judge: Any = None

    def __post_init__(self) -> None:
        self.checks = build_checks(self.loaded.spec)

    @property
    def spec(self) -> Any:
        return self.loaded.spec

    @property
    def pool(self) -> Any:
        if self._pool is None:
            from .models import BUILTIN_MODELS, load_generator, load_judge
            from .pool import SamplePool

            self._generator = load_generator(self.options.model)
            judge_name = BUILTIN_MODELS[self.options.model][2] if self.spec.judge is None else self.spec.judge
            self._judge = load_judge(judge_name, self.options.device)
            self._pool = SamplePool(
                self._generator,
                self._judge,
                self.options.seed,
                batch_size=self.spec.batch_size,
                thumbnails=self.spec.thumbnails,
                thumbnail_size=256,  # the report shows them at 112 px and full size on click
            )
        return self._pool

    def evaluate(self, check: Check) -> Result:
        if check.nodename not in self.results:
            pool = self.pool
            before, t0 = pool.stats.generated, time.perf_counter()
            table = pool.table(check.cells(), check.samples)
            made = pool.stats.generated - before
            if made and self.log:
                rate = made / max(time.perf_counter() - t0, 1e-9)
                self.log(f"synthcxr: generated and judged {made} images for {check.nodename} ({rate:.0f} images/s)")
            self.results[check.nodename] = check.evaluate(table, self.spec.confidence)
        return self.results[check.nodename]

    def verdict_counts(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "inconclusive": 0}
        for result in self.results.values():
            counts[result.verdict] += 1
        if self.errors:
            counts["error"] = len(self.errors)
        return counts

    def write_outputs(self) -> list[Path]:
        """Write the requested report files; returns the paths written."""
        from . import report

        written = []
        data = report.build(self)
        if self.options.json:
            written.append(report.write_json(data, self.options.json))
        if self.options.csv:
            written.append(report.write_csv(self, self.options.csv))
        if self.options.report:
            written.append(report.write_html(data, self, self.options.report))
        return written
