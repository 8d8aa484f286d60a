"""Checks on small hand-built score tables: the numbers must be the hand-computed ones."""

import numpy as np
import pandas as pd
import pytest

from pytest_synthcxr import stats
from pytest_synthcxr.sampling.cells import Cell
from pytest_synthcxr.checks import build_checks
from pytest_synthcxr.sampling.pool import score_column
from pytest_synthcxr.checks.bias import BiasCheck
from pytest_synthcxr.checks.hallucination import HallucinationCheck
from pytest_synthcxr.checks.uncertainty import UncertaintyCheck
from pytest_synthcxr.checks.validity import ValidityCheck
from pytest_synthcxr.spec.schema import AuditSpec
from pytest_synthcxr.stats.paired_groups import paired_gap

F, H = (("sex", "female"), ("race", "White")), (("sex", "female"), ("race", "Hispanic"))
OUTPUTS = ("Effusion", "COVID-19")


def table(spec: dict[Cell, dict[str, list[float]]], *, shared_seeds: bool = False) -> pd.DataFrame:
    """Score table with given probabilities per cell and output; each cell's own seeds, or with
    `shared_seeds` the same seed for sample i of every cell (paired cells)."""
    frames = []
    for k, (cell, scores) in enumerate(spec.items()):
        n = len(next(iter(scores.values())))
        frame = pd.DataFrame({score_column(o): scores.get(o, [0.1] * n) for o in OUTPUTS})
        frame.insert(0, "cell", cell.key)
        frame.insert(1, "finding", cell.finding or "")
        frame["valid"] = True
        frame["i"] = range(n)
        frame["seed"] = [i if shared_seeds else 1000 * (k + 1) + i for i in range(n)]
        frame["seeded"] = True
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def calls(positive: int, n: int) -> list[float]:
    return [0.9] * positive + [0.2] * (n - positive)


def test_tpr_gap_matches_hand_counts():
    check = BiasCheck(name="x", samples=10, threshold=0.1, direction="max", finding="Effusion", subgroups=(F, H), named=True)
    cells = {Cell("Effusion", F, True, paired=True): {"Effusion": calls(8, 10)}, Cell("Effusion", H, True, paired=True): {"Effusion": calls(4, 10)}}
    result = check.evaluate(table(cells), 0.95)  # seeds not shared: the unpaired box decides
    expected = stats.gap([8, 4], [10, 10], 0.05)
    assert result.estimate == expected
    assert result.estimate.value == pytest.approx(0.4)
    assert [g.label for g in result.groups] == ["White female", "Hispanic female"]
    assert "lowest Hispanic female 0.400, highest White female 0.800" in result.message()
    assert "unpaired" in result.message()
    paired = check.evaluate(table(cells, shared_seeds=True), 0.95)  # the same calls on shared seeds
    f, h = (np.array(calls(k, 10)) > 0.5 for k in (8, 4))
    assert paired.estimate == paired_gap([f.astype(float), h.astype(float)], 0.05, "fixed")
    assert "paired: 10 same-seed samples per subgroup, discordance 0.400" in paired.message()


def test_invalid_samples_are_excluded():
    check = BiasCheck(name="x", samples=4, threshold=0.5, direction="max", finding="Effusion", subgroups=(F, H), named=True)
    for shared in (False, True):
        t = table({Cell("Effusion", F, True, paired=True): {"Effusion": [0.9, 0.9, 0.2, 0.9]}, Cell("Effusion", H, True, paired=True): {"Effusion": [0.9] * 4}}, shared_seeds=shared)
        t.loc[3, "valid"] = False
        result = check.evaluate(t, 0.95)
        assert (result.groups[0].count, result.groups[0].n) == (2, 3)


def test_selection_rate_counts_every_image_of_the_group():
    check = BiasCheck(
        name="x", samples=4, threshold=0.2, direction="max", metric="sr", statistic="deviation", finding="Effusion",
        subgroups=(F, H), reference=F, named=True, all_findings=("Effusion",),
    )
    cells = [Cell("Effusion", F, True, True), Cell(None, F, True, True), Cell("Effusion", H, True, True), Cell(None, H, True, True)]
    assert set(check.cells()) == set(cells)
    t = table(dict(zip(cells, ({"Effusion": calls(4, 4)}, {"Effusion": calls(0, 4)}, {"Effusion": calls(2, 4)}, {"Effusion": calls(1, 4)}))))
    result = check.evaluate(t, 0.95)
    assert result.estimate.value == pytest.approx(abs(3 / 8 - 4 / 8))
    lo, hi = stats.newcombe(3, 8, 4, 8, 0.05)  # one comparison: no adjustment
    assert result.estimate.high == pytest.approx(max(abs(lo), abs(hi)))


