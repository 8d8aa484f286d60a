"""The pytest item of a ``[[tool.synthcxr.fuzz]]`` check: ``<audit file>::fuzz[<property>-<finding>]``.

Imported by the plugin's collector only when an audit with fuzz sections runs. Every fuzz item of
a run shares one :class:`~pytest_synthcxr.fuzz.sampler.PairedSampler` on the audit's generator and judge
(a prompt scored for one item is free for the next), kept on the audit session. The hypothesis
example database lives under the synthcxr cache dir (``<cache dir>/hypothesis/<item>``), so a
falsifying pair found by one run is replayed first by the next; with ``--synthcxr-no-cache``
there is no database.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .items import AuditFailure, AuditItem
from .options import cache_dir

if TYPE_CHECKING:
    from ..checks.fuzz import FuzzCheck, FuzzResult
    from .session import AuditSession

#: every fuzz item of one audit shares its paired sampler, kept on the audit session
SAMPLER_ATTR = "_fuzz_sampler"
#: folder of the hypothesis example database inside the synthcxr cache dir
DATABASE_DIR = "hypothesis"


class FuzzItem(AuditItem):
    """A hypothesis search for a prompt pair that falsifies one property (pass: none found)."""

    def runtest(self) -> None:
        result = run_fuzz_check(self.audit, self.check, self.config)  # type: ignore[arg-type]
        self._record(result)
        if result.verdict == "fail":
            raise AuditFailure(result.message())


def database_dir(config: pytest.Config, check: "FuzzCheck") -> Path | None:
    """Where this item's falsifying examples are kept; None with --synthcxr-no-cache."""
    root = cache_dir(config)
    if root is None:
        return None
    from ..report.schema import anchor

    return Path(root) / DATABASE_DIR / anchor(check.nodename).removeprefix("item-")


def run_fuzz_check(audit: "AuditSession", check: "FuzzCheck", config: pytest.Config) -> "FuzzResult":
    """Run the item's search on the audit's generator and judge; its result joins the audit's."""
    from ..sampling.cells import derive_seed
    from ..fuzz.sampler import PairedSampler, outcome_result, run_property

    sampler = audit.__dict__.get(SAMPLER_ATTR)
    if sampler is None:
        pool = audit.pool
        sampler = PairedSampler(pool.generator, pool.judge, audit.options.seed, batch_size=audit.spec.batch_size)
        audit.__dict__[SAMPLER_ATTR] = sampler
    folder = database_dir(config, check)
    database = None
    if folder is not None:
        from hypothesis.database import DirectoryBasedExampleDatabase

        database = DirectoryBasedExampleDatabase(folder)
    search_seed = derive_seed(audit.options.seed, f"fuzz-search:{check.nodename}", 0)
    from ..models.generators.diffusers import GeneratorError

    try:
        outcome = run_property(check, sampler, confidence=audit.spec.confidence, seed=search_seed, database=database)
    except GeneratorError as exc:  # a pipeline that does not load: one line, not a falsifying example
        pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
    result = outcome_result(outcome)
    audit.results[check.nodename] = result
    return result


def fuzz_summary(audit: "AuditSession") -> str | None:
    """The terminal summary's line on what the fuzz items generated (None: no fuzz item ran)."""
    sampler = audit.__dict__.get(SAMPLER_ATTR)
    if sampler is None:
        return None
    return f"fuzz: {sampler.generated} images generated and judged for {sampler.prompts} prompts (the same seeds for every prompt)"
