"""Relative deviation (issue 17): max |r_g / r_ref - 1| with its interval from the simultaneous box."""

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from pytest_synthcxr.checks.bias import BiasCheck
from pytest_synthcxr.spec.schema import BiasSpec
from pytest_synthcxr.stats.relative import largest_relative_deviation


def test_hand_computed_against_statsmodels_wilson():
    counts, nobs = [30, 20, 45], [100, 100, 100]
    estimate, worst = largest_relative_deviation(counts, nobs, reference=0, alpha=0.05)
    assert worst == 2 and estimate.value == pytest.approx(45 / 30 - 1)
    box = [proportion_confint(c, n, alpha=0.05 / 3, method="wilson") for c, n in zip(counts, nobs)]
    (l0, h0), (l1, h1), (l2, h2) = box
    # each |d_g| over the box; the statistic's bounds are the largest of them
    d1 = (l1 / h0 - 1, h1 / l0 - 1)
    d2 = (l2 / h0 - 1, h2 / l0 - 1)
    low1 = 0.0 if d1[0] <= 0 <= d1[1] else min(map(abs, d1))
    low2 = 0.0 if d2[0] <= 0 <= d2[1] else min(map(abs, d2))
    assert estimate.low == pytest.approx(max(low1, low2), abs=1e-9)
    assert estimate.high == pytest.approx(max(max(map(abs, d1)), max(map(abs, d2))), abs=1e-9)
    assert estimate.n == 300


def test_anytime_interval_contains_the_fixed_one():
    fixed, _ = largest_relative_deviation([60, 80], [400, 400], 0, 0.05, "fixed")
    anytime, _ = largest_relative_deviation([60, 80], [400, 400], 0, 0.05, "anytime")
    assert anytime.low <= fixed.low and anytime.high >= fixed.high and anytime.value == fixed.value


@pytest.mark.parametrize("interval", ["fixed", "anytime"])
def test_coverage_of_the_largest_relative_deviation(interval):
    """Seeded: true rates 0.12 (reference), 0.09, 0.12, 0.15: truth max |r/r_ref - 1| = 0.25."""
    rng = np.random.default_rng(1717)
    truth_rates, n = np.array([0.12, 0.09, 0.12, 0.15]), 300
    truth = max(abs(r / truth_rates[0] - 1) for r in truth_rates[1:])
    runs = 300 if interval == "fixed" else 100
    covered = 0
    for _ in range(runs):
        counts = rng.binomial(n, truth_rates)
        e, _ = largest_relative_deviation(list(counts), [n] * 4, 0, 0.05, interval)
        covered += e.low <= truth <= e.high
    assert covered / runs >= 0.95  # Bonferroni box: conservative


def test_zero_reference_rate_gives_an_unbounded_interval():
    e, _ = largest_relative_deviation([0, 5], [50, 50], 0, 0.05)
    assert e.high == float("inf") and e.low >= 0


def test_spec_scale_relative_only_for_deviation():
    spec = BiasSpec(metric="sr", statistic="deviation", scale="relative", max=0.1)
    assert spec.scale == "relative"
    with pytest.raises(ValueError, match="scale = 'relative' applies to statistic 'deviation' only"):
        BiasSpec(metric="tpr", statistic="gap", scale="relative", max=0.1)


def test_check_quantity_and_no_power_formula():
    groups = ((("sex", "female"),), (("sex", "male"),))
    check = BiasCheck(name="x", samples=10, threshold=0.2, direction="max", metric="sr", statistic="deviation",
                      finding="Effusion", subgroups=groups, reference=groups[0], named=True, scale="relative")
    assert "relative deviation" in check.quantity
    assert check.power_samples(0.05, 0.9, 0.05) is None


RELATIVE_SPEC = """
seed = 0
findings = ["Effusion"]
[subgroups]
sex = ["female"]
race = ["White", "Hispanic"]
reference = { sex = "female", race = "White" }
[[bias]]
metric = "sr"
statistic = "deviation"
scale = "relative"
prompt = "named"
max = 0.9
samples = 400
"""


def test_relative_sr_deviation_item_on_phantom_biased(pytester):
    """End to end: the item's id, label, JSON facts, and the planted truth inside its interval.
    Truth: SR pools the Effusion and normal cells; named omission 0.36 (White women) and 0.56
    (Hispanic women), judge sensitivity 1.0 on drawn effusions (benchmarks/bias_rates.json), and
    the named-prompt false calls on normal studies (ghost_named) the same for both subgroups, so
    |SR_H / SR_W - 1| = 0.20 / (0.64 + 2 q) with q in [0, 0.1]: between 0.24 and 0.32."""
    import json

    pytester.makefile(".toml", synthcxr=RELATIVE_SPEC)
    result = pytester.runpytest("--synthcxr-model=phantom-biased", "--synthcxr-json=out.json", "--synthcxr-no-cache", "-p", "no:cacheprovider")
    items = {i["check"]: i for i in json.loads((pytester.path / "out.json").read_text())["items"]}
    item = items["bias[sr-relative-deviation-Effusion-sex*race-named]"]
    assert item["bias"]["scale"] == "relative" and item["bias"]["statistic"] == "deviation"
    assert "relative deviation" in item["quantity"] and "Hispanic female" in item["detail"]
    assert item["low"] <= 0.24 and item["high"] >= 0.32  # the whole range of the truth is inside
    assert 0.1 < item["estimate"] < 0.5
    assert "paired: " in item["detail"]  # named prompts share seeds across subgroups (issue 17)
    result.assert_outcomes(passed=1)
