"""The audit session: owns one run's state (spec, checks, pool, results) across pytest hooks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import Check, Result, build_checks
from ..spec.schema import LoadedSpec


@dataclass
class RunOptions:
    model: str
    seed: int
    device: str = "auto"
    report: Path | None = None
    json: Path | None = None
    csv: Path | None = None
    allow_pickle: bool = False
    baseline: Path | None = None  # a previous run's JSON report to compare with
    #: the released model: compare[...] items audit it on the candidate's cells and seeds (issue 18)
    baseline_model: str | None = None
    cache_dir: Path | None = None  # the sample cache; None: no cache
    reference: Any = None  # a reference.ReferenceSet (manifest read, pixels not yet), or None
    #: only generate and judge samples (pytest_synthcxr.fill): no verdicts, so bounds relative to
    #: a baseline and judge errors measured on a reference need neither
    fill_only: bool = False
    #: a distributed audit's rank > 0 writes its own cache shard (shards/<shard>/ in the cache folder)
    shard: str | None = None


def _judged_output(check: Check) -> str:
    """The judge output a single-output check reads (its finding, or its probe)."""
    return getattr(check, "finding", None) or getattr(check, "probe", "")


@dataclass
class AuditSession:
    loaded: LoadedSpec
    options: RunOptions
    log: Any = None  # callable(str) writing a line to the terminal, or None
    #: callable(done, total) told after each generated batch (plugin.progress.Progress), or None
    progress: Any = None
    checks: list[Check] = field(init=False)
    results: dict[str, Result] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: the checks whose items survived -k/-m selection (set after collection)
    selected: list[Check] = field(default_factory=list)
    raised: dict[str, BaseException] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    _pool: Any = None
    _released_pool: Any = None
    _generator: Any = None
    _judge: Any = None
    _comparison: Any = None
    _cache: Any = None
    #: a distributed audit (sampling.ranks.Ranks), set once the process group is joined; None: one process
    ranks: Any = None
    #: the baseline JSON as read and validated at start-up (the report compares with this copy)
    baseline_data: Any = None
    #: one line per output that could not be written (the others are still written)
    output_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from ..report.baseline import resolve_relative
        from ..report.schema import SCHEMA_VERSION
        from . import guards

        guards.check_device(self.options.device)  # pytest.UsageError: one line before any image
        if self.options.fill_only:
            self.checks = build_checks(self.loaded.spec)
            return
        guards.check_outputs(self.options, self.loaded.path)
        self.baseline_data = guards.load_baseline(self.options.baseline)
        # bounds relative_to_baseline become absolute here (BaselineError: one line, no baseline or item)
        self.checks = resolve_relative(build_checks(self.loaded.spec), self.options.baseline, SCHEMA_VERSION, self.baseline_data)
        if self.options.baseline_model is not None:
            from ..checks.compare import CompareCheck

            self.checks += [CompareCheck.of(c) for c in self.checks if c.compare_margin is not None]
        measured = [c for c in self.checks if c.judge_accuracy_from_reference]
        if measured and self.options.reference is None:
            from ..spec.schema import SpecError

            output = _judged_output(measured[0])
            raise SpecError(
                f"synthcxr: {self.loaded.display}: judge_error.{output}: reference = true needs a reference set "
                "(spec key 'reference' or --synthcxr-reference)"
            )

    @property
    def spec(self) -> Any:
        return self.loaded.spec

    @property
    def pool(self) -> Any:
        if self._pool is None:
            from ..models.aliases import ModelError
            from ..models.registry import load_generator, load_judge

            o = self.options
            try:
                self._generator = load_generator(o.model, self.loaded, device=o.device, allow_pickle=o.allow_pickle)
                self._judge = load_judge(o.model, self.loaded, device=o.device, allow_pickle=o.allow_pickle)
                if hasattr(self._generator, "assign"):  # pre-generated images: rows assigned from the spec alone
                    from ..sampling.manifest import requests

                    self._generator.assign([(cell.prompt, seed) for cell, _, seed in requests(self.checks, o.seed)])
            except ModelError as exc:  # unusable model: stop the run with its one line, no traceback
                import pytest

                pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
            self._pool = self._new_pool(self._store_images())
            accuracy = attribute_accuracy(self._judge)
            for check in self.checks:  # perceived-subgroup items show the attribute judge's own accuracy
                if getattr(check, "perceived", False) and accuracy:
                    object.__setattr__(check, "attribute_accuracy", tuple(sorted(accuracy.items())))
        return self._pool

    def _reject_foreign_labels(self) -> None:
        """Reader labels must have been read on this model's images. Once the items ran, every
        label's (cell, seed) whose image the cache holds is checked: another image there (a study
        of another model, or of another seed) turns every reader-corrected item into an error with
        one line, instead of a verdict corrected by labels of other images. Needs the cache (without
        one there is nothing to compare with)."""
        readers = [c for c in self.checks if hasattr(c, "reader_labels") and c.nodename in self.results]
        if not readers or self.cache is None or self._pool is None or self.__dict__.get("_labels_checked"):
            return
        self.__dict__["_labels_checked"] = True
        from ..checks.reader import LabelsError, mismatched_labels
        from ..sampling.cache import sample_key

        fp = self._pool.generator.fingerprint
        cells = {cell.key: cell for check in self.checks for cell in check.cells()}

        def stored(prompt: str, seed: int) -> str | None:
            key = sample_key(fp, prompt, seed)
            entry = self.cache.lookup([key]).get(key)
            return None if entry is None else entry.image_sha

        wrong = mismatched_labels(readers[0].reader_labels, cells, stored)
        if wrong is None:
            return
        error = LabelsError(
            f"synthcxr: {self.loaded.display}: [reader] labels: image {wrong.image_sha[:12]} (cell {wrong.cell!r}, seed {wrong.seed}) "
            f"is not the image model {self.options.model!r} draws there: the study was read on another model's (or seed's) "
            "images; run the reader study on this model's cache"
        )
        for check in readers:
            self.results.pop(check.nodename, None)
            self.raised[check.nodename] = error

    def _store_images(self) -> bool | None:
        """The spec's cache_images as the pool takes it (None: the generator decides)."""
        return {"auto": None, "always": True, "never": False}[self.spec.cache_images]

    def _new_pool(self, store: bool | None, generator: Any = None, which: str = "candidate") -> Any:
        """A pool of the candidate's generator (or `generator`, the released model's); in a
        distributed audit it spreads its samples over the ranks, named to them by `which`."""
        from ..models.generators.diffusers import GeneratorError
        from ..sampling.pool import SamplePool

        try:
            pool = SamplePool(
                self._generator if generator is None else generator,
                self._judge,
                self.options.seed,
                batch_size=self.spec.batch_size,
                thumbnails=self.spec.thumbnails,
                thumbnail_size=256,  # the report shows them at 112 px and full size on click
                progress=self.progress or self._progress,
                cache=self.cache,
                store_images=store,
            )
        except GeneratorError as exc:  # e.g. a lazily loaded pipeline that does not load
            import pytest

            pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
        pool.ranks, pool.rank_tag = self.ranks, (self.loaded.display, which)
        return pool

    @property
    def cache(self) -> Any:
        """The shared sample cache (opened once), or None with --synthcxr-no-cache."""
        if self._cache is None and self.options.cache_dir is not None:
            from ..sampling.cache import CacheError, SampleCache

            try:
                self._cache = SampleCache(self.options.cache_dir, warn=self.log, shard=self.options.shard)
            except CacheError as exc:  # unusable cache (locked, unreadable): one line, the audit goes on without it
                self.options.cache_dir = None
                if self.log:
                    self.log(f"{exc}; continuing without the cache")
                return None
            if self._cache.rebuilt and self.log:
                self.log(self._cache.rebuilt)
        return self._cache

    def cache_summary(self) -> dict[str, Any] | None:
        """Hits, misses and size of the cache for the terminal summary and the report."""
        if self._cache is None or self._pool is None:
            return None
        s = self._pool.stats
        return {
            "dir": str(self.options.cache_dir),
            "hits": s.cached,
            "misses": s.generated,
            "redrawn": s.redrawn,
            "corrupt": s.corrupt,
            "waited_seconds": round(s.waited_seconds, 2),
            "size_bytes": self._cache.size_bytes(),
            **self._cache.counts(),
        }

    def _progress(self, done: int, total: int) -> None:
        """A progress line on long generation runs, at most every 20 s (through the terminal reporter)."""
        now = time.perf_counter()
        state = self.__dict__.setdefault("_progress_state", {"done": 0, "first": 0, "t_first": now, "shown": now})
        if done <= state["done"]:  # a new pool.ensure() run: its first batch just finished
            state.update(first=done, t_first=now, shown=now)
        state["done"] = done
        if self.log and done < total and now - state["shown"] >= 20.0:
            state["shown"] = now
            rate = (done - state["first"]) / max(now - state["t_first"], 1e-9)
            self.log(f"synthcxr: {done}/{total} images generated and judged ({rate:.2f} images/s)")

    def evaluate(self, check: Check) -> Result:
        """The check's result; the first call runs every selected check (multiple-testing control
        needs them all, and they share samples)."""
        if check.nodename not in self.results and check.nodename not in self.raised:
            from ..stats.sequential import run_all

            todo = [c for c in (self.selected or [check]) if c.nodename not in self.results]
            if check not in todo:
                todo.append(check)
            todo = self._measure_judge_accuracy(todo)
            spec = self.spec
            self.results.update(
                run_all(
                    todo,
                    self._table,
                    spec.confidence,
                    sequential=spec.sampling == "sequential",
                    first_round=spec.first_round,
                    correction=spec.correction,
                    on_error=self._on_error,
                )
            )
            self._reject_foreign_labels()
        if check.nodename in self.raised:
            raise self.raised[check.nodename]
        return self.results[check.nodename]

    def _measure_judge_accuracy(self, checks: list[Check]) -> list[Check]:
        """`judge_error.<output>` with reference = true: the judge's confusion counts for that
        output on the labelled reference set become the check's judge accuracy (Rogan-Gladen).
        Returns the checks left to run: if scoring the reference fails, the checks that need it
        fail their own items (an unreadable reference is one line for the whole run)."""
        todo = [c for c in checks if c.judge_accuracy_from_reference and c.judge_accuracy is None]
        if not todo:
            return checks
        from ..checks.reference import judge_audit
        from ..reference.readers import ReferenceError
        from ..stats.judge_error import JudgeAccuracy

        try:
            scores = self.comparison.reference_scores()
        except ReferenceError as exc:
            import pytest

            pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
        except Exception as exc:  # noqa: BLE001 - the items that need the reference carry it
            for check in todo:
                self.raised[check.nodename] = exc
            return [c for c in checks if c not in todo]
        outputs = list(dict.fromkeys(_judged_output(c) for c in todo))  # several items may read one output
        audited = {e["finding"]: e for e in judge_audit(scores, tuple(outputs), 1 - self.spec.confidence)}
        accuracy = {}
        for output in outputs:
            entry = audited.get(output)
            c = entry["confusion"] if entry is not None else None
            if c is None or c["tp"] + c["fn"] == 0 or c["tn"] + c["fp"] == 0:
                import pytest

                pytest.exit(
                    f"synthcxr: judge_error.{output}: reference = true, but the reference set has no images labelled "
                    f"{'positive and negative ' if entry is not None else ''}for {output!r} to measure the judge on; "
                    "give its counts (tp, fn, tn, fp) instead",
                    returncode=pytest.ExitCode.USAGE_ERROR,
                )
            accuracy[output] = JudgeAccuracy(c["tp"], c["fn"], c["tn"], c["fp"])
        for check in todo:
            object.__setattr__(check, "judge_accuracy", accuracy[_judged_output(check)])
        return checks

    def _on_error(self, check: Check, exc: BaseException) -> None:
        """A broken check fails its own item; a generator that cannot run (a pipeline that does
        not load, a device that is not there) stops the run with its one line."""
        from ..models.generators.diffusers import GeneratorError
        from ..sampling.pool import CacheMismatch
        from ..sampling.ranks import RankError

        if isinstance(exc, (GeneratorError, CacheMismatch, RankError)):
            import pytest

            pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
        self.raised[check.nodename] = exc

    @property
    def comparison(self) -> Any:
        """Synthetic vs reference data (reference scores, features, MS-SSIM), built on first use."""
        if self._comparison is None:
            from ..reference.comparison import Comparison

            self._comparison = Comparison(self.pool, self.options.reference, cache_dir=self.options.cache_dir)
        return self._comparison

    @property
    def released_pool(self) -> Any:
        """The released model's sample pool (same judge, seeds and cache as the candidate's)."""
        if self._released_pool is None:
            from ..models.aliases import ModelError
            from ..models.registry import load_generator

            pool = self.pool  # the candidate first: its judge is shared
            o = self.options
            try:
                generator = load_generator(o.baseline_model, self.loaded, device=o.device, allow_pickle=o.allow_pickle)
            except ModelError as exc:
                import pytest

                pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
            if generator.fingerprint == pool.generator.fingerprint and self.log:
                self.log(f"synthcxr: warning: --synthcxr-baseline-model {o.baseline_model} is the candidate itself (same fingerprint): every comparison is 0")
            self._released_pool = self._new_pool(self._store_images(), generator, "released")
        return self._released_pool

    def _table(self, check: Check, n: int) -> Any:
        if check.family == "compare":  # both models on the same cells and seeds, told apart by `model`
            import pandas as pd

            from ..checks.compare import CANDIDATE, RELEASED

            cells = check.cells()
            both = [self.pool.table(cells, n).assign(model=CANDIDATE), self.released_pool.table(cells, n).assign(model=RELEASED)]
            return pd.concat(both, ignore_index=True)
        pool = self.pool
        if self.progress is not None:
            self.progress.what = f"{check.nodename}, {n} per cell"
        before, t0 = pool.stats.generated, time.perf_counter()
        if hasattr(check, "needs_reference"):  # versus-real, fidelity, diversity, memorization
            table = self.comparison.versus(check, n)
        else:
            table = pool.table(check.cells(), n)
        made = pool.stats.generated - before
        if made and self.log:
            rate = made / max(time.perf_counter() - t0, 1e-9)
            self.log(f"synthcxr: {check.nodename}: {made} images generated and judged, {n} per cell ({rate:.0f} images/s)")
            probe = getattr(pool.generator, "probe", None)  # batch_size = "probe": say once what it chose
            if probe is not None and probe.done and not self.__dict__.get("_probe_shown"):
                self.__dict__["_probe_shown"] = True
                self.log(f"synthcxr: {pool.generator.name}: batch size probe: {probe.summary()}")
        return table

    def judge_concerns(self, check: Check) -> list[str]:
        """Reasons, from the labelled reference set, to doubt the judge output this item reads."""
        if self.options.reference is None or self._pool is None:
            return []
        return self.comparison.concerns(check, 1 - self.spec.confidence)

    def verdict_counts(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "inconclusive": 0}
        for result in self.results.values():
            counts[result.verdict] += 1
        if self.errors:
            counts["error"] = len(self.errors)
        return counts

    def blocking_count(self) -> int:
        """Items that block the release, as pytest counts them failed: fails, errors, and
        inconclusive items under inconclusive = "fail" (the other policies let them ship)."""
        from ..stats.gate import blocks

        return len(self.errors) + sum(blocks(r.verdict, self.spec.inconclusive) for r in self.results.values())

    def write_outputs(self) -> list[Path]:
        """Write the requested report files; returns the paths written."""
        from ..report import writers as report

        written: list[Path] = []
        data: Any = None
        try:
            data = report.build(self)
        except Exception as exc:  # noqa: BLE001 - a baseline comparison that fails must not lose the report
            self._output_error("the report data", exc)
            if self.options.baseline is not None:
                try:
                    data = _without_baseline(self)
                except Exception:  # noqa: BLE001 - the CSV is still written below
                    data = None

        def need_data() -> Any:
            if data is None:
                raise RuntimeError("the report data could not be built (see above)")
            return data

        writes = [
            (self.options.json, lambda path: report.write_json(need_data(), path)),
            (self.options.csv, lambda path: report.write_csv(self, path)),
            (self.options.report, lambda path: report.write_html(need_data(), self, path)),
        ]
        for path, write in writes:  # one failing output does not stop the others
            if path is None:
                continue
            try:
                written.append(write(path))
            except Exception as exc:  # noqa: BLE001 - reported as one line; the other files are still written
                self._output_error(str(path), exc)
        if self._cache is not None:  # the index file alone is then complete (a CI job may save only it)
            self._cache.checkpoint()
        return written

    def _output_error(self, what: str, exc: BaseException) -> None:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc).splitlines() or [type(exc).__name__])[0]
        line = detail if detail.startswith("synthcxr:") else f"synthcxr: could not write {what}: {type(exc).__name__}: {detail}"
        self.output_errors.append(line)
        if self.log:
            self.log(line)


def _without_baseline(audit: AuditSession) -> Any:
    """Report data with no baseline section (its comparison failed)."""
    from ..report.data import build as build_data

    return build_data(audit)


def attribute_accuracy(judge: Any) -> dict[str, float]:
    """Attribute -> accuracy that a judge (or a panel's members) records for its own validation
    set (``settings["validation"]["<attribute>_accuracy"]``, as phantom-attributes does)."""
    members = getattr(judge, "members", None) or [judge]
    found: dict[str, float] = {}
    for member in members:
        try:
            validation = (member.settings or {}).get("validation") or {}
        except Exception:  # noqa: BLE001 - settings of a judge that cannot describe itself: nothing to show
            continue
        for key, value in validation.items():
            if key.endswith("_accuracy") and isinstance(value, (int, float)):
                found.setdefault(key[: -len("_accuracy")], float(value))
    return found
