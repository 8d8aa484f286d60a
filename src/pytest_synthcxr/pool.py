"""The sample pool: grows cells on demand, judges each image once, and serves the score table.

Sample i of cell c is generated with seed derive_seed(base_seed, c.key, i), so the table is the
same whatever order checks ask in, whatever the batch size, and whichever check asked first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cells import Cell, derive_seed
from .checks.base import score_column
from .generators.base import invalid_mask


@dataclass
class PoolStats:
    generated: int = 0
    invalid: int = 0
    generation_seconds: float = 0.0
    judge_seconds: float = 0.0


@dataclass
class _CellSamples:
    cell: Cell
    seeds: list[int] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)  # one (K,) row per sample
    thumbnails: list[np.ndarray] = field(default_factory=list)  # uint8 (h, w)


class SamplePool:
    def __init__(
        self,
        generator: Any,
        judge: Any,
        base_seed: int,
        *,
        batch_size: int = 64,
        thumbnails: int = 2,
        thumbnail_size: int = 112,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.generator = generator
        self.judge = judge
        self.base_seed = base_seed
        self.batch_size = batch_size
        self.thumbnails = thumbnails
        self.thumbnail_size = thumbnail_size
        self.progress = progress
        self.stats = PoolStats()
        self._cells: dict[str, _CellSamples] = {}

    def ensure(self, cells: Sequence[Cell], n: int) -> None:
        """Generate and judge whatever samples 0..n-1 of these cells do not have yet."""
        todo: list[tuple[_CellSamples, int]] = []
        for cell in dict.fromkeys(cells):  # keep order, drop repeats
            entry = self._cells.setdefault(cell.key, _CellSamples(cell))
            todo += [(entry, i) for i in range(len(entry.seeds), n)]
        done = 0
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            self._run_batch(batch)
            done += len(batch)
            if self.progress:
                self.progress(done, len(todo))

    def _run_batch(self, batch: list[tuple[_CellSamples, int]]) -> None:
        prompts = [entry.cell.prompt for entry, _ in batch]
        seeds = [derive_seed(self.base_seed, entry.cell.key, i) for entry, i in batch]
        t0 = time.perf_counter()
        images = self.generator.generate(prompts, seeds)
        t1 = time.perf_counter()
        bad = invalid_mask(images)
        scores = np.full((len(batch), len(self.judge.outputs)), np.nan)
        if (~bad).any():
            scores[~bad] = self.judge.predict(images[~bad])
        t2 = time.perf_counter()
        self.stats.generated += len(batch)
        self.stats.invalid += int(bad.sum())
        self.stats.generation_seconds += t1 - t0
        self.stats.judge_seconds += t2 - t1
        for j, ((entry, i), seed) in enumerate(zip(batch, seeds)):
            assert i == len(entry.seeds), "samples of a cell are appended in index order"
            entry.seeds.append(seed)
            entry.valid.append(not bad[j])
            entry.scores.append(scores[j])
            if i < self.thumbnails:
                entry.thumbnails.append(_thumbnail(images[j], self.thumbnail_size))

    def table(self, cells: Sequence[Cell], n: int) -> Any:
        """Score table of samples 0..n-1 of the cells (generating what is missing)."""
        import pandas as pd

        self.ensure(cells, n)
        outputs = list(self.judge.outputs)
        frames = []
        for cell in dict.fromkeys(cells):
            entry = self._cells[cell.key]
            attrs = cell.attributes
            frame = pd.DataFrame(np.vstack(entry.scores[:n]), columns=[score_column(o) for o in outputs])
            frame.insert(0, "cell", cell.key)
            frame.insert(1, "finding", cell.finding or "")
            frame.insert(2, "sex", attrs.get("sex", ""))
            frame.insert(3, "race", attrs.get("race", ""))
            frame.insert(4, "named", cell.named)
            frame.insert(5, "i", np.arange(n))
            frame.insert(6, "seed", entry.seeds[:n])
            frame.insert(7, "valid", entry.valid[:n])
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def images(self, cells: Sequence[Cell], n: int) -> tuple[np.ndarray, Any]:
        """Images of samples 0..n-1 of the cells, in the row order of table(cells, n), with that
        table (for checks that need pixels or features, not only scores). Invalid samples are
        included; filter them with the table's 'valid' column."""
        table = self.table(cells, n)
        prompts = [c.prompt for c in dict.fromkeys(cells) for _ in range(n)]
        images = self._load_images(prompts, [int(s) for s in table["seed"]])
        return images, table

    def _load_images(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        # regenerated from their seeds (identical to the judged ones); the cache serves stored files
        parts = [
            self.generator.generate(prompts[i : i + self.batch_size], seeds[i : i + self.batch_size])
            for i in range(0, len(prompts), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.empty((0, 0, 0), np.float32)

    def full_table(self) -> Any:
        """Every sample generated so far (for the CSV export)."""
        import pandas as pd

        frames = [self.table([e.cell], len(e.seeds)) for e in self._cells.values() if e.seeds]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def cells(self) -> list[Cell]:
        return [e.cell for e in self._cells.values()]

    def thumbnails_of(self, cell: Cell) -> list[np.ndarray]:
        entry = self._cells.get(cell.key)
        return entry.thumbnails if entry else []

    def invalid_count(self, cell: Cell) -> int:
        entry = self._cells.get(cell.key)
        return entry.valid.count(False) if entry else 0


def _thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    img = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    step = max(1, img.shape[0] // size)
    small = img[: step * (img.shape[0] // step), : step * (img.shape[1] // step)]
    small = small.reshape(small.shape[0] // step, step, small.shape[1] // step, step).mean(axis=(1, 3))
    return (np.clip(small, 0.0, 1.0) * 255).round().astype(np.uint8)
