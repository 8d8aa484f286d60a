"""The fair phantom world: an imperfect model-plus-judge system (TPR about 0.6, as real judges on
real generators) with no disparity anywhere, with or without demographics in the prompt."""

import numpy as np
import pytest

from pytest_synthcxr.models.aliases import BUILTIN_MODELS
from pytest_synthcxr.models.generators.phantom import (
    FAIR_OMISSION,
    PRESETS,
    PhantomGenerator,
)
from pytest_synthcxr.sampling.cells import derive_seed
from pytest_synthcxr.sampling.prompts import build_prompt
from pytest_synthcxr.stats import intervals

GROUPS = [{"sex": s, "race": r} for s in ("female", "male") for r in ("White", "Black", "Asian", "Hispanic")]


def omitted_share(preset: str, finding: str, attributes: dict | None, n: int = 400) -> tuple[int, int]:
    gen = PhantomGenerator(preset)
    prompt = build_prompt(finding, attributes)
    omitted = sum(finding in gen.plan(prompt, derive_seed(17, prompt, i))[1].omitted for i in range(n))
    return omitted, n


def test_fair_preset_is_registered_and_the_faithful_one_unchanged():
    assert BUILTIN_MODELS["phantom-fair"] == ("phantom", "phantom-fair", "phantom")
    assert PRESETS["phantom"] == type(PRESETS["phantom"])()  # no fault at all


@pytest.mark.parametrize("finding", ["Effusion", "Cardiomegaly"])
def test_fair_omission_is_the_same_for_every_subgroup_named_or_not(finding):
    counts = [omitted_share("phantom-fair", finding, g) for g in GROUPS] + [omitted_share("phantom-fair", finding, None)]
    for c, n in counts:  # each near the planted 0.4 (99.9% Wilson)
        low, high = intervals.wilson(c, n, 0.001)
        assert low <= FAIR_OMISSION <= high, (c, n)
    # and no disparity: a chi-square test of homogeneity across the 9 prompts does not reject
    from scipy.stats import chi2_contingency

    table = np.array([[c, n - c] for c, n in counts])
    assert chi2_contingency(table).pvalue > 0.001
    # nothing else is planted: no hallucination, ghost or ignored age
    f = PRESETS["phantom-fair"]
    assert (dict(f.hallucination), f.ghost, f.age_ignored, dict(f.omission_named)) == ({}, 0.0, 0.0, {})


FAIR_SPEC = """
seed = 0
findings = ["Effusion"]
[subgroups]
sex = ["female", "male"]
race = ["Hispanic"]
reference = { sex = "female", race = "Hispanic" }
[[bias]]
metric = "tpr"
statistic = "gap"
prompt = "named"
max = 0.45
samples = 150
"""


def test_phantom_fair_through_the_plugin_passes_with_tpr_near_the_planted_truth(pytester):
    """The alias works end to end; each subgroup's TPR interval holds the planted 0.6 (the judge
    finds every drawn effusion: sensitivity 1.0 on this preset, benchmarks/bias_rates.json)."""
    import json

    pytester.makefile(".toml", synthcxr=FAIR_SPEC)
    result = pytester.runpytest("--synthcxr-model=phantom-fair", "--synthcxr-json=out.json", "--synthcxr-no-cache", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    (item,) = json.loads((pytester.path / "out.json").read_text())["items"]
    assert item["check"] == "bias[tpr-gap-Effusion-sex*race-named]" and item["verdict"] == "pass"
    for group in item["groups"]:
        assert group["low"] <= 1 - FAIR_OMISSION <= group["high"], group
