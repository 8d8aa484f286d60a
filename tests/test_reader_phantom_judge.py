"""Known answer in the phantom world itself: phantoms rendered by phantom-fair (an asked-for
effusion is drawn about 60% of the time), the phantom judge (CNN) with a planted
subgroup-dependent miss, readers who report what the phantom truly drew.

The planted judge is the phantom judge, except that on the images of Hispanic women's cells it
fails to call Effusion 60% of the time (seeded by each image's hash). Its sensitivity on images
asked for Effusion falls well below the true share of those images that show an effusion. Two
simulated readers label 40 images per cell, each flipping 3% of answers. The reader-corrected
(PPI) interval covers the true share; the judge-only interval does not; the agreement table flags
Hispanic women and no one else."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_synthcxr.sampling.cache import image_sha
from pytest_synthcxr.sampling.cells import derive_seed, subgroup_label

N, READ, MISS, PLANTED = 150, 40, 0.6, "Hispanic female"
SPEC = """
seed = 0
findings = ["Effusion"]
[subgroups]
sex = ["female", "male"]
race = ["White", "Hispanic"]
[[validity]]
min_sensitivity = 0.3
samples = 150
"""


class PlantedJudge:
    """The phantom judge with a planted miss on one set of images (see the module docstring)."""

    name = "phantom-planted"

    def __init__(self, base, planted: set[str], miss: float, output: str = "Effusion") -> None:
        self.base, self.planted, self.miss = base, planted, miss
        self.outputs = base.outputs
        self.column = base.outputs.index(output)

    @property
    def fingerprint(self) -> str:
        return f"{self.base.fingerprint}:planted"

    @property
    def settings(self) -> dict:
        return {"planted_miss": self.miss}

    def predict(self, images: np.ndarray) -> np.ndarray:
        scores = self.base.predict(images)
        for k, image in enumerate(images):
            sha = image_sha(image)
            if sha in self.planted and int(sha[:8], 16) / 2**32 < self.miss:
                scores[k, self.column] = min(scores[k, self.column], 0.1)
        return scores


def test_planted_phantom_judge_is_corrected_by_readers(tmp_path):
    pytest.importorskip("torch")
    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.checks.reader import ReaderLabel, ReaderValidityCheck, agreement_rows, with_reader
    from pytest_synthcxr.models.generators.phantom import PhantomGenerator
    from pytest_synthcxr.models.judges.phantom import PhantomJudge
    from pytest_synthcxr.sampling.pool import SamplePool
    from pytest_synthcxr.spec.schema import load_spec

    spec_path = tmp_path / "planted.synthcxr.toml"
    spec_path.write_text(SPEC)
    (item,) = build_checks(load_spec(spec_path).spec)
    generator = PhantomGenerator("phantom-fair")  # draws an asked-for effusion about 60% of the time
    asked = [c for c in item.population if c.finding == "Effusion"]
    planted_cells = [c for c in item.population if subgroup_label(c.subgroup) == PLANTED]
    planted = set()
    for cell in planted_cells:
        seeds = [derive_seed(0, cell.seed_key, i) for i in range(N)]
        planted |= {image_sha(im) for im in generator.generate([cell.prompt] * N, seeds)}
    pool = SamplePool(generator, PlantedJudge(PhantomJudge(device="cpu"), planted, MISS), 0, batch_size=128)
    table = pool.table(item.cells(), N)

    rng = np.random.default_rng(1)
    labels, truth = [], []
    for cell in item.population:
        seeds = [derive_seed(0, cell.seed_key, i) for i in range(N)]
        drawn = [("Effusion" in generator.plan(cell.prompt, s)[1].findings) for s in seeds]
        if cell in asked:
            truth += drawn
        for i in sorted(rng.choice(N, size=READ, replace=False)):
            for reader in ("r1", "r2"):
                says = drawn[i] != bool(rng.random() < 0.03)
                labels.append(ReaderLabel(reader, f"{seeds[i]:064x}", cell.key, seeds[i], "findings", "Effusion", "present" if says else "absent"))
    true_rate = float(np.mean(truth))
    check = with_reader(item, tuple(labels), "classic")
    assert isinstance(check, ReaderValidityCheck)
    result = check.evaluate(table, 0.95)
    e, s = result.estimate, result.stats
    print(f"true {true_rate:.3f}; judge alone {s['judge_only']:.3f} [{s['judge_only_low']:.3f}, {s['judge_only_high']:.3f}]; "
          f"reader-corrected {e.value:.3f} [{e.low:.3f}, {e.high:.3f}]")
    assert e.low <= true_rate <= e.high
    assert s["judge_only_high"] < true_rate
    rows = agreement_rows(check.sample_values(table), labels, "Effusion", asked)
    assert {r["subgroup"] for r in rows if "sensitivity" in r["flagged"]} == {PLANTED}
