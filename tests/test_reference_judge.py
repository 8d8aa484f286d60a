"""Auditing the judge on a labelled reference set, with a planted answer: a reference whose
labels call every normal female study an effusion. The (accurate) phantom judge then finds
half of the labelled female effusions and all male ones: its measured female TPR is 0.5, male
1.0, and items that judge these subgroups carry a warning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_synthcxr.reference.readers import phantom_reference

SPEC = """
seed = 0
samples_per_cell = 24
first_round = 24
findings = ["Effusion"]
reference = "ref/manifest.csv"

[subgroups]
sex = ["female", "male"]
race = ["White", "Black"]

[[bias]]
metric = "tpr"
statistic = "gap"
by = "sex"
prompt = "named"
max = 0.5

[[bias]]
metric = "tpr"
statistic = "gap"
by = "race"
prompt = "named"
max = 0.5
"""


def _mislabelled_reference(folder: Path) -> int:
    """112 phantom studies (7 per finding-or-normal x sex x race) saved as PNG; every normal female
    study labelled Effusion. Returns the number of flipped labels."""
    ref = phantom_reference(112, seed=5, findings=("Effusion",))
    images = ref.images()
    folder.mkdir()
    lines, flipped = ["image,findings,sex,race,age"], 0
    for k, row in ref.records.iterrows():
        name = f"{k:03d}.png"
        Image.fromarray((np.clip(images[k], 0, 1) * 255).round().astype(np.uint8)).save(folder / name)
        effusion = row["y:Effusion"] == 1.0
        if row["sex"] == "female" and not effusion:
            effusion, flipped = True, flipped + 1
        lines.append(f"{name},{'Effusion' if effusion else 'none'},{row['sex']},{row['race']},{int(row['age'])}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return flipped


def test_a_judge_that_disagrees_with_the_labels_of_one_sex_is_flagged(pytester):
    flipped = _mislabelled_reference(pytester.path / "ref")
    assert flipped == 28
    pytester.makefile(".toml", synthcxr=SPEC)
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-json=out.json", "--synthcxr-no-cache", "-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=3)  # sex: TPR gap and ECE; race: ECE
    result.stdout.fnmatch_lines(["*SynthCXRJudgeWarning: bias[[]tpr-gap-Effusion-sex-named[]]: judge TPR for Effusion differs across the subgroups judged by 0.5*"])
    data = json.loads((pytester.path / "out.json").read_text())
    judge = data["reference"]["judge"][0]
    assert judge["finding"] == "Effusion" and judge["labelled"] == 112 and judge["positives"] == 28 + 28 + flipped  # true effusions of both sexes, and the flipped normals
    by_group = {g["subgroup"]: g for g in judge["tpr_groups"]}
    for race in ("White", "Black", "Asian", "Hispanic"):
        assert by_group[f"{race} female"]["n"] == 14 and by_group[f"{race} female"]["rate"] == pytest.approx(0.5, abs=0.08)
        assert by_group[f"{race} male"]["n"] == 7 and by_group[f"{race} male"]["rate"] >= 6 / 7
    assert judge["fpr"]["n"] == 28  # only male normals are still labelled negative
    warned = {w["item"] for w in data["reference"]["warnings"]}
    # by sex: the TPR gap is planted; by race: no TPR gap, but the labels make the output uncalibrated
    assert "bias[tpr-gap-Effusion-sex-named]" in warned
    reasons = next(w["reasons"] for w in data["reference"]["warnings"] if w["item"] == "bias[tpr-gap-Effusion-sex-named]")
    assert any("TPR for Effusion differs" in r for r in reasons)
    race_reasons = next((w["reasons"] for w in data["reference"]["warnings"] if w["item"] == "bias[tpr-gap-Effusion-race-named]"), [])
    assert not any("TPR for Effusion differs" in r for r in race_reasons)
