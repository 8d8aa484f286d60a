"""Demographic fidelity with a planted answer: a generator that draws the other sex for a seeded
20% of prompts naming sex, judged by a stand-in attribute judge that reads the drawn sex from a
marker the generator leaves in the image. The agreement is the planted 0.8."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_synthcxr.sampling.cells import Cell, derive_seed
from pytest_synthcxr.checks.demographic import DemographicCheck
from pytest_synthcxr.models.generators.phantom import PhantomGenerator
from pytest_synthcxr.sampling.pool import SamplePool
from pytest_synthcxr.sampling.prompts import build_prompt, parse_prompt
from pytest_synthcxr.spec.schema import AuditSpec
from pytest_synthcxr.checks import build_checks

GRID = [(("sex", s), ("race", r)) for s in ("female", "male") for r in ("White", "Hispanic")]
CELLS = tuple(Cell(f, g, True) for g in GRID for f in ("Effusion", None))


class SexSwapping:
    """The faithful phantom; for a seeded `rate` of images it draws the other sex. The drawn sex
    is marked in the top-left 4 x 4 pixels (1: female, 0: male)."""

    name = "sex-swapping"
    cache_images = False
    fingerprint = "sex-swapping"
    settings: dict = {}

    def __init__(self, rate: float) -> None:
        self.base = PhantomGenerator("phantom")
        self.rate = rate

    def swapped(self, seed: int) -> bool:
        return bool(np.random.default_rng([seed, 5]).random() < self.rate)

    def generate(self, prompts, seeds) -> np.ndarray:
        out = np.empty((len(prompts), 224, 224), dtype=np.float32)
        for k, (prompt, seed) in enumerate(zip(prompts, seeds)):
            parsed = parse_prompt(prompt)
            sex = parsed.sex
            if self.swapped(int(seed)):
                sex = "male" if sex == "female" else "female"
            finding = next(iter(parsed.findings), None)
            image, drawn = self.base.draw(build_prompt(finding, {"sex": sex, "race": parsed.race}), int(seed))
            image[:4, :4] = 1.0 if drawn.sex == "female" else 0.0
            out[k] = image
        return out


class MarkerJudge:
    """Reads the marker: sex:female / sex:male probabilities, and a three-class race output that
    always says White (so Hispanic prompts have no class)."""

    name = "marker"
    outputs = ("sex:male", "sex:female", "race:Asian", "race:Black", "race:White")
    fingerprint = "marker"
    settings: dict = {}

    def predict(self, images: np.ndarray) -> np.ndarray:
        female = (images[:, :4, :4].mean(axis=(1, 2)) > 0.5).astype(float)
        n = len(images)
        return np.column_stack([1 - female, female, np.zeros(n), np.zeros(n), np.ones(n)])


def test_agreement_is_the_planted_share() -> None:
    n = 40  # 320 images
    generator = SexSwapping(0.2)
    pool = SamplePool(generator, MarkerJudge(), 3)
    check = DemographicCheck(name="sex", samples=n, threshold=0.9, direction="min", attribute="sex", population=CELLS)
    result = check.evaluate(pool.table(check.cells(), n), 0.95)
    planted = sum(generator.swapped(derive_seed(3, c.key, i)) for c in CELLS for i in range(n))
    assert result.estimate.n == 320 and result.estimate.value == pytest.approx(1 - planted / 320)
    assert result.estimate.low <= 0.8 <= result.estimate.high and result.verdict == "fail"
    assert {g.label for g in result.groups} == {"White female", "Hispanic female", "White male", "Hispanic male"}
    faithful = SamplePool(SexSwapping(0.0), MarkerJudge(), 3)
    assert check.evaluate(faithful.table(check.cells(), n), 0.95).verdict == "pass"


def test_race_subgroups_without_a_class_are_left_out_and_named() -> None:
    pool = SamplePool(SexSwapping(0.0), MarkerJudge(), 3)
    check = DemographicCheck(name="race", samples=4, threshold=0.5, direction="min", attribute="race", population=CELLS)
    result = check.evaluate(pool.table(check.cells(), 4), 0.95)
    assert result.estimate.value == 1.0 and result.estimate.n == 16  # White prompts only
    assert "left out (no such class in the judge): Hispanic female, Hispanic male" in result.detail


def test_a_judge_without_attribute_outputs_says_what_to_add() -> None:
    from pytest_synthcxr.models.judges.phantom import PhantomJudge

    pool = SamplePool(PhantomGenerator("phantom"), PhantomJudge(), 0)
    check = DemographicCheck(name="sex", samples=2, threshold=0.9, direction="min", attribute="sex", population=CELLS[:1])
    with pytest.raises(ValueError, match=r"the judge has no sex outputs \(p:sex:\*\); add an attribute judge to the panel"):
        check.evaluate(pool.table(check.cells(), 2), 0.95)


def test_spec_section_expands_to_one_item_per_attribute() -> None:
    spec = AuditSpec.model_validate({"findings": ["Effusion"], "demographic": [{"attribute": "sex", "min_agreement": 0.9}, {"attribute": "race", "min_agreement": 0.8}]})
    checks = [c for c in build_checks(spec) if c.family == "demographic"]
    assert [c.nodename for c in checks] == ["demographic[sex-agreement]", "demographic[race-agreement]"]
    assert all(cell.named for cell in checks[0].cells()) and checks[0].direction == "min"
