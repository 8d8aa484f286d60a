"""Candidate vs released model in one run (issue 18): --synthcxr-baseline-model, the compare[...]
items from max_regression / max_decline, their paired interval, known answers in the phantom
world, and the one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pytest_synthcxr.checks.compare import CANDIDATE, RELEASED, CompareCheck
from pytest_synthcxr.checks.validity import ValidityCheck
from pytest_synthcxr.sampling.cells import Cell
from pytest_synthcxr.sampling.pool import score_column
from pytest_synthcxr.spec.schema import AuditSpec
from pytest_synthcxr.stats.confseq import empirical_bernstein_cs
from pytest_synthcxr.stats.intervals import beta_binomial_cs, threshold_prior

SPEC = """
seed = 0
samples_per_cell = 600
findings = ["Effusion"]

[subgroups]
sex = ["female"]
race = ["White", "Hispanic"]
reference = {{ sex = "female", race = "White" }}

[[bias]]
metric = "tpr"
statistic = "deviation"
max = 0.9
max_regression = 0.05
samples = {bias_samples}

[validity]
min_sensitivity = 0.3
max_decline = 0.05
"""


@pytest.mark.parametrize(
    "section,message",
    [
        ('[hallucination]\nmax_rate = 0.1\nmax_decline = 0.02\n', "max_decline is for measures where smaller is worse; max_rate is worse when larger: use max_regression"),
        ('[[bias]]\nstatistic = "ratio"\nmin = 0.8\nmax_regression = 0.02\n', "a ratio is worse when smaller: use max_decline"),
        ('[[bias]]\nstatistic = "gap"\nmax = 0.2\nmax_decline = 0.02\n', "a gap is worse when larger: use max_regression"),
    ],
)
def test_a_margin_in_the_wrong_direction_is_one_line(pytester, section, message):
    pytester.makefile(".toml", synthcxr='findings = ["Effusion"]\n' + section)
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-baseline-model=phantom-fair", "--collect-only", "-q")
    out = result.stdout.str() + result.stderr.str()
    assert message in out and "Traceback" not in out


def test_items_ids_and_selection(pytester):
    pytester.makefile(".toml", synthcxr=SPEC.format(bias_samples=100))
    plain = pytester.runpytest("--synthcxr-model=phantom-regressed", "--collect-only", "-q")
    assert "compare[" not in plain.stdout.str()  # no released model: no comparison items
    result = pytester.runpytest("--synthcxr-model=phantom-regressed", "--synthcxr-baseline-model=phantom-fair", "--collect-only", "-q", "-m", "compare")
    result.stdout.fnmatch_lines([
        "synthcxr.toml::compare[[]bias-tpr-deviation-Effusion-sex*race-named[]]",
        "synthcxr.toml::compare[[]validity-sensitivity-Effusion[]]",
        "*2/4 tests collected (2 deselected)*",
    ])


def test_an_unknown_released_model_is_one_line(pytester):
    pytester.makefile(".toml", synthcxr=SPEC.format(bias_samples=100))
    result = pytester.runpytest("--synthcxr-model=phantom-fair", "--synthcxr-baseline-model=no-such-model", "--collect-only", "-q")
    out = result.stdout.str() + result.stderr.str()
    assert "no-such-model" in out and "Traceback" not in out
    assert result.ret != 0


def test_planted_regression_fails_only_where_planted(pytester):
    """phantom-regressed = phantom-fair with Hispanic women's named omission 0.6 instead of 0.4:
    the deviation from White women regresses by 0.2 x (sensitivity - false calls) (the phantom
    judge: about 0.2), inside the comparison's interval and beyond its margin; plain-prompt images
    are the same in both models, so the sensitivity comparison passes on its paired interval."""
    pytester.makefile(".toml", synthcxr=SPEC.format(bias_samples=1500))
    result = pytester.runpytest(
        "--synthcxr-model=phantom-regressed", "--synthcxr-baseline-model=phantom-fair", "--synthcxr-json=out.json", "-p", "no:cacheprovider"
    )
    items = {i["check"]: i for i in json.loads((pytester.path / "out.json").read_text())["items"]}
    bias = items["compare[bias-tpr-deviation-Effusion-sex*race-named]"]
    assert bias["verdict"] == "fail", bias
    assert bias["low"] <= 0.2 <= bias["high"]
    assert "paired: " in bias["detail"] and "candidate" in bias["detail"] and "released" in bias["detail"]
    sens = items["compare[validity-sensitivity-Effusion]"]
    assert sens["verdict"] == "pass" and sens["estimate"] == 0.0 and "paired: " in sens["detail"]
    assert items["validity[sensitivity-Effusion]"]["verdict"] == "pass"  # the candidate's own items still run
    result.assert_outcomes(passed=3, failed=1)


def _two_model_table(n: int, rate_c: float, rate_r: float, shared: float, seed: int = 0) -> pd.DataFrame:
    """A sensitivity item's table for both models: n images asked for Effusion each, same seeds;
    with probability `shared` a seed's two calls come from one uniform."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    v = np.where(rng.random(n) < shared, u, rng.random(n))
    cell = Cell("Effusion", (("sex", "female"),), False)
    frames = []
    for model, rate, draw in ((CANDIDATE, rate_c, u), (RELEASED, rate_r, v)):
        frames.append(pd.DataFrame({
            "cell": cell.key, "finding": "Effusion", "i": np.arange(n), "seed": np.arange(n), "valid": True, "seeded": True,
            score_column("Effusion"): np.where(draw < rate, 0.9, 0.1), "model": model,
        }))
    return pd.concat(frames, ignore_index=True)


