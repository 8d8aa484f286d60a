"""Sample pool on a tiny stand-in generator and judge (no phantom, no torch). Report tests: test_report.py."""

import numpy as np

from pytest_synthcxr.sampling.cells import Cell
from pytest_synthcxr.sampling.pool import SamplePool


class NoiseGenerator:
    """Image i depends only on (prompt i, seed i); seed % 7 == 0 gives a blacked-out image."""

    name = "noise"
    fingerprint = "0" * 64
    settings = {"size": 16}

    def generate(self, prompts, seeds):
        out = []
        for prompt, seed in zip(prompts, seeds):
            img = np.random.default_rng(seed).random((16, 16), dtype=np.float32)
            out.append(np.zeros((16, 16), np.float32) if seed % 7 == 0 else img)
        return np.stack(out)


class MeanJudge:
    name = "mean"
    fingerprint = "1" * 64
    outputs = ("Effusion", "Cardiomegaly", "COVID-19")

    def predict(self, images):
        m = images.reshape(len(images), -1).mean(axis=1)
        return np.stack([m, 1 - m, (m * 10) % 1], axis=1).astype(float)


CELLS = [Cell(f, (("sex", s),), n) for f in ("Effusion", None) for s in ("female", "male") for n in (False, True)]


def test_pool_is_independent_of_batch_size_and_request_order():
    a = SamplePool(NoiseGenerator(), MeanJudge(), 3, batch_size=5)
    b = SamplePool(NoiseGenerator(), MeanJudge(), 3, batch_size=64)
    a.ensure(CELLS[:3], 4)  # grow in a different order and in two steps
    a.ensure(list(reversed(CELLS)), 9)
    ta, tb = a.table(CELLS, 9), b.table(CELLS, 9)
    assert ta.equals(tb)
    assert a.stats.generated == b.stats.generated == 9 * len(CELLS)
    assert b.table(CELLS, 9).equals(tb) and b.stats.generated == 9 * len(CELLS)  # nothing regenerated


def test_invalid_images_are_counted_not_scored():
    pool = SamplePool(NoiseGenerator(), MeanJudge(), 0, batch_size=8)
    table = pool.table(CELLS, 30)
    invalid = table[~table["valid"]]
    assert len(invalid) == pool.stats.invalid > 0
    assert (invalid["seed"] % 7 == 0).all()
    assert invalid["p:Effusion"].isna().all()
    assert sum(pool.invalid_count(c) for c in CELLS) == pool.stats.invalid
