"""Which images a reader study shows, and where their pixels are.

- **Findings**: a seeded, stratified random sample of the cache's stored generated images: the
  spec's cells are listed (every check's cells, samples 0..budget-1, seeds by the audit's own rule),
  matched to the cache index on (prompt, seed), and up to `per_cell` images drawn from each cell,
  so every subgroup is read. A reader never sees the prompt, the cell or a score.
- **Real or synthetic**: equal numbers of reference images and generated images, shuffled.
- Each reader gets the study in an order seeded by (seed, reader, task): order effects average out
  across readers, and a reloaded page resumes at the first image that reader has not answered.

Pixels are found only through `png(sha)`: a content hash the study itself listed, whose file path
comes from the cache index (and must look like ``images/ab/<sha>.png|npy``) or whose pixels are
the reference set's, already in memory. Nothing from a request reaches the file system.
"""

from __future__ import annotations

import hashlib
import io
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..sampling.cache import image_sha
from ..sampling.cells import Cell, derive_seed, subgroup_label
from .store import StudyImage

SHA = re.compile(r"^[0-9a-f]{64}$")
_SHARD = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_CACHE_FILE = re.compile(r"^images/[0-9a-f]{2}/([0-9a-f]{64})\.(png|npy)$")

ERR_NO_INDEX = "synthcxr reader: {root}: no sample cache here (index.sqlite missing): run the audit or the fill with this --cache-dir first"
ERR_NO_IMAGES = (
    "synthcxr reader: {root}: the cache holds no stored images of this spec's cells (phantom images are not stored by "
    "default: set cache_images = \"always\" in the spec and run the audit again)"
)


@dataclass(frozen=True)
class Candidate:
    cell: Cell
    seed: int
    image_sha: str
    file: str


def spec_cells(checks: Sequence[Any], base_seed: int) -> dict[tuple[str, int], Cell]:
    """(prompt, seed) -> cell of every sample the checks can ask for (their full budgets)."""
    from ..sampling.plan import cell_budgets

    out: dict[tuple[str, int], Cell] = {}
    for cell, budget in sorted(cell_budgets(checks).items(), key=lambda kv: kv[0].key):
        for i in range(budget):
            out.setdefault((cell.prompt, derive_seed(base_seed, cell.seed_key, i)), cell)
    return out


def cached_candidates(cache_root: Path, cells: dict[tuple[str, int], Cell], generator: str | None = None) -> list[Candidate]:
    """Stored, valid cached images of the cells, of one generator (the given fingerprint, else the
    one with the most matches). The index is opened read-only."""
    root = Path(cache_root)
    if not (root / "index.sqlite").is_file():
        raise StudyError(ERR_NO_INDEX.format(root=cache_root))
    # the top index, then the shards a distributed run wrote (shards/<name>/, same layout)
    indexes = [("", root / "index.sqlite")]
    indexes += [(f"shards/{p.parent.name}/", p) for p in sorted((root / "shards").glob("*/index.sqlite")) if _SHARD.match(p.parent.name)]
    rows = []
    for prefix, index in indexes:
        db = sqlite3.connect(f"{index.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
        try:
            found = db.execute("SELECT generator, prompt, seed, image_sha, file FROM samples WHERE valid = 1 AND file IS NOT NULL").fetchall()
        except sqlite3.Error:
            found = []  # an unreadable shard is left out; the top index's error shows as "no stored images"
        finally:
            db.close()
        rows += [(gen, prompt, seed, sha, rel, prefix) for gen, prompt, seed, sha, rel in found]
    by_generator: dict[str, list[Candidate]] = {}
    for gen, prompt, seed, sha, rel, prefix in rows:
        cell = cells.get((prompt, int(seed)))
        match = _CACHE_FILE.match(rel or "")
        if cell is not None and match and match.group(1) == sha:
            by_generator.setdefault(gen, []).append(Candidate(cell, int(seed), sha, prefix + rel))
    if generator is not None:
        return by_generator.get(generator, [])
    return max(by_generator.values(), key=len, default=[])


def stratified_sample(candidates: Sequence[Candidate], per_cell: int, seed: int) -> list[Candidate]:
    """Up to `per_cell` images of each cell, drawn at random (seeded) without replacement; one
    image hash appears once."""
    by_cell: dict[str, list[Candidate]] = {}
    seen: set[str] = set()
    for c in sorted(candidates, key=lambda c: (c.cell.key, c.seed)):
        if c.image_sha not in seen:
            seen.add(c.image_sha)
            by_cell.setdefault(c.cell.key, []).append(c)
    chosen: list[Candidate] = []
    for key, group in sorted(by_cell.items()):
        rng = np.random.default_rng([seed, _int(key)])
        picks = rng.choice(len(group), size=min(per_cell, len(group)), replace=False)
        chosen += [group[i] for i in sorted(picks)]
    return chosen


def _int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def to_png(image: np.ndarray) -> bytes:
    """An image in [0, 1] as 8-bit grayscale PNG bytes."""
    from PIL import Image

    arr = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0)
    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


