"""The report files as users get them from a pytest run (pytester, the phantom model, a tiny spec):
JUnit XML properties, the baseline option, pytest-html integration, schema-valid JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

TINY_SPEC = """
seed = 0
samples_per_cell = 16
findings = ["Effusion"]
thumbnails = 1

[subgroups]
sex = ["female", "male"]
race = ["White"]

[[bias]]
metric = "tpr"
statistic = "gap"
prompt = "named"
max = 0.2

[hallucination]
max_rate = 0.05
"""
ITEMS = ("synthcxr.toml::bias[tpr-gap-Effusion-sex*race-named]", "synthcxr.toml::hallucination[COVID-19]")
PROPERTIES = {"verdict", "estimate", "ci_low", "ci_high", "threshold", "n"}


def _run(pytester, *args):
    return pytester.runpytest("-p", "no:cacheprovider", "--synthcxr-model=phantom-biased", "--synthcxr-spec=synthcxr.toml", *args)


def test_a_run_writes_junit_properties_json_html_and_compares_with_a_baseline(pytester):
    """Two runs of the tiny audit (each phantom run costs seconds, so one test checks it all)."""
    pytester.makefile(".toml", synthcxr=TINY_SPEC)
    html_args = ["--html=ci/tests.html", "--self-contained-html"] if _has_pytest_html() else []
    result = _run(pytester, "--synthcxr-json=out/first.json", "--synthcxr-report=out/first.html", "--junitxml=out/junit.xml", *html_args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()  # phantom-biased hallucinates: the audit gates
    data = json.loads((pytester.path / "out" / "first.json").read_text())
    by_name = {i["check"].split("[", 1)[1][:-1]: i for i in data["items"]}
    assert {f"synthcxr.toml::{i['check']}" for i in data["items"]} == set(ITEMS)

    # JUnit XML: every item carries its numbers as properties, equal to the JSON's
    cases = list(ET.parse(pytester.path / "out" / "junit.xml").iter("testcase"))
    assert len(cases) == len(ITEMS)
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert PROPERTIES <= set(props), case.attrib
        item = by_name[case.get("name").split("[", 1)[1][:-1]]
        assert float(props["estimate"]) == pytest.approx(item["estimate"], abs=1e-5)
        assert float(props["ci_low"]) == pytest.approx(item["low"], abs=1e-5)
        assert float(props["ci_high"]) == pytest.approx(item["high"], abs=1e-5)
        assert int(props["n"]) == item["n"] and props["verdict"] == item["verdict"]

    jsonschema = pytest.importorskip("jsonschema")
    from pytest_synthcxr.report.schema import load_schema

    jsonschema.validate(data, load_schema(), cls=jsonschema.Draft202012Validator)

    # pytest-html: a link to the audit report in the summary, each item's numbers and section link
    if html_args:
        page = (pytester.path / "ci" / "tests.html").read_text()
        assert 'href="../out/first.html"' in page and "synthcxr audit of <code>phantom-biased</code>" in page
        assert "verdict fail; estimate" in page and "../out/first.html#item-hallucination-COVID-19" in page

    # the same audit against the first run: every item unchanged, deltas exactly 0
    _run(pytester, "--synthcxr-json=out/second.json", "--synthcxr-report=out/second.html", "--synthcxr-baseline=out/first.json")
    second = json.loads((pytester.path / "out" / "second.json").read_text())
    assert second["baseline"]["name"] == "first.json" and second["baseline"]["same_spec"]
    assert second["baseline"]["counts"]["unchanged"] == len(second["items"]) == len(ITEMS)
    assert all(i["baseline"]["delta"] == 0 for i in second["items"])
    assert {**second, "baseline": None, "items": [{**i, "baseline": None} for i in second["items"]]} == data
    assert "Δ baseline" in (pytester.path / "out" / "second.html").read_text()
    jsonschema.validate(second, load_schema(), cls=jsonschema.Draft202012Validator)


def _has_pytest_html() -> bool:
    try:
        import pytest_html  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("content, message", [(None, "cannot read"), ("[1, 2]", "not a pytest-synthcxr JSON report")])
def test_unusable_baseline_is_a_usage_error(pytester, content, message):
    pytester.makefile(".toml", synthcxr=TINY_SPEC)
    if content is not None:
        (pytester.path / "old.json").write_text(content)
    result = _run(pytester, "--synthcxr-baseline=old.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: synthcxr: baseline */old.json: {message}*"])
    assert "Traceback" not in result.stderr.str()
