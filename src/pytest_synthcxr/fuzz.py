"""Paired same-seed sampling for property-based tests: every prompt gets the same seeds.

Sample i of *any* prompt uses seed ``derive_seed(base_seed, "fuzz", i)``, so two prompts that
differ in one word are compared image by image on identical seeds (the generator's noise held
fixed), and the comparison is analysed as paired (:mod:`pytest_synthcxr.paired`). Scores are
memoised per (prompt, sample index): hypothesis replays and shrinks examples, and a prompt seen
before costs nothing. No pytest here; the fixtures in :mod:`pytest_synthcxr.fixtures` build it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .cells import derive_seed
from .generators.base import invalid_mask
from .paired import PairedComparison, compare_decisions

FUZZ_KEY = "fuzz"


class PairedSampler:
    """Judge scores of prompts on shared seeds: ``scores(prompt, n)`` is (n, len(judge.outputs))."""

    def __init__(self, generator: Any, judge: Any, base_seed: int = 0, *, batch_size: int = 64) -> None:
        self.generator = generator
        self.judge = judge
        self.base_seed = base_seed
        self.batch_size = batch_size
        self.generated = 0
        self._scores: dict[str, np.ndarray] = {}  # prompt -> (n_so_far, K); NaN rows: invalid images

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(self.judge.outputs)

    def seeds(self, n: int) -> list[int]:
        return [derive_seed(self.base_seed, FUZZ_KEY, i) for i in range(n)]

    def scores(self, prompt: str, n: int) -> np.ndarray:
        """Scores of samples 0..n-1 of `prompt` (generating only what is missing)."""
        have = self._scores.get(prompt, np.empty((0, len(self.outputs))))
        if len(have) < n:
            seeds = self.seeds(n)[len(have) :]
            parts = [have]
            for start in range(0, len(seeds), self.batch_size):
                chunk = seeds[start : start + self.batch_size]
                images = self.generator.generate([prompt] * len(chunk), chunk)
                bad = invalid_mask(images)
                rows = np.full((len(chunk), len(self.outputs)), np.nan)
                if (~bad).any():
                    rows[~bad] = self.judge.predict(images[~bad])
                parts.append(rows)
                self.generated += len(chunk)
            have = np.vstack(parts)
            self._scores[prompt] = have
        return have[:n]

    def probability(self, prompt: str, finding: str, n: int) -> np.ndarray:
        """The judge's score of `finding` on samples 0..n-1 (> 0.5: positive); NaN: invalid image."""
        return self.scores(prompt, n)[:, self.outputs.index(finding)]

    def compare(self, prompt_a: str, prompt_b: str, finding: str, n: int, alpha: float = 0.05) -> PairedComparison:
        """Paired decisions on `finding` of two prompts on the same n seeds (pairs where either
        image is invalid are dropped)."""
        a, b = self.probability(prompt_a, finding, n), self.probability(prompt_b, finding, n)
        keep = ~(np.isnan(a) | np.isnan(b))
        return compare_decisions(a[keep] > 0.5, b[keep] > 0.5, alpha)
