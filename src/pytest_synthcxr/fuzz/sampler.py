"""Paired same-seed sampling for property-based tests: every prompt gets the same seeds.

Sample i of *any* prompt uses seed ``derive_seed(base_seed, "fuzz", i)``, so two prompts that
differ in one word are compared image by image on identical seeds (the generator's noise held
fixed), and the comparison is analysed as paired (:mod:`pytest_synthcxr.stats.paired`). Scores are
memoised per (prompt, sample index): hypothesis replays and shrinks examples, and a prompt seen
before costs nothing. No pytest here; the fixtures in :mod:`pytest_synthcxr.plugin.fixtures` build it.

:func:`run_property` runs one spec-driven fuzz item (``[[tool.synthcxr.fuzz]]``, expanded by
:mod:`pytest_synthcxr.checks.fuzz`): a seeded hypothesis search over counterfactual prompt pairs
on this sampler, replaying a previous run's falsifying pair first when given a database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..sampling.cells import derive_seed
from ..checks.fuzz import FuzzCheck, FuzzResult, Judged, judge_example, size_of
from ..sampling.pool import invalid_mask
from ..stats.paired import PairedComparison, compare_decisions
from ..stats.intervals import Estimate

FUZZ_KEY = "fuzz"


#: the patient's sides, in the order of PairedSampler.side_scores
SIDES: tuple[str, str] = ("left", "right")


def hemithoraces(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each image made symmetric about its vertical midline from one half: (patient's left,
    patient's right), so a judge's call on it says whether that hemithorax shows the finding.
    Radiographic convention (PA/AP views): the patient's left is on the image's right."""
    width = images.shape[-1]
    half = width // 2
    image_right, image_left = images[..., width - half :], images[..., :half]
    patient_left = np.concatenate([image_right[..., ::-1], image_right], axis=-1)
    patient_right = np.concatenate([image_left, image_left[..., ::-1]], axis=-1)
    return np.ascontiguousarray(patient_left), np.ascontiguousarray(patient_right)


