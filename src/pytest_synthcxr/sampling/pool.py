"""The sample pool: grows cells on demand, judges each image once, and serves the score table.

Sample i of cell c is generated with seed derive_seed(base_seed, c.seed_key, i), so the table is the
same whatever order checks ask in, whatever the batch size, and whichever check asked first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cells import Cell, derive_seed


class CacheMismatch(Exception):
    """A cached score the judge no longer gives: the cache cannot be trusted; str() is one line."""


def score_column(output: str) -> str:
    """Column of the score table holding the judge's probability for an output."""
    return f"p:{output}"


def invalid_mask(images: np.ndarray) -> np.ndarray:
    """Images that must not be scored: non-finite values, or constant (e.g. blacked out)."""
    flat = images.reshape(len(images), -1)
    finite = np.isfinite(flat).all(axis=1)
    spread = np.where(finite, np.nanmax(flat, axis=1) - np.nanmin(flat, axis=1), 0.0)
    return ~finite | (spread < 1e-6)


@dataclass
class PoolStats:
    generated: int = 0  # images generated for new samples
    invalid: int = 0
    cached: int = 0  # samples served from the cache (scores, and pixels where needed)
    redrawn: int = 0  # cached samples whose pixels were drawn again (unstored thumbnails, new judge)
    corrupt: int = 0  # cached image files that failed their hash check and were regenerated
    waited_seconds: float = 0.0  # time spent waiting for samples another process had claimed
    generation_seconds: float = 0.0
    judge_seconds: float = 0.0


@dataclass
class _CellSamples:
    cell: Cell
    seeds: list[int] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)  # one (K,) row per sample
    thumbnails: list[np.ndarray] = field(default_factory=list)  # uint8 (h, w)
    frame: Any = None  # table of all samples so far (see SamplePool._frame)


@dataclass
class _Done:
    seed: int
    valid: bool
    scores: np.ndarray
    thumbnail: np.ndarray | None = None


