"""Judge-error correction (Rogan-Gladen) and the small-denominator rule: spec keys, checks on
hand-built score tables, and the known answer on the phantom world."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_synthcxr import stats
from pytest_synthcxr.sampling.cells import Cell, derive_seed
from pytest_synthcxr.checks import build_checks
from pytest_synthcxr.sampling.pool import score_column
from pytest_synthcxr.checks.bias import BiasCheck
from pytest_synthcxr.checks.hallucination import HallucinationCheck
from pytest_synthcxr.stats.sequential import run_check
from pytest_synthcxr.spec.schema import SpecError, load_spec

F, H = (("sex", "female"), ("race", "White")), (("sex", "female"), ("race", "Hispanic"))
JUDGE = stats.JudgeAccuracy(tp=90, fn=10, tn=95, fp=5)


def table(cells: dict[Cell, list[float]], output: str) -> pd.DataFrame:
    frames = []
    for cell, scores in cells.items():
        frame = pd.DataFrame({score_column(output): scores})
        frame.insert(0, "cell", cell.key)
        frame.insert(1, "finding", cell.finding or "")
        frame["valid"] = True
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def calls(positive: int, n: int) -> list[float]:
    return [0.9] * positive + [0.2] * (n - positive)


# ----------------------------------------------------------------------------- spec


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "synthcxr.toml"
    path.write_text("[hallucination]\nmax_rate = 0.5\n" + body)
    return path


def test_judge_error_from_counts_or_rates(tmp_path):
    spec = load_spec(write(tmp_path, "[judge_error.COVID-19]\ntp = 90\nfn = 10\ntn = 95\nfp = 5\n")).spec
    check = next(c for c in build_checks(spec) if c.family == "hallucination")
    assert check.judge_accuracy == JUDGE and not check.decide_corrected
    body = "[judge_error.COVID-19]\nsensitivity = 0.9\npositives = 100\nspecificity = 0.95\nnegatives = 100\nverdict = 'corrected'\n"
    check = next(c for c in build_checks(load_spec(write(tmp_path, body)).spec) if c.family == "hallucination")
    assert check.judge_accuracy == JUDGE and check.decide_corrected
    assert spec.min_denominator == 20 and all(c.min_denominator == 20 for c in build_checks(spec))


@pytest.mark.parametrize(
    "body, expected",
    [
        ("[judge_error.COVID-19]\ntp = 9\nfn = 1\ntn = 9\n", "judge_error.COVID-19: give either tp, fn, tn, fp or sensitivity, positives, specificity, negatives"),
        ("[judge_error.Flu]\ntp = 9\nfn = 1\ntn = 9\nfp = 1\n", "judge_error.Flu: Input should be 'COVID-19'"),
        ("[judge_error.COVID-19]\ntp = 0\nfn = 0\ntn = 9\nfp = 1\n", "judge_error.COVID-19: tp + fn and tn + fp must each be at least 1"),
        ("[judge_error.COVID-19]\ntp = 9\nfn = 1\ntn = 9\nfp = 1\nverdict = 'both'\n", "judge_error.COVID-19.verdict: Input should be 'raw' or 'corrected'"),
        ("min_denominator = 0\n", "min_denominator: Input should be greater than or equal to 1 (got 0)"),
    ],
)
def test_bad_judge_error_is_one_line(tmp_path, body, expected):
    path = write(tmp_path, body) if not body.startswith("min_") else tmp_path / "s.toml"
    if body.startswith("min_"):
        path.write_text(body)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "\n" not in str(info.value) and expected in str(info.value)


# ----------------------------------------------------------------------------- checks


def hallucination(threshold: float, **kw) -> HallucinationCheck:
    population = (Cell(None, F, False), Cell("Effusion", F, False))
    return HallucinationCheck(name="COVID-19", samples=100, threshold=threshold, direction="max", population=population, **kw)


def covid_table(flagged: int) -> pd.DataFrame:
    # 100 + 100 images, `flagged` of them called COVID-19 positive
    return table({Cell(None, F, False): calls(flagged // 2, 100), Cell("Effusion", F, False): calls(flagged - flagged // 2, 100)}, "COVID-19")


def test_corrected_rate_is_shown_beside_the_raw_one():
    check = hallucination(0.3, judge_accuracy=JUDGE)
    result = check.evaluate(covid_table(84), 0.95)  # 84 / 200 = 0.42 flagged
    assert result.estimate == stats.proportion(84, 200, 0.05)  # the raw rate decides by default
    expected = stats.corrected_proportion(84, 200, JUDGE, 0.05)
    assert (result.corrected.low, result.corrected.high) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert result.corrected.value == pytest.approx(0.37 / 0.85)
    assert result.decided_on == "raw" and result.verdict == "fail"
    assert "; judge-corrected 0.435 [CI" in result.message() and "sensitivity 0.900, specificity 0.950" in result.message()
    corrected = result.as_dict()["judge_corrected"]
    assert corrected["decides"] is False and corrected["counts"] == {"tp": 90, "fn": 10, "tn": 95, "fp": 5}
    assert hallucination(0.3).evaluate(covid_table(84), 0.95).as_dict()["judge_corrected"] is None


def test_the_spec_can_decide_on_the_corrected_rate():
    # 24 of 200 flagged (0.12) with a judge whose false positives explain them (sp 0.90):
    # raw 0.12 exceeds 0.05 -> fail; corrected (0.12 + 0.9 - 1) / (0.8 + 0.9 - 1) = 0.0286, but its interval
    # (judge uncertainty included) still reaches past 0.05 -> inconclusive, never a raw fail
    judge = stats.JudgeAccuracy(tp=800, fn=200, tn=900, fp=100)
    raw = hallucination(0.05, judge_accuracy=judge).evaluate(covid_table(24), 0.95)
    decided = hallucination(0.05, judge_accuracy=judge, decide_corrected=True).evaluate(covid_table(24), 0.95)
    assert raw.verdict == "fail" and decided.verdict == "inconclusive"
    assert decided.decided_on == "corrected" and decided.corrected.value == pytest.approx(0.02 / 0.7)
    assert decided.corrected.low <= 0.05 <= decided.corrected.high
    assert "verdict on the judge-corrected 0.029" in decided.message()
    # with a looser bound the corrected interval decides a pass
    assert hallucination(0.2, judge_accuracy=judge, decide_corrected=True).evaluate(covid_table(24), 0.95).verdict == "pass"


def test_sequential_run_decides_on_the_corrected_rate_too():
    judge = stats.JudgeAccuracy(tp=800, fn=200, tn=900, fp=100)
    check = hallucination(0.3, judge_accuracy=judge, decide_corrected=True)
    result, _ = run_check(check, lambda c, n: covid_table(24), 0.95, sequential=True, first_round=16)
    assert result.verdict == "pass" and result.interval == "anytime" and result.corrected.high <= 0.3


# ----------------------------------------------------------------------------- small denominators


def test_a_small_denominator_never_passes():
    check = BiasCheck(name="x", samples=10, threshold=0.9, direction="max", finding="Effusion", subgroups=(F, H), named=True)
    t = table({Cell("Effusion", F, True, True): calls(5, 10), Cell("Effusion", H, True, True): calls(5, 12)}, "Effusion")
    assert check.evaluate(t, 0.95).verdict == "pass"  # the rule off (min_denominator 0)
    small = BiasCheck(**{**check.__dict__, "min_denominator": 20})
    result = small.evaluate(t, 0.95)
    assert result.verdict == "inconclusive"
    assert result.note == "only 10 valid images in the smallest subgroup behind the estimate (min_denominator 20): too few to pass"
    assert result.note in result.message()
    # a fail is still a fail
    failing = BiasCheck(**{**small.__dict__, "threshold": 0.05})
    t2 = table({Cell("Effusion", F, True, True): calls(10, 10), Cell("Effusion", H, True, True): calls(0, 12)}, "Effusion")
    assert failing.evaluate(t2, 0.95).verdict == "fail"


def test_small_denominator_note_survives_sequential_and_says_what_would_decide():
    check = hallucination(0.9, min_denominator=500)
    result, _ = run_check(check, lambda c, n: covid_table(20), 0.95, sequential=True, first_round=16)
    assert result.verdict == "inconclusive"
    assert result.note.startswith("only 200 valid images behind the estimate (min_denominator 500): too few to pass; ")


# ----------------------------------------------------------------------------- known answer

KNOWN = """
seed = 0
samples_per_cell = 100
sampling = "fixed"
findings = ["Effusion"]
[subgroups]
sex = ["female", "male"]
race = ["White"]
[hallucination]
max_rate = 0.05
[judge_error.COVID-19]
tp = {tp}
fn = {fn}
tn = {tn}
fp = {fp}
verdict = "corrected"
"""


def phantom_covid_accuracy(n: int = 60) -> stats.JudgeAccuracy:
    """The phantom judge's COVID-19 confusion counts on phantom-biased, from the generator's own
    truth, on seeds disjoint from the audit's (plain prompts of the audit's kinds)."""
    from pytest_synthcxr.models.generators.phantom import PhantomGenerator
    from pytest_synthcxr.models.judges.phantom import PhantomJudge
    from pytest_synthcxr.sampling.prompts import build_prompt

    gen, judge = PhantomGenerator("phantom-biased"), PhantomJudge()
    images, truth = [], []
    for prompt in (build_prompt(None), build_prompt("Effusion"), build_prompt("Cardiomegaly")):
        for i in range(n):
            image, drawn = gen.draw(prompt, derive_seed(424242, prompt, i))
            images.append(image)
            truth.append("COVID-19" in drawn.findings)
    called = judge.predict(np.stack(images))[:, judge.outputs.index("COVID-19")] > 0.5
    has = np.array(truth)
    return stats.JudgeAccuracy(int((called & has).sum()), int((~called & has).sum()), int((~called & ~has).sum()), int((called & ~has).sum()))


def test_corrected_hallucination_rate_covers_the_planted_42_percent(pytester):
    """phantom-biased plants COVID-19 in 42% of images: the corrected rate's interval covers 0.42;
    a judge accuracy claimed wrongly (specificity 0.7) moves it away, so the test can fail."""
    from pytest_synthcxr.models.generators.phantom import PRESETS

    planted = PRESETS["phantom-biased"].hallucination["COVID-19"]
    judge = phantom_covid_accuracy()
    assert judge.tp + judge.fn > 30 and judge.tn + judge.fp > 30
    pytester.makefile(".toml", synthcxr=KNOWN.format(tp=judge.tp, fn=judge.fn, tn=judge.tn, fp=judge.fp))
    result = pytester.runpytest(
        "--synthcxr-model=phantom-biased", "--synthcxr-json=out.json", "--synthcxr-report=out.html", "--synthcxr-no-cache", "-p", "no:cacheprovider"
    )
    data = json.loads((pytester.path / "out.json").read_text())
    item = data["items"][0]
    corrected = item["judge_corrected"]
    assert corrected["decides"] and item["verdict"] == "fail"
    assert corrected["low"] <= planted <= corrected["high"]
    result.stdout.fnmatch_lines(["*verdict on the judge-corrected*"])
    # the report: schema-valid JSON, the corrected rate and the plan's size beside the raw rate and budget
    assert item["planned_per_cell"] == 58  # proportion_samples(0.05, 0.05) = 232 over 4 cells (Effusion and normal x 2 subgroups)
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_synthcxr.report.schema import load_schema

    jsonschema.validate(data, load_schema(), cls=jsonschema.Draft202012Validator)
    html = (pytester.path / "out.html").read_text()
    assert f"judge-corrected {corrected['estimate']:.3f}" in html and "(decides)" in html and "plan 58 per cell" in html
    # the same flagged count through a judge claimed to have specificity 0.7 (and the measured
    # sensitivity): the corrected interval no longer covers the planted rate
    flagged = round(item["estimate"] * item["n"])
    wrong = stats.corrected_proportion(flagged, item["n"], stats.JudgeAccuracy(judge.tp, judge.fn, 700, 300))
    assert not wrong.low <= planted <= wrong.high


# ----------------------------------------------------------------------------- differences


def test_corrected_difference_hand_computed():
    # raw gap 0.2 [0.1, 0.3]; se 90/100 and sp 95/100 at alpha / 6 (z = 2.63826): Wilson
    # se [0.793135, 0.954805], sp [0.857879, 0.983554], so J = se + sp - 1 in [0.651014, 0.938359];
    # corrected 0.2 / 0.85 = 0.235294 in [0.1 / 0.938359, 0.3 / 0.651014] = [0.106569, 0.460819]
    e = stats.corrected_difference(stats.Estimate(0.2, 0.1, 0.3, 50), JUDGE)
    assert e.value == pytest.approx(0.235294, abs=1e-6) and e.n == 50
    assert (e.low, e.high) == pytest.approx((0.106569, 0.460819), abs=1e-6)
    # a raw interval reaching below 0 starts at 0; a judge that may be no better than chance: up to 1
    assert stats.corrected_difference(stats.Estimate(0.05, -0.02, 0.12, 50), JUDGE).low == 0.0
    assert stats.corrected_difference(stats.Estimate(0.05, 0.01, 0.12, 50), stats.JudgeAccuracy(6, 4, 6, 4)).high == 1.0


def test_tpr_gap_is_corrected_beside_the_raw_one():
    judge = stats.JudgeAccuracy(tp=800, fn=200, tn=900, fp=100)
    check = BiasCheck(
        name="x", samples=100, threshold=0.2, direction="max", finding="Effusion", subgroups=(F, H), named=True, judge_accuracy=judge
    )
    t = table({Cell("Effusion", F, True, True): calls(80, 100), Cell("Effusion", H, True, True): calls(60, 100)}, "Effusion")
    result = check.evaluate(t, 0.95)
    assert result.estimate == stats.gap([80, 60], [100, 100], 0.05)  # raw gap 0.2 decides by default
    raw_third = stats.gap([80, 60], [100, 100], 0.05 / 3)
    expected = stats.corrected_difference(raw_third, judge, 0.05)
    assert (result.corrected.low, result.corrected.high) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert result.corrected.value == pytest.approx(0.2 / 0.7)  # J = 0.8 + 0.9 - 1: the raw gap understates the truth
    ratio_check = BiasCheck(**{**check.__dict__, "statistic": "ratio", "threshold": 0.5, "direction": "min"})
    assert ratio_check.evaluate(t, 0.95).corrected is None  # ratios are not corrected