class StudyError(Exception):
    """A study that cannot start; str() is the one line shown."""


@dataclass
class Study:
    """The images of one study and how to get their pixels (by hash only)."""

    cache_root: Path
    questions: tuple[str, ...]
    seed: int
    findings: list[StudyImage] = field(default_factory=list)
    versus: list[StudyImage] = field(default_factory=list)
    _files: dict[str, str] = field(default_factory=dict, repr=False)  # sha -> cache-relative file
    _reference: dict[str, bytes] = field(default_factory=dict, repr=False)  # sha -> PNG bytes

    def images(self, task: str) -> list[StudyImage]:
        return self.findings if task == "findings" else self.versus

    def order(self, task: str, reader: str) -> list[str]:
        """This reader's order of the task's images (seeded by seed, reader and task)."""
        shas = [i.image_sha for i in self.images(task)]
        rng = np.random.default_rng([self.seed, _int(f"{reader}\x1f{task}")])
        return [shas[i] for i in rng.permutation(len(shas))]

    def known(self, sha: str) -> bool:
        return bool(SHA.match(sha)) and (sha in self._files or sha in self._reference)

    def png(self, sha: str) -> bytes | None:
        """PNG bytes of a study image, or None for any hash the study did not list (or a cached
        file that no longer matches its hash)."""
        if not SHA.match(sha):
            return None
        if sha in self._reference:
            return self._reference[sha]
        rel = self._files.get(sha)
        if rel is None:
            return None
        path = self.cache_root / rel  # rel came from a cache index and matched _CACHE_FILE (under a checked shard name)
        try:
            data = path.read_bytes()
            if rel.endswith(".png"):
                from PIL import Image

                with Image.open(io.BytesIO(data)) as im:
                    image = (np.asarray(im, dtype=np.uint8) / 255.0).astype(np.float32)
            else:
                image = np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32, copy=False)
        except Exception:  # noqa: BLE001 - unreadable: not served
            return None
        if image_sha(image) != sha:
            return None
        return data if rel.endswith(".png") else to_png(image)


def build_study(
    checks: Sequence[Any],
    cache_root: Path,
    *,
    base_seed: int,
    questions: Sequence[str],
    per_cell: int = 5,
    reference: Any = None,
    versus_images: int = 40,
    generator: str | None = None,
) -> Study:
    """The study of a spec's checks over a cache (and a reference set for real-vs-synthetic)."""
    cells = spec_cells(checks, base_seed)
    candidates = cached_candidates(Path(cache_root), cells, generator)
    if not candidates:
        raise StudyError(ERR_NO_IMAGES.format(root=cache_root))
    study = Study(Path(cache_root), tuple(questions), base_seed)
    chosen = stratified_sample(candidates, per_cell, base_seed)
    study.findings = [_image(c) for c in chosen]
    # only the study's own images are served (not every cached image of the spec's cells)
    study._files = {c.image_sha: c.file for c in chosen}
    if reference is not None and len(reference):
        half = max(1, min(versus_images // 2, len(reference), len(candidates)))
        rng = np.random.default_rng([base_seed, _int("real-synthetic")])
        unique = list({c.image_sha: c for c in candidates}.values())
        generated = [unique[i] for i in sorted(rng.choice(len(unique), size=min(half, len(unique)), replace=False))]
        study._files.update((c.image_sha, c.file) for c in generated)
        size = _size(study, generated[0].image_sha)
        pixels = reference.images(size)
        picks = sorted(rng.choice(len(reference), size=half, replace=False))
        real = []
        for i in picks:
            sha = image_sha(pixels[i])
            study._reference[sha] = to_png(pixels[i])
            real.append(StudyImage(sha, "reference", prompt=str(reference.records["image"].iloc[i])))
        study.versus = [_image(c) for c in generated] + real
    return study


def _image(c: Candidate) -> StudyImage:
    return StudyImage(c.image_sha, "generated", c.cell.key, c.seed, c.cell.prompt, subgroup_label(c.cell.subgroup), c.cell.finding or "")


def _size(study: Study, sha: str) -> int:
    """Side of a generated image (reference images are shown at the same size)."""
    from PIL import Image

    data = study.png(sha)
    if data is None:
        return 224
    with Image.open(io.BytesIO(data)) as im:
        return int(im.size[0])
