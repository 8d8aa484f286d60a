"""The synthetic-vs-reference data of one audit: judges the reference images once, computes judge
features and MS-SSIM values (memoised per sample), and hands checks a :class:`Versus` bundle.

The audit session owns one :class:`Comparison`; checks stay pure functions of what it builds.
With a cache folder, the reference set's judge scores and features are kept in
``<cache>/reference/<key>.npz``, keyed by the reference's rows and image files (size and
modification time), the judge's fingerprint, the feature extractor and the image size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hashlib
import os
from pathlib import Path

import numpy as np

from ..sampling.cells import Cell
from ..sampling.pool import score_column
from ..checks.reference import Versus

#: item families whose verdict reads one judge output (a finding or probe)
JUDGED_FAMILIES = ("bias", "validity", "uncertainty", "hallucination", "versus-real")


class Comparison:
    def __init__(self, pool: Any, reference: Any = None, *, image_size: int | None = None, cache_dir: Path | None = None) -> None:
        self.pool = pool
        self.reference = reference  # a reference.ReferenceSet, or None (diversity needs none)
        self.image_size = image_size
        self.cache_dir = Path(cache_dir) / "reference" if cache_dir is not None else None
        self.cache_hits = 0
        self._ref_scores: Any = None
        self._ref_features: np.ndarray | None = None
        self._features: dict[tuple[str, int], np.ndarray] = {}
        self._msssim: dict[tuple[str, int], float] = {}
        self._extractor: Any = None
        self.feature_kind: str | None = None
        self._concerns: dict[Any, list[str]] = {}

    # -- reference side ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return int(self.image_size or getattr(self.pool.generator, "size", None) or 224)

    def reference_images(self) -> np.ndarray:
        return self.reference.images(size=self.size)

    def _cache_file(self, what: str, detail: str) -> Path | None:
        if self.cache_dir is None:
            return None
        blob = "\x1f".join([what, detail, self.reference.content_fingerprint, self.pool.judge.fingerprint, str(self.size)])
        return self.cache_dir / f"{what}-{hashlib.sha256(blob.encode()).hexdigest()[:32]}.npy"

    def _cached(self, what: str, detail: str, compute: Any) -> np.ndarray:
        """compute() once per reference set, judge and image size (kept in the cache folder)."""
        path = self._cache_file(what, detail)
        if path is not None and path.is_file():
            try:
                value = np.load(path, allow_pickle=False)
                if len(value) == len(self.reference):
                    self.cache_hits += 1
                    return value
            except (OSError, ValueError):
                pass  # unreadable: computed again and rewritten
        value = np.asarray(compute(), dtype=np.float64)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            with open(partial, "wb") as fh:
                np.save(fh, value, allow_pickle=False)
            os.replace(partial, path)  # atomic: parallel runs never read half a file
        return value

    def reference_scores(self) -> Any:
        """The reference records with the judge's scores (p:<output>) beside the labels."""
        if self._ref_scores is None:
            import pandas as pd

            judge = self.pool.judge
            outputs = list(judge.outputs)
            scores = self._cached("scores", ",".join(outputs), lambda: judge.predict(self.reference_images()))
            frame = pd.DataFrame(scores, columns=[score_column(o) for o in outputs])
            self._ref_scores = pd.concat([self.reference.records.reset_index(drop=True), frame], axis=1)
        return self._ref_scores

    def extractor(self) -> Any:
        if self._extractor is None:
            from ..models.features import feature_extractor

            self.feature_kind, self._extractor = feature_extractor(self.pool.judge)
        return self._extractor

    def reference_features(self) -> np.ndarray:
        if self._ref_features is None:
            extract = self.extractor()
            self._ref_features = self._cached("features", str(self.feature_kind), lambda: extract(self.reference_images()))
        return self._ref_features

    # -- synthetic side ---------------------------------------------------------------------------

    def synthetic_features(self, cells: Sequence[Cell], n: int) -> tuple[np.ndarray, Any]:
        """Features of samples 0..n-1 of the cells in table order (NaN rows for invalid images)."""
        table = self.pool.table(cells, n)
        keys = list(zip(table["cell"], table["i"].astype(int)))
        extract = self.extractor()
        for cell in dict.fromkeys(cells):  # one cell's images at a time: bounded memory
            if all((cell.key, i) in self._features for i in range(n)):
                continue
            images, part = self.pool.images([cell], n)
            valid = part["valid"].to_numpy()
            todo = [i for i in range(n) if (cell.key, i) not in self._features and valid[i]]
            if todo:
                for i, row in zip(todo, extract(images[todo])):
                    self._features[(cell.key, i)] = row
            width = len(next(iter(self._features.values()))) if self._features else 0
            for i in range(n):
                self._features.setdefault((cell.key, i), np.full(width, np.nan))
        return np.stack([self._features[k] for k in keys]) if keys else np.empty((0, 0)), table

    def msssim(self, cells: Sequence[Cell], n: int) -> Any:
        """MS-SSIM of the disjoint pairs (0, 1), (2, 3), ... of each cell's valid samples."""
        import pandas as pd

        from ..models.features import ms_ssim_pairs

        table = self.pool.table(cells, n)
        wanted = [(c.key, i) for c in dict.fromkeys(cells) for i in range(0, n - 1, 2)]
        for cell in dict.fromkeys(cells):  # one cell's images at a time: bounded memory
            todo_pairs = [i for i in range(0, n - 1, 2) if (cell.key, i) not in self._msssim]
            if not todo_pairs:
                continue
            images, part = self.pool.images([cell], n)
            valid = part["valid"].to_numpy()
            todo = [i for i in todo_pairs if valid[i] and valid[i + 1]]
            if todo:
                values = ms_ssim_pairs(images[todo], images[[i + 1 for i in todo]])
                for i, value in zip(todo, values):
                    self._msssim[(cell.key, i)] = float(value)
        rows = [{"cell": k[0], "i": k[1], "j": k[1] + 1, "msssim": self._msssim[k]} for k in wanted if k in self._msssim]
        return pd.DataFrame(rows, columns=["cell", "i", "j", "msssim"]), table

    # -- the judge on the reference ---------------------------------------------------------------

    def concerns(self, check: Any, alpha: float, *, max_gap: float = 0.1, max_ece: float = 0.1) -> list[str]:
        """Reasons to doubt the judge output an item's verdict reads, for the subgroups it judges
        (bias items: theirs; the others: every subgroup), from the labelled reference set."""
        from ..checks.reference import judge_concerns

        if check.family == "demographic":
            return self._attribute_concerns(check, alpha) if self.reference is not None else []
        finding = getattr(check, "finding", None)
        if self.reference is None or not finding or check.family not in JUDGED_FAMILIES:
            return []
        subgroups = tuple(getattr(check, "subgroups", ()) or ())
        key = (finding, subgroups, alpha, max_gap, max_ece)
        if key not in self._concerns:
            self._concerns[key] = judge_concerns(self.reference_scores(), finding, subgroups, alpha, max_gap=max_gap, max_ece=max_ece)
        return self._concerns[key]

    def attribute_audit(self, attribute: str, alpha: float, tolerance: float | None = None) -> dict[str, Any] | None:
        """The attribute judge against the reference set's recorded sex, race or age."""
        from ..checks.demographic import attribute_audit

        return attribute_audit(self.reference_scores(), attribute, alpha, tolerance)

    def _attribute_concerns(self, check: Any, alpha: float) -> list[str]:
        from ..checks.demographic import attribute_concern

        key = ("attribute", check.attribute, check.tolerance, alpha, check.threshold)
        if key not in self._concerns:
            self._concerns[key] = attribute_concern(self.attribute_audit(check.attribute, alpha, check.tolerance), check.threshold)
        return self._concerns[key]

    # -- bundles for checks ------------------------------------------------------------------------

    def versus(self, check: Any, n: int) -> Versus:
        """The check's bundle; an unreadable reference image or missing feature extractor stops
        the run with its one line."""
        from ..models.features import FeatureError
        from .readers import ReferenceError

        try:
            return self._versus(check, n)
        except (ReferenceError, FeatureError) as exc:
            import pytest

            pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)

    def _versus(self, check: Any, n: int) -> Versus:
        cells = check.cells()
        ref = None
        if getattr(check, "needs_reference", False):  # judge scores only where the check reads them
            ref = self.reference_scores() if getattr(check, "needs_scores", False) else self.reference.records
        if getattr(check, "needs_features", False):
            features, table = self.synthetic_features(cells, n)
            return Versus(table, ref, features, self.reference_features())
        if getattr(check, "needs_msssim", False):
            pairs, table = self.msssim(cells, n)
            return Versus(table, ref, msssim=pairs)
        return Versus(self.pool.table(cells, n), ref)
