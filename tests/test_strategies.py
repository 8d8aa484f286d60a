"""The prompt strategies: every prompt reads back as meant; a counterfactual pair differs in one attribute."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_synthcxr import strategies as cxr
from pytest_synthcxr.sampling.prompts import parse_prompt
from pytest_synthcxr.spec.vocabulary import LATERAL_FINDINGS

FAST = settings(max_examples=150, deadline=None)


@FAST
@given(cxr.prompt_specs())
def test_every_prompt_reads_back_as_meant(spec):
    assert parse_prompt(spec.text) == spec.expected


@FAST
@given(cxr.prompt_specs(demographics="always", min_findings=1, layout=False))
def test_roentgen_shaped_prompts_name_the_subgroup(spec):
    parsed = parse_prompt(spec.text)
    assert parsed == spec.expected
    assert parsed.sex is not None and parsed.race is not None and parsed.findings


@FAST
@given(cxr.prompt_specs(modifiers=False, min_findings=1))
def test_bare_findings_have_no_side_or_severity(spec):
    parsed = parse_prompt(spec.text)
    assert parsed == spec.expected and not parsed.severity and set(parsed.findings.values()) == {None}


@FAST
@given(cxr.prompts(demographics="never"))
def test_prompt_strings_without_demographics(text):
    parsed = parse_prompt(text)
    assert not parsed.names_demographics and parsed.age is None


@FAST
@given(cxr.counterfactual_pairs())
def test_a_pair_differs_in_exactly_the_named_attribute(pair):
    a, b = parse_prompt(pair.base.text), parse_prompt(pair.changed.text)
    assert a == pair.base.expected and b == pair.changed.expected
    assert pair.before != pair.after and pair.base.text != pair.changed.text
    if pair.attribute == "sex":
        assert (a.sex, b.sex) == (pair.before, pair.after)
        assert replace(b, sex=a.sex) == a
    elif pair.attribute == "race":
        assert (a.race, b.race) == (pair.before, pair.after)
        assert replace(b, race=a.race) == a
    elif pair.attribute == "age":
        assert cxr.age_band(a.age) != cxr.age_band(b.age)
        assert replace(b, age=a.age) == a
    elif pair.attribute == "laterality":
        finding = pair.detail["finding"]
        assert finding in LATERAL_FINDINGS
        assert (a.findings[finding], b.findings[finding]) == (pair.before, pair.after)
        assert replace(b, findings=a.findings) == a
        assert {k: v for k, v in a.findings.items() if k != finding} == {k: v for k, v in b.findings.items() if k != finding}
    else:
        assert pair.attribute == "paraphrase" and a == b


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_pairs_restricted_to_attributes(data):
    attrs = data.draw(st.lists(st.sampled_from(cxr.ATTRIBUTES), min_size=1, unique=True))
    pair = data.draw(cxr.counterfactual_pairs(attributes=attrs))
    assert pair.attribute in attrs


def test_unknown_attribute_is_refused():
    @settings(max_examples=1, database=None)
    @given(cxr.counterfactual_pairs(attributes=("height",)))
    def draw_one(pair):
        pass

    with pytest.raises(ValueError, match="unknown counterfactual attributes"):
        draw_one()


def test_examples_of_the_documented_shapes():
    spec = cxr.PromptSpec(
        mentions=(cxr.Mention("Effusion", "pleural effusion", "left", "left-sided", "small"),),
        negated=(("Pneumothorax", "pneumothorax"),),
        demographics=cxr.Demographics(45, "{} year old", "female", "female", "Hispanic", "Hispanic"),
    )
    assert spec.text == "45 year old Hispanic female. Small left-sided pleural effusion. No pneumothorax."
    assert parse_prompt(spec.text) == spec.expected