def test_compare_interval_is_the_paired_sequence_intersected_with_the_unpaired_one():
    cell = Cell("Effusion", (("sex", "female"),), False)
    inner = ValidityCheck(name="sensitivity-Effusion", samples=800, threshold=0.5, direction="min", metric="sensitivity",
                          finding="Effusion", population=(cell,), compare_margin=0.05)
    check = CompareCheck.of(inner)
    assert (check.nodename, check.threshold, check.direction) == ("compare[validity-sensitivity-Effusion]", 0.05, "max")
    table = _two_model_table(800, 0.55, 0.6, shared=0.8)
    got = check.measure(table, 0.05, "anytime")
    calls_c = table[table["model"] == CANDIDATE][score_column("Effusion")].to_numpy() > 0.5
    calls_r = table[table["model"] == RELEASED][score_column("Effusion")].to_numpy() > 0.5
    # smaller is worse for sensitivity: the regression is released minus candidate
    assert got.estimate.value == pytest.approx(calls_r.mean() - calls_c.mean())
    low_p, high_p = empirical_bernstein_cs(calls_r.astype(float) - calls_c, 0.0125, (-1.0, 1.0))
    _, bound = beta_binomial_cs(int((calls_r != calls_c).sum()), len(calls_c), 0.0125, threshold_prior(0.05))
    low_p, high_p = max(low_p, -bound), min(high_p, bound)
    a, b = inner.measure(table[table["model"] == CANDIDATE], 0.025, "anytime"), inner.measure(table[table["model"] == RELEASED], 0.025, "anytime")
    low_u, high_u = b.estimate.low - a.estimate.high, b.estimate.high - a.estimate.low
    assert (got.estimate.low, got.estimate.high) == pytest.approx((max(low_p, low_u), min(high_p, high_u)))
    assert got.stats["paired"] == 1.0
    assert got.estimate.high - got.estimate.low < high_u - low_u  # pairing pays at this agreement


def test_spec_margins_reach_the_checks():
    from pytest_synthcxr.checks import build_checks

    spec = AuditSpec.model_validate({
        "findings": ["Effusion"], "validity": [{"min_sensitivity": 0.5, "max_fpr": 0.2, "max_decline": 0.03, "max_regression": 0.04}],
        "hallucination": [{"max_rate": 0.1, "max_regression": 0.02}], "uncertainty": [{"max_entropy": 0.1}],
    })
    margins = {c.nodename: c.compare_margin for c in build_checks(spec)}
    assert margins["validity[sensitivity-Effusion]"] == 0.03 and margins["validity[fpr-Effusion]"] == 0.04
    assert margins["hallucination[COVID-19]"] == 0.02 and margins["uncertainty[Effusion]"] is None


