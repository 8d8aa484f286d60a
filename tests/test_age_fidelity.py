"""Age in demographic fidelity: ages in the subgroup grid and prompts (RoentGen-v2 style), the
age-agreement check against hand-computed values and a planted fault, and torchxrayvision's RIKEN
age model through its real loading code on a TorchScript file the test writes (no download)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from pytest_synthcxr.models import registry
from pytest_synthcxr.sampling.cells import Cell, derive_seed, subgroup_label
from pytest_synthcxr.checks import build_checks
from pytest_synthcxr.checks.demographic import DemographicCheck
from pytest_synthcxr.models.generators.phantom import PhantomGenerator
from pytest_synthcxr.models.aliases import ModelError
from pytest_synthcxr.sampling.pool import SamplePool
from pytest_synthcxr.sampling.prompts import build_prompt, parse_prompt
from pytest_synthcxr.spec.schema import AuditSpec, SpecError, load_spec

AGES = (40, 70)
GRID = [(("sex", s), ("race", "White"), ("age", str(a))) for s in ("female", "male") for a in AGES]
CELLS = tuple(Cell(f, g, True) for g in GRID for f in ("Effusion", None))


def test_ages_enter_the_demographic_cells_and_prompts_only() -> None:
    spec = AuditSpec.model_validate(
        {
            "findings": ["Effusion"],
            "subgroups": {"sex": ["female"], "race": ["White", "Hispanic"], "age": [40, 70]},
            "bias": {"metric": "tpr", "max": 0.2},
            "demographic": [{"attribute": "sex", "min_agreement": 0.9}, {"attribute": "age", "min_agreement": 0.8}],
        }
    )
    checks = {c.nodename: c for c in build_checks(spec)}
    sex, age = checks["demographic[sex-agreement]"], checks["demographic[age-agreement]"]
    assert sex.cells() == age.cells() and len(age.cells()) == 2 * 2 * 2  # race x age x (finding, normal)
    assert age.tolerance == 16.0 and "within 16 years" in age.quantity
    from pytest_synthcxr.stats.power import proportion_samples

    # one pooled share: the plan's power-based size is the proportion's, spread over the cells
    assert age.power_samples(0.05, 0.9, 0.05) == -(-proportion_samples(0.8, 0.05, 0.05, 0.9) // 8) and age.round_growth() == 1.5
    prompts = {c.prompt for c in age.cells()}
    assert "70 year old Hispanic female. Pleural effusion." in prompts and "40 year old White female. No acute cardiopulmonary process." in prompts
    cell = next(c for c in age.cells() if c.prompt.startswith("70 year old Hispanic"))
    assert subgroup_label(cell.subgroup) == "70-year-old Hispanic female" and "age=70" in cell.key
    parsed = parse_prompt(cell.prompt)
    assert (parsed.age, parsed.sex, parsed.race) == (70, "female", "Hispanic")
    bias = next(c for c in checks.values() if c.family == "bias")
    assert all("age" not in c.attributes for c in bias.cells())  # the other families keep sex x race
    assert all("year old" not in c.prompt for c in bias.cells())


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[demographic]]\nattribute = 'age'\nmin_agreement = 0.8\n", "demographic attribute 'age' needs ages to ask for: set subgroups.age"),
        ("[[demographic]]\nattribute = 'sex'\nmin_agreement = 0.8\ntolerance = 10\n", "demographic[0]: 'tolerance' applies to attribute 'age' only, not 'sex'"),
        ("[subgroups]\nage = [40, 40]\n", "subgroups: age lists an age twice: [40, 40]"),
        ("[subgroups]\nage = [40, 60]\n", "subgroups.age names ages for the demographic-fidelity prompts only, and there is no [[demographic]] item"),
        ("[subgroups]\nage = [0]\n", "subgroups.age[0]: Input should be greater than or equal to 1"),
        ("[[demographic]]\nattribute = 'height'\nmin_agreement = 0.8\n", "demographic[0].attribute: Input should be 'sex', 'race' or 'age'"),
    ],
)
def test_bad_age_settings_are_one_line(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "synthcxr.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert message in str(info.value) and "\n" not in str(info.value) and str(path) in str(info.value)


def _table(rows: list[tuple[Cell, float]]):
    import pandas as pd

    return pd.DataFrame({"cell": [c.key for c, _ in rows], "valid": [True] * len(rows), "p:age": [p for _, p in rows]})


def test_age_agreement_against_hand_computed_values() -> None:
    c40 = Cell("Effusion", (("sex", "female"), ("race", "White"), ("age", "40")), True)
    c70 = Cell("Effusion", (("sex", "female"), ("race", "White"), ("age", "70")), True)
    table = _table([(c40, 45.0), (c40, 60.0), (c70, 70.0), (c70, 50.0)])  # errors +5, +20, 0, -20
    check = DemographicCheck(name="age", samples=2, threshold=0.9, direction="min", attribute="age", population=(c40, c70), tolerance=16)
    measured = check.measure(table, 0.05)
    assert (measured.estimate.n, measured.estimate.value) == (4, 0.5)
    assert measured.detail == "2 of 4 images within 16 years; mean absolute error 11.2 years, mean predicted - asked +1.2 years"
    assert [(g.label, g.count, g.n) for g in measured.groups] == [("40-year-old White female", 1, 2), ("70-year-old White female", 1, 2)]
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(2, 4, alpha=0.05, method="wilson")
    assert measured.estimate.low == pytest.approx(low) and measured.estimate.high == pytest.approx(high)
    wide = DemographicCheck(name="age", samples=2, threshold=0.9, direction="min", attribute="age", population=(c40, c70), tolerance=20)
    assert wide.measure(table, 0.05).estimate.value == 1.0  # |error| <= tolerance agrees, 20 included
    nan = _table([(c40, float("nan")), (c70, 70.0)])
    assert check.measure(nan, 0.05).estimate.value == 0.5  # a failed prediction never agrees


def test_an_age_check_without_an_age_output_says_what_to_add() -> None:
    import pandas as pd

    check = DemographicCheck(name="age", samples=2, threshold=0.9, direction="min", attribute="age", population=CELLS[:1], tolerance=16)
    with pytest.raises(ValueError, match=r"the judge has no age output \(p:age\); add an age judge to the panel \(e.g. judge = \[\"xrv\", \"xrv-age\"\]\)"):
        check.measure(pd.DataFrame({"cell": [], "valid": []}), 0.05)


class AgeSkewing:
    """The faithful phantom; for a seeded `rate` of images it draws an age 30 years off the one
    asked. The drawn age is marked in the top-left 4 x 4 pixels (age / 100)."""

    name = "age-skewing"
    cache_images = False
    fingerprint = "age-skewing"
    settings: dict = {}

    def __init__(self, rate: float) -> None:
        self.base = PhantomGenerator("phantom")
        self.rate = rate

    def skewed(self, seed: int) -> bool:
        return bool(np.random.default_rng([seed, 7]).random() < self.rate)

    def generate(self, prompts, seeds) -> np.ndarray:
        out = np.empty((len(prompts), 224, 224), dtype=np.float32)
        for k, (prompt, seed) in enumerate(zip(prompts, seeds)):
            parsed = parse_prompt(prompt)
            age = parsed.age + (30 if parsed.age < 60 else -30) if self.skewed(int(seed)) else parsed.age
            finding = next(iter(parsed.findings), None)
            image, drawn = self.base.draw(build_prompt(finding, {"sex": parsed.sex, "race": parsed.race, "age": str(age)}), int(seed))
            assert drawn.age == age  # the phantom draws the age its prompt names
            image[:4, :4] = drawn.age / 100
            out[k] = image
        return out


class AgeMarkerJudge:
    """Reads the marker: the drawn age in years."""

    name = "age-marker"
    outputs = ("age",)
    fingerprint = "age-marker"
    settings: dict = {}

    def predict(self, images: np.ndarray) -> np.ndarray:
        return images[:, :4, :4].mean(axis=(1, 2))[:, None].astype(float) * 100


def test_age_agreement_is_the_planted_share() -> None:
    n = 40  # 320 images
    generator = AgeSkewing(0.25)
    check = DemographicCheck(name="age", samples=n, threshold=0.9, direction="min", attribute="age", population=CELLS, tolerance=16)
    result = check.evaluate(SamplePool(generator, AgeMarkerJudge(), 5).table(check.cells(), n), 0.95)
    planted = sum(generator.skewed(derive_seed(5, c.key, i)) for c in CELLS for i in range(n))
    assert result.estimate.n == 320 and result.estimate.value == pytest.approx(1 - planted / 320)
    assert result.estimate.low <= 0.75 <= result.estimate.high and result.verdict == "fail"
    assert "mean absolute error" in result.detail
    assert {g.label for g in result.groups} == {"40-year-old White female", "70-year-old White female", "40-year-old White male", "70-year-old White male"}
    faithful = SamplePool(AgeSkewing(0.0), AgeMarkerJudge(), 5)
    passed = check.evaluate(faithful.table(check.cells(), n), 0.95)
    assert passed.verdict == "pass" and passed.estimate.value == 1.0 and "mean absolute error 0.0 years" in passed.detail


# -- torchxrayvision's RIKEN age model -----------------------------------------------------------


@pytest.fixture(scope="module")
def age_weights(tmp_path_factory):
    """TorchScript stand-ins for the RIKEN model (a TorchScript file, like xrv's release): one
    returns 10 x the mean of its (B, 3, 320, 320) input + 50, the other always 60 years."""
    pytest.importorskip("torchxrayvision")
    import torch

    class MeanAge(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert x.shape[1] == 3 and x.shape[2] == 320 and x.shape[3] == 320
            return x.mean(dim=(1, 2, 3)).unsqueeze(1) * 10 + 50

    class Sixty(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((x.shape[0], 1), 60.0)

    folder = tmp_path_factory.mktemp("xrv-age")
    with warnings.catch_warnings():  # TorchScript is deprecated, and still what the RIKEN file is
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(MeanAge()), str(folder / "mean.pt"))
        torch.jit.save(torch.jit.script(Sixty()), str(folder / "sixty.pt"))
    return folder


def test_age_judge_runs_xrv_preprocessing_and_returns_years(age_weights, tmp_path, monkeypatch) -> None:
    from pytest_synthcxr.models.judges import xrv as xj
    from pytest_synthcxr.models.judges.base import JudgeError

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))  # xrv's hard-coded folder: never the real one, never a download
    with pytest.raises(JudgeError, match=r"not found at .*home/\.torchxrayvision/models_data/baseline_models_riken_xray_age"):
        xj.XRVAttributeJudge("xrv-age")
    judge = xj.XRVAttributeJudge("xrv-age", path=age_weights / "mean.pt")
    images = np.full((2, 64, 64), 0.5, dtype=np.float32)
    images[1] = 0.25
    scores = judge.predict(images)
    # by hand: [0,1] -> [-1024, 1024] -> (x + 1024) / 2048 gives back the pixel value c; ImageNet
    # normalisation per channel, mean over channels, x 10 + 50
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = [((c - mean) / std).mean() * 10 + 50 for c in (0.5, 0.25)]
    assert scores.shape == (2, 1) and scores[:, 0] == pytest.approx(expected, abs=1e-3)
    assert scores.min() > 40  # years: not clipped to [0, 1] like the class probabilities
    assert judge.outputs == ("age",) and len(judge.settings["sha256"]) == 64 and judge.resolution == 320
    assert os.environ["HOME"] == str(home) and not (home / ".torchxrayvision").exists()


def _spec(weights, judge: str = "['phantom', 'age']", top: str = "", min_agreement: float = 0.6) -> str:
    return (
        f"{top}judge = {judge}\nseed = 0\nsamples_per_cell = 8\nfirst_round = 8\nsampling = 'fixed'\nfindings = ['Effusion']\n"
        "[subgroups]\nsex = ['female']\nrace = ['White']\nage = [40, 60, 80]\n"
        f"[[demographic]]\nattribute = 'age'\nmin_agreement = {min_agreement}\ntolerance = 16\n"
        f"[judges.age]\nkind = 'xrv-age'\npath = '{weights}'\n"
    )


def test_age_audit_end_to_end(pytester, age_weights, tmp_path, monkeypatch) -> None:
    """A judge that says 60 for every image agrees with exactly the third of prompts asking for 60."""
    monkeypatch.setenv("HOME", str(tmp_path))
    pytester.makefile(".toml", synthcxr=_spec(age_weights / "sixty.pt"))
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-json=out.json", "--synthcxr-report=out.html", "--synthcxr-no-cache", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    data = json.loads((pytester.path / "out.json").read_text())
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_synthcxr.report import writers as report

    jsonschema.Draft202012Validator(report.load_schema()).validate(data)
    item = next(i for i in data["items"] if i["check"] == "demographic[age-agreement]")
    assert item["verdict"] == "fail" and item["n"] == 48 and item["estimate"] == pytest.approx(1 / 3, abs=1e-3)
    assert "16 of 48 images within 16 years; mean absolute error 13.3 years, mean predicted - asked +0.0 years" in item["detail"]
    assert item["stats"] == {"tolerance_years": 16.0, "mean_absolute_error_years": pytest.approx(40 / 3, abs=1e-5), "mean_signed_error_years": 0.0}
    assert data["spec"]["subgroups"]["age"] == [40, 60, 80]
    html = (pytester.path / "out.html").read_text()
    assert "60-year-old White female" in html and "within 16 years" in html


def test_an_age_item_without_an_age_judge_is_a_usage_error(pytester, age_weights) -> None:
    pytester.makefile(".toml", synthcxr=_spec(age_weights / "sixty.pt", judge="'phantom'"))
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-no-cache")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stderr.str()
    assert "Traceback" not in text
    assert "demographic[age-agreement] needs age outputs ('age'), but judge(s) phantom score none; add an attribute judge, e.g. judge = [\"phantom\", \"xrv-age\"]" in text


# -- attribute judges audited on the reference set ------------------------------------------------


def test_attribute_audit_against_hand_computed_values() -> None:
    import pandas as pd

    from pytest_synthcxr.checks.demographic import attribute_audit, attribute_concern

    reference = pd.DataFrame(
        {
            "sex": ["female", "female", "male", "male", ""],  # the last records no sex: left out
            "race": ["White", "Hispanic", "Black", "White", "Asian"],
            "age": [30.0, 50.0, 70.0, float("nan"), 90.0],
            "p:sex:male": [0.2, 0.7, 0.9, 0.6, 0.5],
            "p:sex:female": [0.8, 0.3, 0.1, 0.4, 0.5],
            "p:age": [40.0, 80.0, 70.0, 20.0, 60.0],  # errors +10, +30, 0, (no age), -30
        }
    )
    sex = attribute_audit(reference, "sex", 0.05)
    assert (sex["count"], sex["n"], sex["rate"], sex["classes"]) == (3, 4, 0.75, ["male", "female"])
    age = attribute_audit(reference, "age", 0.05, tolerance=10)
    assert (age["count"], age["n"], age["rate"], age["mae"], age["mean_error"]) == (2, 4, 0.5, 17.5, 2.5)
    assert attribute_audit(reference, "race", 0.05) is None  # no race outputs in the panel
    assert attribute_audit(reference.drop(columns=["p:age"]), "age", 0.05) is None
    assert attribute_concern(age, 0.9) and "agrees within 10 years with the recorded age for only 0.50" in attribute_concern(age, 0.9)[0]
    assert attribute_concern(age, 0.5) == []  # the bound is inside the judge's own interval: no reason to doubt it


def test_the_age_judge_is_audited_on_the_reference_ages(pytester, age_weights, tmp_path, monkeypatch) -> None:
    """Known answer: a judge that says 60 for every image agrees within 16 years with exactly the
    phantom reference images drawn at ages 44..76, and its mean absolute error is mean |60 - age|."""
    from pytest_synthcxr.reference.readers import phantom_reference

    monkeypatch.setenv("HOME", str(tmp_path))
    pytester.makefile(".toml", synthcxr=_spec(age_weights / "sixty.pt", top="reference = 'phantom:96'\n", min_agreement=0.9))
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-json=out.json", "--synthcxr-report=out.html", "--synthcxr-no-cache", "-p", "no:randomly", "-W", "default")
    result.assert_outcomes(failed=1, warnings=1)
    result.stdout.fnmatch_lines(["*SynthCXRJudgeWarning: *demographic*age-agreement*: on the reference set the age judge agrees within 16 years*a fail may be the judge's*"])
    data = json.loads((pytester.path / "out.json").read_text())
    ages = phantom_reference(96, findings=("Effusion",)).records["age"].to_numpy(dtype=float)
    audited = {a["attribute"]: a for a in data["reference"]["attributes"]}
    assert set(audited) == {"age"}
    assert audited["age"]["n"] == 96 and audited["age"]["count"] == int((np.abs(60 - ages) <= 16).sum())
    assert audited["age"]["mae"] == pytest.approx(np.abs(60 - ages).mean(), abs=1e-5)
    assert [w["item"] for w in data["reference"]["warnings"]] == ["demographic[age-agreement]"]
    html = (pytester.path / "out.html").read_text()
    assert "Attribute judges on the reference set" in html


# -- the phantom world: the phantom attribute judge and the planted age fault ---------------------

DEMOGRAPHIC_SPEC = Path(__file__).parent.parent / "fixtures" / "specs" / "demographic.toml"


def test_phantom_attribute_judge_reads_sex_and_age_of_held_out_phantoms() -> None:
    from pytest_synthcxr.models.judges.phantom_attributes import PhantomAttributeJudge
    from pytest_synthcxr.phantom.render import random_scene, render

    images, sexes, ages = [], [], []
    for i in range(96):  # entropy [seed, 3, i]: never seen in training (splits 4 and 5)
        rng = np.random.default_rng([11, 3, i])
        scene = random_scene(rng, noise=(0.0, 0.05))
        images.append(render(scene, rng, 224))
        sexes.append(scene.sex)
        ages.append(scene.age)
    judge = PhantomAttributeJudge()
    scores = judge.predict(np.stack(images))
    assert judge.outputs == ("sex:male", "sex:female", "age") and np.allclose(scores[:, :2].sum(axis=1), 1.0)
    assert (np.where(scores[:, 1] > 0.5, "female", "male") == np.array(sexes)).mean() >= 0.97
    error = scores[:, 2] - np.array(ages)
    assert np.abs(error).mean() <= 5.0 and np.abs(error).max() <= 16.0  # trained MAE about 3 years
    # a score never depends on the batch it came in
    assert np.array_equal(judge.predict(np.stack(images[5:8])), scores[5:8])
    assert judge.settings["validation"]["age_mae"] < 5


def test_phantom_attribute_judge_refuses_a_foreign_weights_file() -> None:
    from pytest_synthcxr.models.judges.phantom import PhantomWeightsError, default_weights
    from pytest_synthcxr.models.judges.phantom_attributes import PhantomAttributeJudge

    with pytest.raises(PhantomWeightsError, match=r"is not a phantom attribute judge"):
        PhantomAttributeJudge(default_weights())  # the disease judge's file


@pytest.mark.parametrize("model", ["phantom", "phantom-biased"])
def test_phantom_world_age_fault_is_measured(pytester, model) -> None:
    """Known answer: phantom-biased draws a random age for 30% of prompts naming one; the share of
    images truly drawn within 16 years of the asked age (from the generator's own record) lies in
    the age item's interval, and the faithful phantom passes. Sex is always drawn as asked."""
    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.spec.schema import load_spec

    pytester.makefile(".toml", synthcxr=DEMOGRAPHIC_SPEC.read_text())
    result = pytester.runpytest(f"--synthcxr-model={model}", "--synthcxr-json=out.json", "--synthcxr-report=out.html", "--synthcxr-no-cache", "-p", "no:randomly")
    data = json.loads((pytester.path / "out.json").read_text())
    items = {i["check"]: i for i in data["items"]}
    age, sex = items["demographic[age-agreement]"], items["demographic[sex-agreement]"]
    assert sex["verdict"] == "pass" and sex["estimate"] == 1.0
    generator = PhantomGenerator(model)
    check = next(c for c in build_checks(load_spec(DEMOGRAPHIC_SPEC).spec) if c.nodename == "demographic[age-agreement]")
    n = age["samples_per_cell"]
    truth = np.mean(
        [
            abs(generator.plan(c.prompt, derive_seed(0, c.key, i))[1].age - int(c.attributes["age"])) <= 16
            for c in check.cells()
            for i in range(n)
        ]
    )
    assert age["low"] <= truth <= age["high"], (truth, age)
    if model == "phantom":
        assert truth == 1.0 and age["verdict"] == "pass"
        result.assert_outcomes(passed=2)
    else:
        assert 0.75 < truth < 0.9 and age["verdict"] == "fail"  # 1 - 0.3 x (share of random ages more than 16 years off)
        result.assert_outcomes(passed=1, failed=1)
        assert "mean predicted - asked" in age["detail"]


def test_a_race_item_with_the_phantom_attribute_judge_is_refused_before_any_image(tmp_path) -> None:
    path = tmp_path / "synthcxr.toml"
    path.write_text(DEMOGRAPHIC_SPEC.read_text() + "\n[[demographic]]\nattribute = 'race'\nmin_agreement = 0.9\n")
    with pytest.raises(ModelError, match=r"demographic\[race-agreement\] needs race outputs \('race:\*'\), but judge\(s\) phantom, phantom-attributes score none; add an attribute judge, e.g. judge = \[\"phantom\", \"xrv-race\"\]"):
        registry.check("phantom", "test", load_spec(path))
    assert registry.check("phantom", "test", load_spec(DEMOGRAPHIC_SPEC)).config.kind == "phantom"