def test_deviation_counts_distinct_images():
    # three subgroups, two comparisons with the reference: 3 x 5 images, the reference's counted once
    B = (("sex", "female"), ("race", "Black"))
    check = BiasCheck(
        name="x", samples=5, threshold=0.2, direction="max", statistic="deviation", finding="Effusion",
        subgroups=(F, H, B), reference=F, named=True,
    )
    for shared in (False, True):
        t = table({Cell("Effusion", g, True, True): {"Effusion": calls(k, 5)} for g, k in ((F, 4), (H, 2), (B, 3))}, shared_seeds=shared)
        assert check.evaluate(t, 0.95).estimate.n == 15


def test_prompt_effect_pairs_named_with_plain():
    check = BiasCheck(name="x", samples=10, threshold=0.1, direction="max", statistic="prompt-effect", finding="Effusion", subgroups=(F, H))
    plain = Cell("Effusion", (), False, paired=True)
    assert set(check.cells()) == {Cell("Effusion", F, True, True), Cell("Effusion", H, True, True), plain}
    cells = {Cell("Effusion", F, True, True): {"Effusion": calls(9, 10)}, Cell("Effusion", H, True, True): {"Effusion": calls(3, 10)}, plain: {"Effusion": calls(9, 10)}}
    for shared in (False, True):
        result = check.evaluate(table(cells, shared_seeds=shared), 0.95)
        assert result.estimate.value == pytest.approx(0.6)
        assert "Hispanic female named 0.300 vs plain 0.900" in result.detail
        assert ("paired: 10 same-seed" in result.detail) is shared


def test_validity_sensitivity_fpr_auroc():
    population = (Cell("Effusion", F, False), Cell(None, F, False))
    t = table({population[0]: {"Effusion": [0.9, 0.8, 0.4, 0.7]}, population[1]: {"Effusion": [0.6, 0.1, 0.2, 0.3]}})
    make = lambda metric: ValidityCheck(name=metric, samples=4, threshold=0.5, direction="min", metric=metric, finding="Effusion", population=population)
    assert make("sensitivity").evaluate(t, 0.95).estimate.value == pytest.approx(3 / 4)
    assert make("fpr").evaluate(t, 0.95).estimate.value == pytest.approx(1 / 4)
    # pairs won: 0.9 beats 4, 0.8 beats 4, 0.4 beats 3, 0.7 beats 4 -> 15/16
    assert make("auroc").evaluate(t, 0.95).estimate.value == pytest.approx(15 / 16)


def test_uncertainty_is_mean_binary_entropy():
    population = (Cell(None, F, False),)
    t = table({population[0]: {"Effusion": [0.5, 0.5, 0.0, 1.0]}})
    check = UncertaintyCheck(name="Effusion", samples=4, threshold=0.3, direction="max", finding="Effusion", population=population)
    result = check.evaluate(t, 0.95)
    assert result.estimate.value == pytest.approx(0.5)
    assert result.verdict == "inconclusive"


def test_hallucination_rate_excludes_prompts_asking_for_the_probe():
    population = (Cell("Effusion", F, False), Cell(None, F, False), Cell("COVID-19", F, False))
    check = HallucinationCheck(name="COVID-19", samples=5, threshold=0.05, direction="max", population=population)
    assert Cell("COVID-19", F, False) not in check.cells()
    t = table(
        {
            population[0]: {"COVID-19": calls(2, 5)},
            population[1]: {"COVID-19": calls(1, 5)},
            population[2]: {"COVID-19": calls(5, 5)},
        }
    )
    result = check.evaluate(t, 0.95)
    assert (result.estimate.value, result.estimate.n) == (pytest.approx(0.3), 10)
    assert result.verdict == "fail"  # Wilson lower bound of 3/10 is 0.108 > 0.05
    assert result.message().startswith("fail: COVID-19 detection rate on images not asking for it = 0.300 [95% CI 0.108, 0.603], max 0.05, n=10")


def test_duplicate_spec_entries_get_unique_ids():
    spec = AuditSpec.model_validate({"hallucination": [{"max_rate": 0.1}, {"max_rate": 0.2}]})
    names = [c.nodename for c in build_checks(spec)]
    assert names == ["hallucination[COVID-19]", "hallucination[COVID-19-1]"]
