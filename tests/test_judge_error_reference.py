"""Judge error measured on the reference set (`[judge_error.<output>] reference = true`): the
judge audit's confusion counts for that output feed the Rogan-Gladen correction, without the user
copying them into the spec."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SPEC = """seed = 0
samples_per_cell = 24
sampling = "fixed"
findings = ["Effusion"]
{reference}
[subgroups]
sex = ["female", "male"]
race = ["White"]
[validity]
min_sensitivity = 0.5
[[bias]]
metric = "tpr"
statistic = "gap"
prompt = ["plain"]
by = ["sex"]
relative_to_baseline = {relative}
{bound}
[judge_error.{output}]
reference = true
verdict = "corrected"
"""


def spec(reference: str = 'reference = "phantom:96"', output: str = "Effusion", relative: bool = False) -> str:
    return SPEC.format(reference=reference, output=output, relative=str(relative).lower(), bound="max_increase = 0.1" if relative else "max = 0.5")


def test_the_reference_confusion_counts_correct_the_items(pytester) -> None:
    pytester.makefile(".toml", synthcxr=spec())
    result = pytester.runpytest("--synthcxr-model=phantom-biased", "--synthcxr-json=out.json", "--synthcxr-no-cache", "-p", "no:randomly")
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()
    data = json.loads((pytester.path / "out.json").read_text())
    measured = next(j for j in data["reference"]["judge"] if j["finding"] == "Effusion")["confusion"]
    items = {i["check"]: i for i in data["items"]}
    for name in ("validity[sensitivity-Effusion]", "bias[tpr-gap-Effusion-sex-perceived]"):
        corrected = items[name]["judge_corrected"]
        assert corrected is not None and corrected["counts"] == measured, name
    assert measured["tp"] + measured["fn"] > 0 and measured["tn"] + measured["fp"] > 0


def test_without_a_reference_set_it_is_a_usage_error(pytester) -> None:
    pytester.makefile(".toml", synthcxr=spec(reference=""))
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-no-cache")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stderr.str()
    assert "Traceback" not in text
    assert "judge_error.Effusion: reference = true needs a reference set (spec key 'reference' or --synthcxr-reference)" in text


def test_a_probe_measured_on_the_reference_is_refused_with_one_line(pytester) -> None:
    text = spec(output="COVID-19") + "[hallucination]\nmax_rate = 0.5\n"
    pytester.makefile(".toml", synthcxr=text)
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-no-cache", "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in out
    assert "judge_error.COVID-19: reference = true measures the judge on reference labels, and reference sets label findings only" in out


def test_a_finding_the_reference_does_not_label_stops_with_one_line(pytester) -> None:
    """A reference manifest whose images carry no Effusion labels: the run stops before deciding."""
    import numpy as np
    from PIL import Image

    rows = ["image,findings,sex,race,age"]
    for i in range(8):
        Image.fromarray((np.random.default_rng(i).random((64, 64)) * 255).astype(np.uint8)).save(pytester.path / f"r{i}.png")
        rows.append(f"r{i}.png,,female,White,50")
    (pytester.path / "ref.csv").write_text("\n".join(rows) + "\n")
    pytester.makefile(".toml", synthcxr=spec(reference='reference = "ref.csv"'))
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-no-cache", "-p", "no:randomly")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, out
    assert "Traceback" not in out
    assert "judge_error.Effusion: reference = true, but the reference set has no images labelled positive and negative for 'Effusion'" in out


def test_counts_and_reference_together_are_refused(tmp_path) -> None:
    from pytest_synthcxr.spec.schema import SpecError, load_spec

    path = tmp_path / "synthcxr.toml"
    path.write_text("[judge_error.Effusion]\nreference = true\ntp = 5\nfn = 1\ntn = 9\nfp = 0\n")
    with pytest.raises(SpecError, match=r"judge_error.Effusion: reference = true measures the judge on the reference set: give no counts or rates with it"):
        load_spec(path)


def test_fill_needs_neither_the_reference_nor_the_baseline(tmp_path) -> None:
    """The sharded fill only generates: a spec whose verdicts need a reference or a baseline fills."""
    path = tmp_path / "synthcxr.toml"
    path.write_text(spec(relative=True))
    out = subprocess.run(
        [sys.executable, "-m", "pytest_synthcxr.fill", "--model=phantom", f"--spec={path}", f"--cache-dir={tmp_path / 'cache'}", "--per-cell=4"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "generated" in out.stdout