SAME = """
seed = 0
samples_per_cell = 400
findings = ["Effusion"]

[subgroups]
sex = ["female"]
race = ["White"]

[validity]
min_sensitivity = 0.3
max_fpr = 0.2
max_decline = 0.02
max_regression = 0.02

[hallucination]
max_rate = 0.2
max_regression = 0.02
"""


def test_candidate_equal_to_released_passes_every_comparison_at_margin_002(pytester):
    """The same model on both sides: every paired comparison passes at a margin of 0.02 within
    its budget (the images never differ, and the bound on how often they differ shrinks fast),
    and the run warns that every comparison is 0."""
    pytester.makefile(".toml", synthcxr=SAME)
    result = pytester.runpytest("--synthcxr-model=phantom-fair", "--synthcxr-baseline-model=phantom-fair", "--synthcxr-json=out.json", "-p", "no:cacheprovider")
    items = {i["check"]: i for i in json.loads((pytester.path / "out.json").read_text())["items"]}
    compared = {k: v for k, v in items.items() if k.startswith("compare[")}
    assert set(compared) == {"compare[validity-sensitivity-Effusion]", "compare[validity-fpr-Effusion]", "compare[hallucination-COVID-19]"}
    for name, item in compared.items():
        assert item["verdict"] == "pass" and item["estimate"] == 0.0 and item["high"] <= 0.02, (name, item)
        assert item["samples_per_cell"] <= 400
    assert "is the candidate itself (same fingerprint)" in result.stdout.str()


PLANTED = """
seed = 3
samples_per_cell = 200
findings = ["Effusion"]

[subgroups]
sex = ["female"]
race = ["White", "Hispanic"]
reference = { sex = "female", race = "White" }

[[bias]]
metric = "tpr"
statistic = "gap"
max = 0.9
max_regression = 0.02
samples = 800

[hallucination]
max_rate = 0.9
max_regression = 0.05
"""


def test_planted_faults_of_phantom_biased_appear_as_regressions_against_phantom(pytester):
    """`phantom` released, `phantom-biased` candidate: its planted faults are regressions. The
    COVID-19 rate (planted 0.42, none in `phantom`) fails with the planted rise inside the
    interval; the named TPR gap between White and Hispanic women (0.36 vs 0.56 omission in
    phantom-biased, none in phantom) fails too."""
    pytester.makefile(".toml", synthcxr=PLANTED)
    pytester.runpytest("--synthcxr-model=phantom-biased", "--synthcxr-baseline-model=phantom", "--synthcxr-json=out.json", "-p", "no:cacheprovider")
    items = {i["check"]: i for i in json.loads((pytester.path / "out.json").read_text())["items"]}
    covid = items["compare[hallucination-COVID-19]"]
    assert covid["verdict"] == "fail", covid
    assert covid["low"] <= 0.42 <= covid["high"] and covid["low"] > 0.05
    gap = items["compare[bias-tpr-gap-Effusion-sex*race-named]"]
    assert gap["verdict"] == "fail", gap
    assert gap["compare"]["candidate"]["estimate"] > gap["compare"]["released"]["estimate"]


def test_a_reader_corrected_item_is_compared_on_its_judge_only_rate(tmp_path):
    """Reader labels were read on the candidate's images only: the comparison item of a
    verdict = "reader" item compares both models on the judge's rate, with the same cells."""
    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.checks.compare import CompareCheck
    from pytest_synthcxr.checks.reader import ReaderValidityCheck
    from pytest_synthcxr.checks.validity import ValidityCheck
    from pytest_synthcxr.reader.store import COLUMNS
    from pytest_synthcxr.spec.schema import load_spec

    (tmp_path / "labels.csv").write_text(",".join(COLUMNS) + "\n")
    spec = tmp_path / "s.synthcxr.toml"
    spec.write_text('findings = ["Effusion"]\n[[validity]]\nmin_sensitivity = 0.5\nmax_decline = 0.05\nverdict = "reader"\n[reader]\nlabels = "labels.csv"\n')
    (check,) = [c for c in build_checks(load_spec(spec).spec) if c.metric == "sensitivity"]
    assert isinstance(check, ReaderValidityCheck)
    compare = CompareCheck.of(check)
    assert type(compare.inner) is ValidityCheck and compare.inner.cells() == check.cells()
    assert compare.nodename == "compare[validity-sensitivity-Effusion]" and compare.threshold == 0.05
