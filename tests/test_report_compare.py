"""The report's candidate-vs-released section (issue 18): JSON facts of both models and of each
compare item (valid against report_schema.json), the HTML section with one row per compare item,
the difference plots and image pairs, and no section without a released model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SPEC = """
seed = 0
samples_per_cell = 80
findings = ["Effusion"]

[subgroups]
sex = ["female"]
race = ["White", "Hispanic"]
reference = { sex = "female", race = "White" }

[[bias]]
metric = "tpr"
statistic = "deviation"
max = 0.9
max_regression = 0.05
samples = 80

[validity]
min_sensitivity = 0.3
max_decline = 0.05
"""


def _run(folder: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict, str]:
    """One audit in its own pytest process (the slow part, run once per module fixture)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "synthcxr.toml").write_text(SPEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(HOME=str(folder), XDG_CACHE_HOME=str(folder / ".cache"), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder),
         "--synthcxr-model=phantom-regressed", "--synthcxr-json=out.json", "--synthcxr-report=out.html", *extra],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert (folder / "out.json").exists(), result.stdout + result.stderr
    return result, json.loads((folder / "out.json").read_text()), (folder / "out.html").read_text()


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("compare"), "--synthcxr-baseline-model=phantom-fair")


def test_json_has_both_models_and_the_compare_facts(compared):
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_synthcxr.report.schema import load_schema

    _, data, _ = compared
    jsonschema.Draft202012Validator(load_schema()).validate(data)
    released = data["released_model"]
    assert released["name"] == "phantom-fair"
    assert data["model"]["fingerprint"] and released["fingerprint"]
    assert released["fingerprint"] != data["model"]["fingerprint"]
    assert isinstance(released["settings"], dict)
    items = [i for i in data["items"] if i["family"] == "compare"]
    assert len(items) == 2
    for item in items:
        facts = item["compare"]
        assert set(facts) == {"candidate", "released", "paired"}
        for side in ("candidate", "released"):
            e = facts[side]
            assert e["low"] <= e["estimate"] <= e["high"]
        # the difference is the worse way: candidate minus released (larger is worse) or the reverse
        diff = facts["candidate"]["estimate"] - facts["released"]["estimate"]
        assert item["estimate"] == pytest.approx(diff if item["check"].startswith("compare[bias") else -diff, abs=1e-5)
        # the detail's text says the same numbers
        assert f"candidate {facts['candidate']['estimate']:.3f}" in item["detail"]
        assert facts["paired"] == ("paired: " in item["detail"])
    sens = next(i for i in items if i["check"] == "compare[validity-sensitivity-Effusion]")
    assert sens["compare"]["paired"] is True
    assert all("compare" not in i or i["compare"] is None for i in data["items"] if i["family"] != "compare")


def test_a_compare_item_breaking_the_schema_is_caught(compared):
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_synthcxr.report.schema import load_schema

    _, data, _ = compared
    schema = load_schema()
    item = next(i for i in data["items"] if i["family"] == "compare")
    broken = {**item, "compare": {**item["compare"], "surprise": 1}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "items": [broken]}, schema, cls=jsonschema.Draft202012Validator)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "released_model": {"name": "x"}}, schema, cls=jsonschema.Draft202012Validator)


def test_html_has_the_section_with_one_row_per_compare_item(compared):
    _, data, html = compared
    assert '<section id="compare"' in html and 'href="#compare"' in html
    section = html.split('<section id="compare"', 1)[1].split("</section>", 1)[0]
    checks = [i["check"] for i in data["items"] if i["family"] == "compare"]
    rows = re.findall(r'<tr class="cmp" data-check="([^"]+)"', section)
    assert sorted(rows) == sorted(checks)
    for item in data["items"]:
        if item["family"] != "compare":
            continue
        f = item["compare"]
        assert f'id="{item["id"]}"' in section  # the checks table's link lands here
        assert f"{f['candidate']['estimate']:.3f}" in section and f"{f['released']['estimate']:.3f}" in section
    assert section.count('class="ivplot diff"') == len(checks)
    assert data["released_model"]["fingerprint"] in html
    for item in data["items"]:  # every anchor once: the compare cards are the compare items' only sections
        assert html.count(f'id="{item["id"]}"') == 1, item["id"]


def test_html_shows_image_pairs_of_the_regressed_item(compared):
    _, data, html = compared
    failing = [i for i in data["items"] if i["family"] == "compare" and i["verdict"] != "pass"]
    section = html.split('<section id="compare"', 1)[1].split("</section>", 1)[0]
    if not failing:
        pytest.skip("no compare item regressed at this sample size")
    assert f'<article class="check pairs" data-check="{failing[0]["check"]}"' in section
    assert section.count('alt="candidate, seed') >= 1 and section.count('alt="released, seed') >= 1


