"""Spec bounds relative to the baseline: ``relative_to_baseline = true`` with ``max_increase``
("TPR gap no worse than baseline + 0.02") or ``max_decrease`` (ratio) takes the threshold from
the --synthcxr-baseline run's estimate of the same item; without a baseline, or when it lacks
the item, the run stops with one line."""

from __future__ import annotations

import json

from report_support import minimal_item, write_report
import pytest

from pytest_synthcxr.spec.schema import SpecError, load_spec

ITEM = "bias[tpr-gap-Atelectasis-sex*race-named]"
SPEC = """
seed = 0
samples_per_cell = 64
sampling = "fixed"
findings = ["Atelectasis"]
thumbnails = 0

[subgroups]
sex = ["female", "male"]
race = ["White", "Hispanic"]

[[bias]]
metric = "tpr"
statistic = "gap"
prompt = "named"
{bound}
"""
ABSOLUTE = SPEC.format(bound="max = 0.5")


def _relative(margin: float) -> str:
    return SPEC.format(bound=f"relative_to_baseline = true\nmax_increase = {margin}")


def _run(pytester, spec, *args):
    pytester.makefile(".toml", synthcxr=spec)
    return pytester.runpytest(
        "-p", "no:cacheprovider", "-p", "no:randomly", "--synthcxr-model=phantom-biased", "--synthcxr-spec=synthcxr.toml", "--synthcxr-cache-dir=cache", *args
    )


def _item(pytester, name):
    (item,) = json.loads((pytester.path / name).read_text())["items"]
    return item


def _verdict(item):
    """The verdict the item's own interval and threshold imply (bound 'max')."""
    if item["high"] <= item["threshold"]:
        return "pass"
    return "fail" if item["low"] > item["threshold"] else "inconclusive"


def test_threshold_is_the_baseline_estimate_plus_the_margin(pytester):
    _run(pytester, ABSOLUTE, "--synthcxr-json=base.json")
    base = _item(pytester, "base.json")
    assert base["check"] == ITEM and 0 < base["estimate"] < 1

    # a generous margin: the same model stays within its own gap + 0.45
    wide = _run(pytester, _relative(0.45), "--synthcxr-baseline=base.json", "--synthcxr-json=wide.json")
    item = _item(pytester, "wide.json")
    assert item["threshold"] == pytest.approx(min(1.0, base["estimate"] + 0.45), abs=1e-6)
    assert item["estimate"] == base["estimate"]  # same model, spec entry and seed: the same samples
    assert item["verdict"] == _verdict(item) == "pass"
    assert f"(bound: baseline {base['estimate']:.3f} + 0.45)" in item["quantity"]
    wide.assert_outcomes(passed=1)

    # a baseline without a gap: "no worse than 0 + 0.02" fails this biased model
    zero = json.loads((pytester.path / "base.json").read_text())
    zero["items"][0]["estimate"] = 0.0
    (pytester.path / "zero.json").write_text(json.dumps(zero))
    strict = _run(pytester, _relative(0.02), "--synthcxr-baseline=zero.json", "--synthcxr-json=strict.json")
    item = _item(pytester, "strict.json")
    assert item["threshold"] == pytest.approx(0.02)
    assert item["verdict"] == _verdict(item) == "fail"
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["fail: TPR gap (max-min) across sex*race for Atelectasis, demographics named in prompt (bound: baseline 0.000 + 0.02) = *, max 0.02, n=*"])


def test_a_relative_bound_without_a_baseline_is_one_line(pytester):
    result = _run(pytester, _relative(0.02))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = f"ERROR: synthcxr: spec item {ITEM} is relative_to_baseline but no baseline was given: pass a previous run's --synthcxr-json as --synthcxr-baseline=<file>"
    assert expected in result.stderr.lines
    assert "Traceback" not in result.stderr.str()


