from pathlib import Path

import pytest

from pytest_synthcxr.checks import build_checks
from pytest_synthcxr.sampling.plan import format_plan, plan
from pytest_synthcxr.spec.schema import load_spec

SMALL = Path(__file__).parent.parent / "fixtures" / "specs" / "small.toml"


def test_plan_counts_shared_cells_once():
    checks = build_checks(load_spec(SMALL).spec)
    rows, total = plan(checks, sequential=True, first_round=16)
    # small.toml: 2 findings + normal, sex x race = 4 subgroups, 60 per cell; plain cells are
    # shared by bias (plain), validity, uncertainty, hallucination; named Effusion cells add 4
    assert total == (3 * 4 + 4) * 60
    assert rows[0].looks == (16, 24, 36, 54, 60)  # bias: confidence sequences, rounds grow 1.5x
    assert next(r for r in rows if r.check.startswith("uncertainty")).looks == (16, 32, 60)  # alpha split: doubling
    fixed_rows, _ = plan(checks, sequential=False, first_round=16)
    assert fixed_rows[0].looks == (60,)
    lines = format_plan(rows, total, images_per_second=16.0)
    assert lines[-1] == "at most 960 distinct images (cells shared between items are generated once), about 1.0 min at 16.0 images/s"


def test_plan_shows_the_power_based_size_beside_the_budget():
    checks = {c.nodename: c for c in build_checks(load_spec(SMALL).spec)}
    rows = {r.check: r for r in plan(list(checks.values()), sequential=True, first_round=16)[0]}
    # hallucination: max 0.05, margin 0.05, one-sided alpha 0.05, power 0.9, Cohen's h:
    # fail side h = 2 asin(sqrt(0.10)) - 2 asin(sqrt(0.05)) = 0.19248, n = ((1.64485 + 1.28155) / 0.19248)^2
    # = 231.2 -> 232 images, pooled over 12 cells -> 20 per cell
    assert rows["hallucination[COVID-19]"].power == 20
    # TPR gap over 4 subgroups: per subgroup a difference 0.05 beyond the bound with sd 0.5 at
    # alpha / 4: 2 (z_0.0125 + z_0.1)^2 (0.5 / 0.05)^2 = 2 (2.24140 + 1.28155)^2 100 = 2482.3 -> 2483
    assert rows["bias[tpr-gap-Effusion-sex*race-named]"].power == 2483
    # validity sensitivity, min 0.8: pass side 0.85 needs the most: pooled over the 4 cells asked for it
    from pytest_synthcxr import stats

    assert rows["validity[sensitivity-Effusion]"].power == -(-stats.proportion_samples(0.8, 0.05) // 4)
    lines = format_plan(list(rows.values()), 960)
    assert any(line.startswith("hallucination[COVID-19]") and line.split()[3] == "20" for line in lines)
    assert any("budget below the power-based size" in line and "bias[tpr-gap-Effusion-sex*race-named]" in line for line in lines)


def test_plan_option_generates_nothing(pytester):
    pytester.makefile(".toml", synthcxr=SMALL.read_text())
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-plan", "-k", "hallucination")
    result.stdout.fnmatch_lines(["hallucination[[]COVID-19[]]  *12        60          20  *%  16, 24, 36, 54, 60", "at most 720 distinct images*"])
    assert result.ret == 0
    assert "passed" not in result.stdout.str()


def test_plan_lists_fuzz_items_and_the_reference_set(pytester):
    text = 'reference = "phantom:48"\n' + SMALL.read_text() + (
        "[[fuzz]]\nproperty = \"negation\"\nfindings = [\"Effusion\"]\nmax_examples = 5\nsamples = 8\n"
    )
    pytester.makefile(".toml", synthcxr=text)
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-plan", "-p", "no:randomly")
    result.stdout.fnmatch_lines([
        "fuzz[[]negation-Effusion[]]: up to 5 examples x 2 prompts x 8 seeds = 80 images, plus hypothesis's shrinking*",
        "reference set: 48 images scored by the judge once*",
    ])
    assert result.ret == 0 and "passed" not in result.stdout.str()


def test_rule_power_is_the_power_of_the_rule_that_runs():
    from scipy.stats import binom

    from pytest_synthcxr import stats

    checks = build_checks(load_spec(SMALL).spec)
    fixed = {r.check: r for r in plan(checks, sequential=False, first_round=16)[0]}
    sequential = {r.check: r for r in plan(checks, sequential=True, first_round=16)[0]}
    # fixed design, hallucination (max 0.05, 12 cells x 60 = 720 images): at 0.00 it always passes;
    # at 0.10 it fails when Wilson's lower bound exceeds 0.05: the exact binomial chance of that
    exact = sum(binom.pmf(k, 720, 0.10) for k in range(721) if stats.wilson(k, 720)[0] > 0.05)
    assert fixed["hallucination[COVID-19]"].rule_power == pytest.approx(exact, abs=0.04)
    # the fixed-sample formula's 90% is not what the rules deliver at these budgets; sequential less still
    sens = "validity[sensitivity-Effusion]"
    assert sequential[sens].rule_power < fixed[sens].rule_power < 0.9
    assert sequential["bias[tpr-gap-Effusion-sex*race-named]"].rule_power is None  # not simulated: shown as '-'
