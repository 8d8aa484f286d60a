"""The reference set's judge scores and features are computed once per reference, judge and image
size, and kept in the cache folder: a second audit reads them back; a changed image file, judge or
image size computes them again."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from pytest_synthcxr.reference.comparison import Comparison
from pytest_synthcxr.models.generators.phantom import PhantomGenerator
from pytest_synthcxr.models.judges.phantom import PhantomJudge
from pytest_synthcxr.sampling.pool import SamplePool
from pytest_synthcxr.reference.readers import load_reference


class CountingJudge(PhantomJudge):
    calls = 0

    def predict(self, images: np.ndarray) -> np.ndarray:
        CountingJudge.calls += len(images)
        return super().predict(images)


def _manifest(folder: Path, n: int = 6) -> Path:
    images = PhantomGenerator("phantom").generate(["Right pleural effusion."] * n, list(range(n)))
    lines = ["image,findings,sex,race,age"]
    for k, image in enumerate(images):
        Image.fromarray((image * 255).round().astype(np.uint8)).save(folder / f"{k}.png")
        lines.append(f"{k}.png,Effusion,F,White,60")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv"


def _comparison(ref, cache: Path, judge=None) -> Comparison:
    return Comparison(SamplePool(PhantomGenerator("phantom"), judge or CountingJudge(), 0), ref, cache_dir=cache)


def test_scores_and_features_are_read_back(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    cache = tmp_path / "cache"
    first = _comparison(load_reference(str(manifest)), cache)
    before = CountingJudge.calls
    scores, features = first.reference_scores(), first.reference_features()
    assert CountingJudge.calls == before + 6 and first.cache_hits == 0
    second = _comparison(load_reference(str(manifest)), cache)
    again_scores, again_features = second.reference_scores(), second.reference_features()
    assert CountingJudge.calls == before + 6 and second.cache_hits == 2  # nothing judged again
    assert again_scores.equals(scores) and np.array_equal(again_features, features)
    assert len(list((cache / "reference").glob("*.npy"))) == 2 and not list((cache / "reference").glob("*.tmp"))
    # a replaced image file (new size or time) is a new reference
    path = tmp_path / "3.png"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    third = _comparison(load_reference(str(manifest)), cache)
    third.reference_scores()
    assert third.cache_hits == 0 and CountingJudge.calls == before + 12
    # another image size is another cache entry
    other = Comparison(SamplePool(PhantomGenerator("phantom"), CountingJudge(), 0), load_reference(str(manifest)), image_size=192, cache_dir=cache)
    other.reference_scores()
    assert other.cache_hits == 0


def test_without_a_cache_folder_nothing_is_written(tmp_path: Path) -> None:
    ref = load_reference("phantom:16")
    comparison = Comparison(SamplePool(PhantomGenerator("phantom"), PhantomJudge(), 0), ref)
    assert comparison.reference_scores().shape[0] == 16 and comparison.cache_hits == 0
    assert list(tmp_path.iterdir()) == []