def test_a_baseline_without_the_item_is_one_line(pytester):
    write_report(pytester.path / "old.json", [minimal_item("bias[sr-gap-Effusion-sex*race-named]")])
    result = _run(pytester, _relative(0.02), "--synthcxr-baseline=old.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    old = pytester.path / "old.json"
    expected = f"ERROR: synthcxr: baseline {old}: has no item {ITEM}, which the spec bounds relative_to_baseline (run the baseline with this spec entry)"
    assert expected in result.stderr.lines
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(
    "bound, message",
    [
        ("relative_to_baseline = true\nmax = 0.1", "bias[0]: relative_to_baseline with statistic 'gap' takes 'max_increase' (and neither 'max', 'min' nor 'max_decrease')"),
        ("relative_to_baseline = true", "bias[0]: relative_to_baseline with statistic 'gap' takes 'max_increase'"),
        ("max = 0.1\nmax_increase = 0.02", "bias[0]: max_increase / max_decrease need relative_to_baseline = true"),
        ("statistic = 'ratio'\nrelative_to_baseline = true\nmax_increase = 0.02", "bias[0]: relative_to_baseline with statistic 'ratio' takes 'max_decrease'"),
    ],
)
def test_bad_relative_bounds_are_one_line(tmp_path, bound, message):
    path = tmp_path / "synthcxr.toml"
    path.write_text(f"[[bias]]\n{bound}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "\n" not in str(info.value) and message in str(info.value)


def test_a_ratio_bound_is_the_baseline_minus_the_margin(tmp_path):
    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.report.baseline import resolve_relative

    path = tmp_path / "synthcxr.toml"
    path.write_text('findings = ["Effusion"]\n[[bias]]\nstatistic = "ratio"\nprompt = "plain"\nrelative_to_baseline = true\nmax_decrease = 0.05\n')
    (check,) = build_checks(load_spec(path).spec)
    baseline = tmp_path / "base.json"
    write_report(baseline, [minimal_item(check.nodename, 0.8)])
    (resolved,) = resolve_relative([check], baseline, 1)
    assert resolved.direction == "min" and resolved.threshold == pytest.approx(0.75)
    assert "(bound: baseline 0.800 - 0.05)" in resolved.quantity


ONE_SECTION = """
seed = 0
samples_per_cell = 48
sampling = "fixed"
findings = ["Effusion"]
thumbnails = 0

[subgroups]
sex = ["female"]
race = ["White"]

[{section}]
{{bound}}
"""
HALLUCINATION = ONE_SECTION.format(section="hallucination")
VALIDITY = ONE_SECTION.format(section="validity")


def test_hallucination_and_uncertainty_bounds_can_be_relative_too(pytester):
    _run(pytester, HALLUCINATION.format(bound="max_rate = 0.9"), "--synthcxr-json=base.json")
    base = _item(pytester, "base.json")
    _run(pytester, HALLUCINATION.format(bound="relative_to_baseline = true\nmax_increase = 0.03"), "--synthcxr-baseline=base.json", "--synthcxr-json=new.json")
    new = _item(pytester, "new.json")
    assert new["threshold"] == pytest.approx(base["estimate"] + 0.03, abs=1e-6)
    assert new["estimate"] == base["estimate"] and new["verdict"] == _verdict(new)


@pytest.mark.parametrize(
    "body, message",
    [
        ("[hallucination]\nmax_rate = 0.1\nrelative_to_baseline = true\nmax_increase = 0.1\n", "hallucination[0]: relative_to_baseline takes 'max_increase' (and not 'max_rate')"),
        ("[uncertainty]\nmax_increase = 0.1\n", "uncertainty[0]: max_increase needs relative_to_baseline = true"),
        ("[uncertainty]\nfindings = ['Effusion']\n", "uncertainty[0]: 'max_entropy' is required"),
        ("[validity]\nrelative_to_baseline = true\nmin_sensitivity = 0.5\n", "validity[0]: relative_to_baseline takes max_sensitivity_decrease, max_fpr_increase, max_auroc_decrease (not min_sensitivity, max_fpr, min_auroc)"),
        ("[validity]\nmax_fpr_increase = 0.1\n", "validity[0]: max_sensitivity_decrease, max_fpr_increase, max_auroc_decrease need relative_to_baseline = true"),
        ("[validity]\nrelative_to_baseline = true\n", "validity[0]: give at least one of max_sensitivity_decrease, max_fpr_increase, max_auroc_decrease"),
        ("[validity]\nfindings = ['Effusion']\n", "validity[0]: give at least one of min_sensitivity, max_fpr, min_auroc"),
    ],
)
def test_relative_bounds_of_other_families_are_validated(tmp_path, body, message):
    path = tmp_path / "synthcxr.toml"
    path.write_text(body)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert message in str(info.value)


def test_validity_bounds_can_be_relative_too(pytester):
    _run(pytester, VALIDITY.format(bound="min_sensitivity = 0.1\nmax_fpr = 0.9"), "--synthcxr-json=base.json")
    base = {i["check"]: i for i in json.loads((pytester.path / "base.json").read_text())["items"]}
    for margin, verdict in ((0.4, "pass"), (0.0, "inconclusive")):  # a wide margin passes; none straddles
        bound = f"relative_to_baseline = true\nmax_sensitivity_decrease = {margin}\nmax_fpr_increase = {margin}"
        _run(pytester, VALIDITY.format(bound=bound), "--synthcxr-baseline=base.json", "--synthcxr-json=new.json")
        new = {i["check"]: i for i in json.loads((pytester.path / "new.json").read_text())["items"]}
        assert set(new) == {"validity[sensitivity-Effusion]", "validity[fpr-Effusion]"}
        sens, fpr = new["validity[sensitivity-Effusion]"], new["validity[fpr-Effusion]"]
        assert sens["threshold"] == pytest.approx(max(0.0, base["validity[sensitivity-Effusion]"]["estimate"] - margin), abs=1e-6)
        assert fpr["threshold"] == pytest.approx(min(1.0, base["validity[fpr-Effusion]"]["estimate"] + margin), abs=1e-6)
        assert sens["estimate"] == base["validity[sensitivity-Effusion]"]["estimate"]  # same samples, same numbers
        assert (sens["verdict"], fpr["verdict"]) == (verdict, verdict), (sens, fpr)
