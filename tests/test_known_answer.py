"""Known-answer audits of the phantom world: the faithful model passes, the biased one fails
exactly the items whose planted fault exceeds the threshold, and measured rates agree with the
planted truth (seen through the judge's measured sensitivity and false-positive rate)."""

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_synthcxr import stats
from pytest_synthcxr.sampling.cells import derive_seed
from pytest_synthcxr.models.generators.phantom import PRESETS, PhantomGenerator
from pytest_synthcxr.models.judges.phantom import PhantomJudge
from pytest_synthcxr.sampling.prompts import build_prompt

SPECS = Path(__file__).parent.parent / "fixtures" / "specs"
KNOWN = (SPECS / "known-answer.toml").read_text()
GROUPS = [(s, r) for s in ("female", "male") for r in ("White", "Black", "Asian", "Hispanic")]


def audit(pytester, model, spec=KNOWN, *extra):
    pytester.makefile(".toml", synthcxr=spec)
    result = pytester.runpytest(f"--synthcxr-model={model}", "--synthcxr-json=out.json", "-p", "no:cacheprovider", *extra)
    return result, json.loads((pytester.path / "out.json").read_text())


def judge_rates(preset, finding, n=400):
    """The judge's sensitivity and false-positive rate for `finding` on this preset's images,
    measured with the generator's own truth (seeds disjoint from any audit's)."""
    gen, judge = PhantomGenerator(preset), PhantomJudge()
    col = judge.outputs.index(finding)
    hits, positives, false, negatives = 0, 0, 0, 0
    prompts = [build_prompt(finding), build_prompt(None)]
    for i in range(n):
        images, truth = [], []
        for prompt in prompts:
            image, drawn = gen.draw(prompt, derive_seed(987654, prompt, i))
            images.append(image)
            truth.append((finding in drawn.findings, finding in drawn.ghosts))
        called = judge.predict(np.stack(images))[:, col] > 0.5
        for (has, faint), call in zip(truth, called):
            if has:
                positives, hits = positives + 1, hits + int(call)
            elif not faint:  # an omitted finding leaves no trace, not even a faint one
                negatives, false = negatives + 1, false + int(call)
    return hits / positives, false / negatives


def test_faithful_phantom_passes(pytester):
    result, data = audit(pytester, "phantom")
    result.assert_outcomes(passed=len(data["items"]))
    assert data["verdicts"] == {"pass": len(data["items"]), "fail": 0, "inconclusive": 0}


def test_biased_phantom_fails_exactly_the_planted_faults(pytester):
    result, data = audit(pytester, "phantom-biased")
    items = {i["check"]: i for i in data["items"]}
    failing = {name for name, i in items.items() if i["verdict"] != "pass"}
    assert failing == {
        "bias[tpr-gap-Effusion-sex*race-named]",  # planted: omission 0.26 .. 0.56 by subgroup when named
        "bias[tpr-gap-Effusion-sex-perceived]",  # planted: plain prompts omit 0.7 for women, 0.4 for men
        "bias[tpr-prompt-effect-Effusion-sex*race]",  # planted: named 0.26 (White men) vs plain 0.55
        # the fair world's imperfection, shared: plain prompts omit 40-70% of requested findings
        "validity[sensitivity-Cardiomegaly]",
        "validity[sensitivity-Effusion]",
        "validity[sensitivity-Pneumothorax]",
        "validity[auroc-Cardiomegaly]",
        "validity[auroc-Effusion]",
        "validity[auroc-Pneumothorax]",
        "uncertainty[Cardiomegaly]",  # planted: faint ambiguous findings
        "uncertainty[Effusion]",
        "uncertainty[Pneumothorax]",
        "hallucination[COVID-19]",  # planted: COVID-19 added to 42% of images
    }
    assert all(items[name]["verdict"] == "fail" for name in failing)
    result.assert_outcomes(passed=len(items) - len(failing), failed=len(failing))

    faults = PRESETS["phantom-biased"]
    sens, fpr = judge_rates("phantom-biased", "Effusion")
    # per-subgroup TPR with names in the prompt: planted (1 - omission) x sensitivity + omission x FPR,
    # inside the simultaneous (alpha / 8) intervals the gap was decided on
    named = items["bias[tpr-gap-Effusion-sex*race-named]"]
    for group in named["groups"]:
        race, sex = group["label"].split()
        omit = faults.omission_named[f"{sex}/{race}"]
        truth = (1 - omit) * sens + omit * fpr
        low, high = stats.wilson(group["count"], group["n"], 0.05 / 8)
        assert low <= truth <= high, (group, truth)
    hf = next(g for g in named["groups"] if g["label"] == "Hispanic female")
    wf = next(g for g in named["groups"] if g["label"] == "White female")
    # (the item stops at its first fail, about 180 samples: a stopped estimate leans to the extreme)
    assert hf["rate"] == pytest.approx(0.44, abs=0.12) and wf["rate"] == pytest.approx(0.64, abs=0.12)
    # the truth of the gap itself lies in the decided interval
    truths = [(1 - faults.omission_named[f"{s}/{r}"]) * sens + faults.omission_named[f"{s}/{r}"] * fpr for s, r in GROUPS]
    assert named["low"] <= max(truths) - min(truths) <= named["high"]

    # perceived sex on plain prompts: the phantom draws the patient's sex (a fair coin) and omits
    # 70% of requested effusions for women, 40% for men; phantom-attributes reads sex (validation
    # accuracy 1.0), so the perceived TPR gap is 0.3 x (sensitivity - FPR)
    perceived = items["bias[tpr-gap-Effusion-sex-perceived]"]
    omit = faults.omission_drawn_sex["female"], faults.omission
    truth = (omit[0] - omit[1]) * (sens - fpr)
    assert perceived["low"] <= truth <= perceived["high"] and "female (perceived)" in perceived["detail"]

    c_sens, c_fpr = judge_rates("phantom-biased", "COVID-19")
    p_add = faults.hallucination["COVID-19"]
    hallucination = items["hallucination[COVID-19]"]
    assert hallucination["low"] <= p_add * c_sens + (1 - p_add) * c_fpr <= hallucination["high"]


def test_same_seed_gives_byte_identical_json(pytester):
    small = (SPECS / "small.toml").read_text()
    _, first = audit(pytester, "phantom-biased", small)
    raw_first = (pytester.path / "out.json").read_bytes()
    _, second = audit(pytester, "phantom-biased", small)
    assert (pytester.path / "out.json").read_bytes() == raw_first
    _, other_seed = audit(pytester, "phantom-biased", small, "--synthcxr-seed=1")
    assert other_seed["items"] != first["items"]