def test_no_section_and_no_released_model_without_one(tmp_path):
    _, data, html = _run(tmp_path / "alone")
    assert "released_model" not in data
    assert not any(i["family"] == "compare" for i in data["items"])
    assert '<section id="compare"' not in html and 'href="#compare"' not in html


def test_old_reports_stay_valid():
    """Schema version 1 unchanged: a report without released_model, and a compare item without
    the new facts (or with null), still validate (old baselines load as before)."""
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_synthcxr.report.schema import SCHEMA_VERSION, load_schema

    from report_support import minimal_item, minimal_report

    assert SCHEMA_VERSION == 1
    validator = jsonschema.Draft202012Validator(load_schema())
    old = minimal_item("compare[validity-sensitivity-Effusion]", family="compare")
    validator.validate(minimal_report([old]))
    validator.validate({**minimal_report([{**old, "compare": None}]), "released_model": None})


def test_forest_plots_show_per_subgroup_differences_and_only_the_planted_one_moves(compared):
    """phantom-regressed changes only Hispanic women's named images: White women's same-seed
    images are identical in both models, so their difference is exactly 0 with a tight interval
    (the 'images differ' bound), while Hispanic women's TPR drops; the HTML has one forest plot per
    compare item with subgroups, and the image pairs come from the subgroup that moved."""
    _, data, html = compared
    items = {i["check"]: i for i in data["items"] if i["family"] == "compare"}
    bias = items["compare[bias-tpr-deviation-Effusion-sex*race-named]"]
    diffs = {d["label"]: d for d in bias["differences"]}
    assert set(diffs) == {"White female", "Hispanic female"}
    assert all(d["paired"] and d["n"] == bias["samples_per_cell"] for d in diffs.values())
    white, hispanic = diffs["White female"], diffs["Hispanic female"]
    assert white["estimate"] == 0.0 and white["low"] < 0 < white["high"] and white["high"] - white["low"] < 0.2
    assert hispanic["estimate"] < 0 and hispanic["low"] <= hispanic["estimate"] <= hispanic["high"]
    sens = items["compare[validity-sensitivity-Effusion]"]  # plain prompts: both models draw the same images
    assert [d["estimate"] for d in sens["differences"]] == [0.0, 0.0]
    section = html.split('<section id="compare"', 1)[1].split("</section>", 1)[0]
    assert section.count('class="ivplot diff forest"') == sum(1 for i in items.values() if i.get("differences"))
    assert "Hispanic female: -0.1" in section or "Hispanic female: -0.2" in section or "Hispanic female: -0.3" in section
    pairs = re.findall(r'<article class="check pairs" data-check="([^"]+)">\s*<h4><code>[^<]+</code>: ([^<]+)</h4>', section)
    assert pairs and all(check == bias["check"] and label == "Hispanic female" for check, label in pairs)  # the sensitivity item changed no image
    assert all(float(x) > 0 for x in re.findall(r"score change ([-0-9.]+)", section))


def test_unpaired_differences_match_newcombe_by_hand():
    """Unpaired per-subgroup differences: Newcombe's hybrid score interval at alpha / k, checked
    against Wilson limits combined by hand (Newcombe 1998, method 10)."""
    import math

    from scipy.stats import norm

    from pytest_synthcxr.checks.base import GroupRate
    from pytest_synthcxr.checks.compare import _unpaired_differences

    def wilson(x, n, z):
        p = x / n
        mid, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return mid - half, mid + half

    cand = (GroupRate("a", 30, 50, 0, 1), GroupRate("b", 10, 40, 0, 1))
    rel = (GroupRate("a", 20, 50, 0, 1), GroupRate("b", 12, 40, 0, 1), GroupRate("c", 1, 2, 0, 1))
    out = _unpaired_differences(cand, rel, 0.10)
    assert [d.label for d in out] == ["a", "b"] and not any(d.paired for d in out)
    z = norm.ppf(1 - 0.10 / 2 / 2)
    for d, (x1, n1), (x2, n2) in zip(out, [(30, 50), (10, 40)], [(20, 50), (12, 40)]):
        p1, p2 = x1 / n1, x2 / n2
        (l1, u1), (l2, u2) = wilson(x1, n1, z), wilson(x2, n2, z)
        low = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
        high = p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
        assert d.estimate == pytest.approx(p1 - p2)
        assert (d.low, d.high) == pytest.approx((low, high), abs=1e-9)
