"""A whole audit with a reference set, as users run it: items, JSON (schema-valid) and HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SPEC = (Path(__file__).parent.parent / "fixtures" / "reference" / "phantom_reference.toml").read_text()


@pytest.mark.parametrize("model", ["phantom", "phantom-biased"])
def test_audit_with_a_phantom_reference(pytester, model):
    pytester.makefile(".toml", synthcxr=SPEC)
    result = pytester.runpytest(f"--synthcxr-model={model}", "--synthcxr-json=out.json", "--synthcxr-report=out.html", "--synthcxr-no-cache", "-p", "no:randomly", "-rA")
    if model == "phantom":  # the reference's own world: every comparison passes
        result.assert_outcomes(passed=6)
    data = json.loads((pytester.path / "out.json").read_text())
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_synthcxr.report import writers as report

    jsonschema.Draft202012Validator(report.load_schema()).validate(data)
    families = {item["family"] for item in data["items"]}
    assert families == {"versus-real", "fidelity", "diversity", "memorization"}
    ref = data["reference"]
    assert ref["set"]["kind"] == "phantom" and ref["set"]["images"] == 96
    assert ref["features"] == "phantom judge penultimate layer"
    judge = {j["finding"]: j for j in ref["judge"]}
    assert judge["Effusion"]["tpr"]["rate"] >= 0.9
    assert len(ref["closest"]) == 6 and ref["closest"][0]["similarity"] >= ref["closest"][-1]["similarity"]
    entropy = {e["finding"]: e for e in ref["entropy"]}
    assert entropy["Effusion"]["n"] == 96 and sum(entropy["Effusion"]["counts"]) == 96
    assert sum(entropy["Effusion"]["counts_asked"]) == judge["Effusion"]["positives"]
    html = (pytester.path / "out.html").read_text()
    assert "[tool.synthcxr.judge_error.Effusion]\ntp = " in html
    for item in data["items"]:  # every item in the summary table links to its card
        assert f'id="{item["id"]}"' in html
    for heading in ("Synthetic vs reference", "Judge metrics beside real", "Judge entropy on the reference images", "Auditing the judge", "Closest synthetic"):
        assert heading in html
    if model == "phantom-biased":  # 42% COVID-19 planted, none in the reference
        hallucination = next(i for i in data["items"] if i["check"] == "versus-real[hallucination-COVID-19]")
        assert hallucination["verdict"] == "fail" and hallucination["low"] > 0.2


def test_diversity_alone_needs_no_reference(pytester):
    spec = 'seed = 0\nsamples_per_cell = 8\nfirst_round = 8\nfindings = ["Effusion"]\n[subgroups]\nsex = ["female"]\nrace = ["White"]\n[diversity]\nmax_msssim = 0.9\n'
    pytester.makefile(".toml", synthcxr=spec)
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-json=out.json", "--synthcxr-report=out.html", "--synthcxr-no-cache", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    data = json.loads((pytester.path / "out.json").read_text())
    assert data["reference"] is None and {i["family"] for i in data["items"]} == {"diversity"}
    html = (pytester.path / "out.html").read_text()
    assert "Fidelity, diversity and demographics" in html and "Synthetic vs reference" not in html
    assert all(f'id="{item["id"]}"' in html for item in data["items"])


def test_strip_axis_widens_for_quantities_beyond_zero_to_one():
    from pytest_synthcxr.report.html import strip

    rate = strip({"threshold": 0.05, "estimate": 0.2, "low": 0.1, "high": 0.3, "direction": "max"})
    assert [t["label"] for t in rate["ticks"]] == ["0", "0.1", "0.2", "0.3", "0.4"]  # a rate's axis fits the rate, inside 0..1
    fd = strip({"threshold": 1000.0, "estimate": 530.0, "low": 470.0, "high": 623.0, "direction": "max"})
    assert [t["label"] for t in fd["ticks"]] == ["400", "600", "800", "1000", "1200"]  # beyond 1: its own range
    assert fd["x0"] < fd["x"] < fd["x1"] < fd["threshold"] == fd["forbidden"][0]
    negative = strip({"threshold": 0.05, "estimate": -0.02, "low": -0.07, "high": 0.03, "direction": "max"})
    assert negative["ticks"][0]["label"] == "-0.1" and negative["x0"] > negative["ticks"][0]["x"]