_Todo = tuple[_CellSamples, int]


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
        cache: Any = None,
        store_images: bool | None = None,
        verify_per_cell: int = 2,
    ) -> None:
        self.generator = generator
        self.judge = judge
        self.base_seed = base_seed
        self.batch_size = batch_size
        self.thumbnails = thumbnails
        self.thumbnail_size = thumbnail_size
        self.progress = progress
        self.cache = cache  # a cache.SampleCache, or None
        # image files are worth storing when drawing again costs more than reading a PNG
        self.store_images = getattr(generator, "cache_images", True) if store_images is None else store_images
        self.stats = PoolStats()
        self._cells: dict[str, _CellSamples] = {}
        #: cached scores re-judged per cell (a seeded choice) to catch an edited cache
        self.verify_per_cell = verify_per_cell
        self._verified: dict[str, int] = {}
        #: a distributed audit (sampling.ranks.Ranks) on rank 0: new samples are spread over the
        #: ranks; rank_tag names this pool to the other ranks (audit, candidate / released)
        self.ranks: Any = None
        self.rank_tag: Any = None

    def ensure(self, cells: Sequence[Cell], n: int) -> None:
        """Generate and judge whatever samples 0..n-1 of these cells do not have yet."""
        todo: list[_Todo] = []
        for cell in dict.fromkeys(cells):  # keep order, drop repeats
            entry = self._cells.setdefault(cell.key, _CellSamples(cell))
            todo += [(entry, i) for i in range(len(entry.seeds), n)]
        if not todo:
            return
        done: dict[tuple[str, int], _Done] = {}
        if self.cache is None and self.ranks is not None:
            self._spread(todo, done, todo)
        elif self.cache is None:
            for start in range(0, len(todo), self.batch_size):
                self._make(todo[start : start + self.batch_size], done)
                self._report(done, todo)
        else:
            self._ensure_cached(todo, done)
        for entry, i in todo:  # per cell in index order
            d = done[(entry.cell.key, i)]
            entry.seeds.append(d.seed)
            entry.valid.append(d.valid)
            entry.scores.append(d.scores)
            if d.thumbnail is not None:
                entry.thumbnails.append(d.thumbnail)

    def fill(self, samples: Sequence[tuple[Cell, int]]) -> None:
        """Put these (cell, sample index) pairs into the cache, keeping nothing in memory: the
        pre-generation step of a sharded run (see fill.py). Needs a cache."""
        if self.cache is None:
            raise ValueError("SamplePool.fill needs a cache")
        entries = {cell.key: _CellSamples(cell) for cell, _ in samples}
        thumbnails, self.thumbnails = self.thumbnails, 0  # nothing is shown from here
        try:
            self._ensure_cached([(entries[cell.key], i) for cell, i in samples], {})
        finally:
            self.thumbnails = thumbnails

    def _report(self, done: dict[Any, _Done], todo: list[_Todo]) -> None:
        if self.progress:
            self.progress(len(done), len(todo))

    def _seed(self, item: _Todo) -> int:
        return derive_seed(self.base_seed, item[0].cell.seed_key, item[1])

    def _judge(self, images: np.ndarray, bad: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        scores = np.full((len(images), len(self.judge.outputs)), np.nan)
        if (~bad).any():
            scores[~bad] = self.judge.predict(images[~bad])
        self.stats.judge_seconds += time.perf_counter() - t0
        return scores

    def _draw(self, batch: Sequence[_Todo]) -> np.ndarray:
        return self._generate([e.cell.prompt for e, _ in batch], [self._seed(t) for t in batch])

    def _generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        t0 = time.perf_counter()
        images = self.generator.generate(prompts, seeds)
        self.stats.generation_seconds += time.perf_counter() - t0
        return images

    def _store(self, rows: Sequence[tuple[str, str, int]], images: np.ndarray, bad: np.ndarray, scores: np.ndarray) -> None:
        """Write new samples (key, prompt, seed) and the valid ones' scores to the cache."""
        entries = self.cache.put_samples(self.generator.fingerprint, rows, images, list(~bad), store=self.store_images)
        self.cache.put_scores(self.judge.fingerprint, list(self.judge.outputs), [e.image_sha for e in entries if e.valid], scores[~bad])

    def _make(self, batch: Sequence[_Todo], done: dict[tuple[str, int], _Done]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Generate and judge new samples; returns (images, invalid mask, scores)."""
        images = self._draw(batch)
        bad = invalid_mask(images)
        scores = self._judge(images, bad)
        self.stats.generated += len(batch)
        self.stats.invalid += int(bad.sum())
        for j, (entry, i) in enumerate(batch):
            done[(entry.cell.key, i)] = _Done(self._seed((entry, i)), not bad[j], scores[j], self._thumb(i, images[j]))
        return images, bad, scores

    # -- distributed (sampling.ranks) --------------------------------------------------------------

    def _spread(self, items: list[_Todo], done: dict[tuple[str, int], _Done], todo: list[_Todo]) -> None:
        """Rank 0: generate and judge `items` on all ranks and collect their scores, one batch per
        rank at a time (progress lines keep coming; every rank gets the same mix of cells)."""
        from .ranks import RankError, share

        ranks = self.ranks
        step = self.batch_size * ranks.world
        for start in range(0, len(items), step):
            chunk = items[start : start + step]
            work = [(e.cell.prompt, self._seed((e, i)), i < self.thumbnails) for e, i in chunk]
            ranks.broadcast(("make", self.rank_tag, work))
            try:
                mine = self.make_share(work, share(work, 0, ranks.world))
            except BaseException:
                # the other ranks are waiting in the gather: answer it before this rank stops,
                # so every rank stays at the same collective (the run then ends cleanly)
                ranks.gather({"rows": [], "error": "synthcxr: rank 0 stopped"})
                raise
            for part in ranks.gather({"rows": mine, "error": None}) or []:
                if part is None or part["error"]:
                    raise RankError(part["error"] if part else "synthcxr: a rank sent nothing back")
                for j, valid, scores, thumb in part["rows"]:
                    entry, i = chunk[j]
                    done[(entry.cell.key, i)] = _Done(work[j][1], valid, scores, thumb)
                    self.stats.generated += 1
                    self.stats.invalid += int(not valid)
            self._report(done, todo)

    def make_share(self, work: Sequence[tuple[str, int, bool]], indices: Sequence[int]) -> list[tuple[int, bool, np.ndarray, np.ndarray | None]]:
        """Generate and judge work[j] for j in indices (prompt, seed, thumbnail wanted), write them
        to this process's cache (shard); returns (j, valid, scores, thumbnail) per item."""
        out = []
        for start in range(0, len(indices), self.batch_size):
            part = list(indices[start : start + self.batch_size])
            prompts, seeds = [work[j][0] for j in part], [int(work[j][1]) for j in part]
            images = self._generate(prompts, seeds)
            bad = invalid_mask(images)
            scores = self._judge(images, bad)
            if self.cache is not None:
                from .cache import sample_key

                fp = self.generator.fingerprint
                self._store([(sample_key(fp, p, s), p, s) for p, s in zip(prompts, seeds)], images, bad, scores)
            for k, j in enumerate(part):
                thumb = _thumbnail(images[k], self.thumbnail_size) if work[j][2] else None
                out.append((j, bool(not bad[k]), scores[k], thumb))
        return out

    def _thumb(self, i: int, image: np.ndarray) -> np.ndarray | None:
        return _thumbnail(image, self.thumbnail_size) if i < self.thumbnails else None

    # -- with a cache ----------------------------------------------------------------------------

    def _ensure_cached(self, todo: list[_Todo], done: dict[tuple[str, int], _Done]) -> None:
        from .cache import sample_key

        cache = self.cache
        gen_fp, judge_fp, outputs = self.generator.fingerprint, self.judge.fingerprint, list(self.judge.outputs)
        keys = {(e.cell.key, i): sample_key(gen_fp, e.cell.prompt, self._seed((e, i))) for e, i in todo}

        def key(item: _Todo) -> str:
            return keys[(item[0].cell.key, item[1])]

        pending = list(todo)
        while pending:
            progressed = False
            found = cache.lookup([key(t) for t in pending])
            hits = [t for t in pending if key(t) in found]
            misses = [t for t in pending if key(t) not in found]
            if hits:
                progressed = True
                misses += self._serve_hits(hits, [found[key(t)] for t in hits], judge_fp, outputs, done)
                self._report(done, todo)
            if self.ranks is not None and misses:  # every rank draws a share, each into its own shard
                self._spread(misses, done, todo)
                misses = []
            waiting: list[_Todo] = []
            for start in range(0, len(misses), self.batch_size):
                batch = misses[start : start + self.batch_size]
                mine = set(cache.claim([key(t) for t in batch]))
                ours = [t for t in batch if key(t) in mine]
                waiting += [t for t in batch if key(t) not in mine]  # another process is drawing these
                if not ours:
                    continue
                progressed = True
                try:
                    images, bad, scores = self._make(ours, done)
                    self._store([(key(t), t[0].cell.prompt, self._seed(t)) for t in ours], images, bad, scores)
                except BaseException:
                    cache.release([key(t) for t in ours])
                    raise
                self._report(done, todo)
            pending = waiting
            if pending and not progressed:
                time.sleep(0.25)
                self.stats.waited_seconds += 0.25

    def _serve_hits(self, hits: list[_Todo], found: list[Any], judge_fp: str, outputs: list[str], done: dict[tuple[str, int], _Done]) -> list[_Todo]:
        """Fill done from cached samples; returns the hits whose stored file turned out corrupt."""
        cache = self.cache
        scored = cache.scores(judge_fp, outputs, [f.image_sha for f in found if f.valid])
        nan_row = np.full(len(outputs), np.nan)
        need: list[tuple[_Todo, Any, np.ndarray | None]] = []
        check = self._to_verify(hits, found, scored)
        for item, f in zip(hits, found):
            scores = scored.get(f.image_sha) if f.valid else nan_row
            if scores is None or item[1] < self.thumbnails or (item[0].cell.key, item[1]) in check:
                need.append((item, f, scores))
            else:
                done[(item[0].cell.key, item[1])] = _Done(self._seed(item), f.valid, scores)
                self.stats.cached += 1
        corrupt: list[_Todo] = []
        redraw: list[tuple[_Todo, Any, np.ndarray | None]] = []
        loaded: list[tuple[_Todo, Any, np.ndarray | None, np.ndarray]] = []
        for item, f, scores in need:
            image = cache.load_image(f) if f.file is not None else None
            if image is not None:
                loaded.append((item, f, scores, image))
            elif f.file is not None:  # failed its hash check: dropped, generated again as a miss
                corrupt.append(item)
                self.stats.corrupt += 1
            else:
                redraw.append((item, f, scores))
        for start in range(0, len(redraw), self.batch_size):
            part = redraw[start : start + self.batch_size]
            images = self._draw([item for item, _, _ in part])
            self.stats.redrawn += len(part)
            loaded += [(item, f, scores, image) for (item, f, scores), image in zip(part, images)]
        for start in range(0, len(loaded), self.batch_size):
            part = loaded[start : start + self.batch_size]
            verify = [j for j, (item, f, scores, _) in enumerate(part) if scores is not None and f.valid and (item[0].cell.key, item[1]) in check]
            if verify:  # the judge now must agree with the stored score (an edited cache is caught)
                now = self._judge(np.stack([part[j][3] for j in verify]), np.zeros(len(verify), dtype=bool))
                for j, row in zip(verify, now):
                    stored = part[j][2]
                    if not np.allclose(row, stored, rtol=0.0, atol=1e-4, equal_nan=True):
                        cell = part[j][0][0].cell
                        k = int(np.nanargmax(np.abs(row - stored)))
                        raise CacheMismatch(
                            f"synthcxr: cache {getattr(cache, 'root', '')}: a stored score does not match the judge "
                            f"(cell {cell.key!r}, sample {part[j][0][1]}, output {outputs[k]!r}: stored {stored[k]:.4f}, judged now {row[k]:.4f}; "
                            "the cache was edited or the judge changed without a new fingerprint); delete the cache or use --synthcxr-no-cache"
                        )
            unscored = [j for j, (_, f, scores, _) in enumerate(part) if scores is None]
            if unscored:  # a new judge: score the cached images, keep the scores
                images = np.stack([part[j][3] for j in unscored])
                new = self._judge(images, np.zeros(len(images), dtype=bool))
                cache.put_scores(judge_fp, outputs, [part[j][1].image_sha for j in unscored], new)
                for j, row in zip(unscored, new):
                    part[j] = (part[j][0], part[j][1], row, part[j][3])
            for item, f, scores, image in part:
                done[(item[0].cell.key, item[1])] = _Done(self._seed(item), f.valid, scores, self._thumb(item[1], image))
                self.stats.cached += 1
        return corrupt

    def _to_verify(self, hits: list[_Todo], found: list[Any], scored: dict[str, np.ndarray]) -> set[tuple[str, int]]:
        """(cell, index) of the cached samples to re-judge: up to verify_per_cell per cell per run,
        picked by a seeded hash (the same ones on every run with this seed, different per cell)."""
        import hashlib

        by_cell: dict[str, list[int]] = {}
        for item, f in zip(hits, found):
            if f.valid and f.image_sha in scored:
                by_cell.setdefault(item[0].cell.key, []).append(item[1])
        chosen: set[tuple[str, int]] = set()
        for key, indices in by_cell.items():
            room = self.verify_per_cell - self._verified.get(key, 0)
            if room <= 0:
                continue
            rank = sorted(indices, key=lambda i: hashlib.sha256(f"{self.base_seed}\x1f{key}\x1f{i}".encode()).digest())
            picked = rank[:room]
            self._verified[key] = self._verified.get(key, 0) + len(picked)
            chosen.update((key, i) for i in picked)
        return chosen

    def table(self, cells: Sequence[Cell], n: int) -> Any:
        """Score table of samples 0..n-1 of the cells (generating what is missing)."""
        import pandas as pd

        self.ensure(cells, n)
        frames = [self._frame(self._cells[cell.key]).iloc[:n] for cell in dict.fromkeys(cells)]
        return pd.concat(frames, ignore_index=True)

    def _frame(self, entry: _CellSamples) -> Any:
        """All samples of one cell as a frame, rebuilt only when the cell has grown (checks ask
        for tables every round: building them afresh each time was most of a warm run)."""
        import pandas as pd

        if entry.frame is None or len(entry.frame) != len(entry.seeds):
            cell, n = entry.cell, len(entry.seeds)
            attrs = cell.attributes
            scores = np.vstack(entry.scores) if entry.scores else np.empty((0, len(self.judge.outputs)))
            columns: dict[str, Any] = {
                "cell": [cell.key] * n,
                "finding": [cell.finding or ""] * n,
                "sex": [attrs.get("sex", "")] * n,
                "race": [attrs.get("race", "")] * n,
                "age": [attrs.get("age", "")] * n,  # years as text; "" when the prompt names none
                "named": np.full(n, cell.named, dtype=bool),
                "i": np.arange(n),
                "seed": np.asarray(entry.seeds, dtype=np.int64),
                "valid": np.asarray(entry.valid, dtype=bool),
                # made with its own seed (a folder manifest may serve another row): pairs by seed
                "seeded": self._seeded(cell, entry.seeds),
            }
            for j, output in enumerate(self.judge.outputs):
                columns[score_column(output)] = scores[:, j]
            entry.frame = pd.DataFrame(columns)
        return entry.frame

    def _seeded(self, cell: Cell, seeds: Sequence[int]) -> np.ndarray:
        matched = getattr(self.generator, "seed_matched", None)
        if matched is None:  # generators that draw from the seed
            return np.ones(len(seeds), dtype=bool)
        prompt = cell.prompt
        return np.asarray([bool(matched(prompt, int(s))) for s in seeds], dtype=bool)

    def images(self, cells: Sequence[Cell], n: int) -> tuple[np.ndarray, Any]:
        """Images of samples 0..n-1 of the cells, in the row order of table(cells, n), with that
        table (for checks that need pixels or features, not only scores). Invalid samples are
        included; filter them with the table's 'valid' column."""
        table = self.table(cells, n)
        prompts = [c.prompt for c in dict.fromkeys(cells) for _ in range(n)]
        images = self._load_images(prompts, [int(s) for s in table["seed"]])
        return images, table

    def images_at(self, cell: Cell, seeds: Sequence[int]) -> np.ndarray:
        """Images of one cell's samples with the given seeds, as the judge saw them."""
        return self._load_images([cell.prompt] * len(seeds), [int(s) for s in seeds])

    def _load_images(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        """Stored files from the cache where there are any; the rest drawn again from their seeds
        (identical to the judged images)."""
        out: list[np.ndarray | None] = [None] * len(prompts)
        if self.cache is not None and self.store_images:
            from .cache import sample_key

            fp = self.generator.fingerprint
            keys = [sample_key(fp, p, s) for p, s in zip(prompts, seeds)]
            found = self.cache.lookup(keys)
            for j, k in enumerate(keys):
                if k in found:
                    out[j] = self.cache.load_image(found[k])
        todo = [j for j, image in enumerate(out) if image is None]
        for start in range(0, len(todo), self.batch_size):
            part = todo[start : start + self.batch_size]
            for j, image in zip(part, self.generator.generate([prompts[j] for j in part], [seeds[j] for j in part])):
                out[j] = image
        return np.stack(out) if out else np.empty((0, 0, 0), np.float32)

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