class PairedSampler:
    """Judge scores of prompts on shared seeds: ``scores(prompt, n)`` is (n, len(judge.outputs))."""

    def __init__(self, generator: Any, judge: Any, base_seed: int = 0, *, batch_size: int = 64) -> None:
        self.generator = generator
        self.judge = judge
        self.base_seed = base_seed
        self.batch_size = batch_size
        self.generated = 0
        self._scores: dict[str, np.ndarray] = {}  # prompt -> (n_so_far, K); NaN rows: invalid images
        self._sides: dict[str, np.ndarray] = {}  # prompt -> (n_so_far, 2, K): patient's left, right hemithorax

    @property
    def prompts(self) -> int:
        """Distinct prompts scored so far."""
        return len(self._scores)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(self.judge.outputs)

    def seeds(self, n: int) -> list[int]:
        return [derive_seed(self.base_seed, FUZZ_KEY, i) for i in range(n)]

    def scores(self, prompt: str, n: int) -> np.ndarray:
        """Scores of samples 0..n-1 of `prompt` (generating only what is missing)."""
        have = self._scores.get(prompt, np.empty((0, len(self.outputs))))
        if len(have) < n:
            parts = [have]
            for images, bad in self._draw(prompt, len(have), n):
                rows = np.full((len(images), len(self.outputs)), np.nan)
                if (~bad).any():
                    rows[~bad] = self.judge.predict(images[~bad])
                parts.append(rows)
            have = np.vstack(parts)
            self._scores[prompt] = have
        return have[:n]

    def _draw(self, prompt: str, start: int, n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Images of samples start..n-1 of `prompt` in batches, with their invalid masks."""
        seeds = self.seeds(n)[start:]
        for begin in range(0, len(seeds), self.batch_size):
            chunk = seeds[begin : begin + self.batch_size]
            images = self.generator.generate([prompt] * len(chunk), chunk)
            self.generated += len(chunk)
            yield images, invalid_mask(images)

    def probability(self, prompt: str, finding: str, n: int) -> np.ndarray:
        """The judge's score of `finding` on samples 0..n-1 (> 0.5: positive); NaN: invalid image."""
        return self.scores(prompt, n)[:, self.outputs.index(finding)]

    def side_scores(self, prompt: str, n: int) -> np.ndarray:
        """Judge scores of each hemithorax of samples 0..n-1, (n, 2, K): [:, 0] the patient's left,
        [:, 1] the patient's right (see :func:`hemithoraces`); NaN rows: invalid images."""
        k = len(self.outputs)
        have = self._sides.get(prompt, np.empty((0, 2, k)))
        if len(have) < n:
            parts = [have]
            for images, bad in self._draw(prompt, len(have), n):
                rows = np.full((len(images), 2, k), np.nan)
                if (~bad).any():
                    for side, halves in enumerate(hemithoraces(images[~bad])):
                        rows[~bad, side] = self.judge.predict(halves)
                parts.append(rows)
            have = np.concatenate(parts)
            self._sides[prompt] = have
        return have[:n]

    def compare_side(self, prompt_a: str, prompt_b: str, finding: str, side: str, n: int, alpha: float = 0.05) -> PairedComparison:
        """Like :meth:`compare`, on the judge's decisions about one hemithorax ("left" or "right":
        the patient's) of each image."""
        j, k = SIDES.index(side), self.outputs.index(finding)
        a, b = self.side_scores(prompt_a, n)[:, j, k], self.side_scores(prompt_b, n)[:, j, k]
        keep = ~(np.isnan(a) | np.isnan(b))
        return compare_decisions(a[keep] > 0.5, b[keep] > 0.5, alpha)

    def compare(self, prompt_a: str, prompt_b: str, finding: str, n: int, alpha: float = 0.05) -> PairedComparison:
        """Paired decisions on `finding` of two prompts on the same n seeds (pairs where either
        image is invalid are dropped)."""
        a, b = self.probability(prompt_a, finding, n), self.probability(prompt_b, finding, n)
        keep = ~(np.isnan(a) | np.isnan(b))
        return compare_decisions(a[keep] > 0.5, b[keep] > 0.5, alpha)


# --- spec-driven fuzz items: one hypothesis search per FuzzCheck ---------------------------------


@dataclass(frozen=True)
class Example:
    """One prompt pair tried by the search, with its paired numbers and verdict."""

    pair: Any  # strategies.CounterfactualPair
    judged: Judged


@dataclass(frozen=True)
class FuzzOutcome:
    """What one search found: the shrunk falsifying example (None: none found), the example that
    came closest to failing, and how many examples the property was run on (shrinking included)."""

    check: FuzzCheck
    falsified: Example | None
    worst: Example | None
    examples: int
    alpha: float
    #: the shown (shrunk, else closest) example's size with its interval at the spec's confidence
    overall: Estimate | None = None
    confidence: float = 0.95


class _Falsified(AssertionError):
    """Raised inside the property so hypothesis shrinks the example."""


def pair_strategy(check: FuzzCheck) -> Any:
    """Counterfactual prompt pairs for the check's property (hypothesis strategy)."""
    from . import strategies as cxr

    common: dict[str, Any] = {"max_negated": check.negations, "layout": check.layout, "modifiers": check.modifiers}
    if check.prop == "negation":
        return cxr.negation_pairs(check.finding, **common)
    one = {"findings": [check.finding], "min_findings": 1, "max_findings": 1, **common}
    if check.prop == "demographic-invariance":
        return cxr.counterfactual_pairs(attributes=check.attributes, demographics="always", **one)
    if check.prop == "paraphrase-invariance":
        return cxr.counterfactual_pairs(attributes=("paraphrase",), **one)
    if check.prop == "laterality":
        return cxr.side_pairs(check.finding, max_findings=1, **common)
    raise ValueError(f"unknown fuzz property {check.prop!r}")


def compare_pair(check: FuzzCheck, sampler: PairedSampler, pair: Any, alpha: float) -> PairedComparison:
    """The pair's paired decisions on the finding: whole images, or (laterality) the hemithorax
    opposite the requested side."""
    if check.prop == "laterality":
        return sampler.compare_side(pair.base.text, pair.changed.text, check.finding, pair.detail["checked"], check.samples, alpha)
    return sampler.compare(pair.base.text, pair.changed.text, check.finding, check.samples, alpha)


def run_property(check: FuzzCheck, sampler: PairedSampler, *, confidence: float, seed: int, database: Any = None) -> FuzzOutcome:
    """Search prompt pairs for one that falsifies the check's property (see checks/fuzz.py for the
    rule); hypothesis shrinks a falsifying pair to the smallest one that still fails.

    The search is seeded (`seed`), so a run is reproducible; `database` (a hypothesis
    ExampleDatabase, or None) replays a previous run's falsifying example first.
    """
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings, target
    from hypothesis import seed as seeded

    alpha = check.interval_alpha(confidence)  # one-sided bounds at example_alpha each
    failures: list[Example] = []
    state: dict[str, Any] = {"calls": 0, "worst": None}

    def holds(pair: Any) -> None:
        state["calls"] += 1
        comparison = compare_pair(check, sampler, pair, alpha)
        example = Example(pair, judge_example(check, comparison, confidence))
        worst = state["worst"]
        if worst is None or example.judged.score > worst.judged.score:
            state["worst"] = example
        target(example.judged.score, label="lower bound of the paired change")
        if example.judged.falsified:
            failures.append(example)
            raise _Falsified(check.nodename)

    test = settings(
        max_examples=check.max_examples,
        deadline=None,
        database=failures_only(database) if database is not None else None,
        derandomize=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=False,
        verbosity=Verbosity.quiet,
    )(seeded(seed)(given(pair_strategy(check))(holds)))
    try:
        test()
    except _Falsified:
        pass
    # hypothesis replays the shrunk example last, just before it re-raises
    falsified = failures[-1] if failures else None
    shown = falsified or state["worst"]
    overall = None
    if shown is not None:  # the same pairs (memoised) at the audit's confidence, for the report's tables
        again = compare_pair(check, sampler, shown.pair, 1 - confidence)
        overall = size_of(check, again.difference)
    return FuzzOutcome(check, falsified, state["worst"], state["calls"], alpha, overall, confidence)


def failures_only(database: Any) -> Any:
    """`database` restricted to falsifying examples (hypothesis's primary key). The pareto front
    that target() keeps and the secondary entries would steer a later, passing run elsewhere; a
    fuzz item's result must depend only on the spec, model and seed, and on a saved failure."""
    from hypothesis.database import ExampleDatabase

    def ours(key: bytes) -> bool:
        return not key.endswith((b".pareto", b".secondary"))

    class FailuresOnly(ExampleDatabase):
        def save(self, key: bytes, value: bytes) -> None:
            if ours(key):
                database.save(key, value)

        def fetch(self, key: bytes) -> Any:
            return database.fetch(key) if ours(key) else iter(())

        def delete(self, key: bytes, value: bytes) -> None:
            if ours(key):
                database.delete(key, value)

        def move(self, src: bytes, dest: bytes, value: bytes) -> None:
            self.delete(src, value)
            self.save(dest, value)

    return FailuresOnly()


def change_text(pair: Any) -> str:
    """What the pair changes, in words: "swapping race White -> Hispanic"."""
    if pair.attribute in ("sex", "race", "age"):
        return f"swapping {pair.attribute} {pair.before} -> {pair.after}"
    if pair.attribute == "laterality" and "checked" in pair.detail:
        return f"asking for {pair.detail['phrase']!r} (judged on the patient's {pair.detail['checked']} hemithorax)"
    if pair.attribute == "laterality":
        return f"moving it from {pair.before} to {pair.after}"
    if pair.attribute == "negation":
        return f"writing {pair.before!r}"
    return f"paraphrasing {pair.before!r} -> {pair.after!r}"


def example_facts(example: Example) -> dict[str, Any]:
    """The example's prompts and paired numbers, JSON-ready."""
    c = example.judged.comparison
    d, m = c.difference, c.mcnemar
    return {
        "attribute": example.pair.attribute,
        "before": example.pair.before,
        "after": example.pair.after,
        "change": change_text(example.pair),
        "base": example.pair.base.text,
        "changed": example.pair.changed.text,
        "n": d.n,
        "rate_a": _round(c.rate_a),
        "rate_b": _round(c.rate_b),
        "difference": _round(d.value),
        "difference_low": _round(d.low),
        "difference_high": _round(d.high),
        "only_a": m.only_a,
        "only_b": m.only_b,
        "pvalue": _round(m.pvalue),
        "falsified": example.judged.falsified,
    }


def outcome_result(outcome: FuzzOutcome) -> FuzzResult:
    """The pytest item's result: verdict, and the numbers of the shrunk (or worst) example."""
    check = outcome.check
    shown = outcome.falsified or outcome.worst
    nan = float("nan")
    size = outcome.overall if outcome.overall is not None else Estimate(nan, nan, nan, 0)
    facts = example_facts(shown) if shown is not None else None
    if outcome.falsified is not None:
        detail = f"shrunk after {outcome.examples} examples"
    else:
        detail = f"no falsifying pair in {outcome.examples} examples" + (
            f"; closest: {facts['change']}, {facts['base']!r} vs {facts['changed']!r}" if facts else ""
        )
    fuzz = {
        "property": check.prop,
        "finding": check.finding,
        "delta": check.threshold,
        "max_examples": check.max_examples,
        "samples": check.samples,
        "examples": outcome.examples,
        "alpha": _round(outcome.alpha),
        "falsified": outcome.falsified is not None,
        "example": facts,
    }
    return FuzzResult(
        check=check.nodename,
        family=check.family,
        quantity=check.quantity,
        estimate=size,
        threshold=check.threshold,
        direction="max",
        verdict="fail" if outcome.falsified is not None else "pass",
        confidence=outcome.confidence,
        detail=detail,
        fuzz=fuzz,  # samples per example: fuzz["samples"] (a fuzz item has no pool cells)
    )


def _round(x: float) -> float:
    return round(float(x), 6)
