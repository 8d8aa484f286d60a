from pathlib import Path

from pytest_synthcxr.checks import build_checks
from pytest_synthcxr.plan import format_plan, plan
from pytest_synthcxr.spec import load_spec

SMALL = Path(__file__).parent.parent / "fixtures" / "specs" / "small.toml"


def test_plan_counts_shared_cells_once():
    checks = build_checks(load_spec(SMALL).spec)
    rows, total = plan(checks, sequential=True, first_round=16)
    # small.toml: 2 findings + normal, sex x race = 4 subgroups, 60 per cell; plain cells are
    # shared by bias (plain), validity, uncertainty, hallucination; named Effusion cells add 4
    assert total == (3 * 4 + 4) * 60
    assert rows[0].looks == (16, 32, 60)
    fixed_rows, _ = plan(checks, sequential=False, first_round=16)
    assert fixed_rows[0].looks == (60,)
    lines = format_plan(rows, total, images_per_second=16.0)
    assert lines[-1] == "at most 960 distinct images (cells shared between items are generated once), about 1.0 min at 16.0 images/s"


def test_plan_option_generates_nothing(pytester):
    pytester.makefile(".toml", synthcxr=SMALL.read_text())
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-plan", "-k", "hallucination")
    result.stdout.fnmatch_lines(["hallucination[[]COVID-19[]]  *12        60  16, 32, 60", "at most 720 distinct images*"])
    assert result.ret == 0
    assert "passed" not in result.stdout.str()
