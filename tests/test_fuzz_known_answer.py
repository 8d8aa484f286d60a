"""Known answer for prompt fuzzing: a demographic-swap property over paired same-seed batches.

`phantom-biased` omits requested findings more often when the prompt names some subgroups
(0.56 for Hispanic women down to 0.26 for White men, PRESETS in generators/phantom.py): the
property "swapping sex or race changes the judge's rate of the requested finding by at most
DELTA" must be falsified, and the shrunk example must name a subgroup and a finding whose
planted omission rates differ. The faithful `phantom` (default of the synthcxr_pool fixture)
passes the same property. Both prompts of a pair use the same 16 seeds.
"""

import pytest
from hypothesis import HealthCheck, given, note, settings, target

from pytest_synthcxr import strategies as cxr
from pytest_synthcxr.fuzz.sampler import PairedSampler
from pytest_synthcxr.models.generators.phantom import PRESETS, PhantomGenerator
from pytest_synthcxr.sampling.prompts import NORMAL_PROMPT, parse_prompt

DELTA = 0.2  # largest allowed change of the finding's rate (judge decisions, 16 paired seeds)
SEEDS = 16
PAIRS = cxr.counterfactual_pairs(
    attributes=("sex", "race"), demographics="always", age=False, min_findings=1, max_findings=1, max_negated=0, layout=False, modifiers=False
)
SETTINGS = settings(
    max_examples=8,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def swap_property(pool, failures):
    @SETTINGS
    @given(pair=PAIRS)
    def demographic_swap_is_invariant(pair):
        finding = pair.base.requested[0]
        comparison = pool.compare(pair.base.text, pair.changed.text, finding, SEEDS)
        gap = abs(comparison.difference.value)
        target(gap, label="paired rate gap")
        note(f"{pair}\n{finding}: {comparison.describe()}")
        if gap > DELTA:
            failures.append((pair, finding, comparison))
            raise AssertionError(f"swapping {pair.attribute} {pair.before} -> {pair.after} moves the rate of {finding} by {gap:.2f} > {DELTA}")

    return demographic_swap_is_invariant


@pytest.fixture(scope="module")
def biased_pool(synthcxr_judge):
    return PairedSampler(PhantomGenerator("phantom-biased"), synthcxr_judge, 0)


def test_biased_phantom_falsifies_demographic_invariance(biased_pool):
    failures = []
    with pytest.raises(AssertionError, match="moves the rate of"):
        swap_property(biased_pool, failures)()
    pair, finding, comparison = failures[-1]  # hypothesis replays the shrunk example last
    a, b = parse_prompt(pair.base.text), parse_prompt(pair.changed.text)
    assert dict(a.findings) == dict(b.findings) == {finding: None}
    for parsed, spec in ((a, pair.base), (b, pair.changed)):  # both prompts name a full subgroup
        assert parsed.sex and parsed.race
        assert spec.demographics.race_word in spec.text and spec.demographics.sex_word in spec.text
    omission = PRESETS["phantom-biased"].omission_named
    planted = omission[f"{a.sex}/{a.race}"] - omission[f"{b.sex}/{b.race}"]
    assert abs(planted) >= 0.1 - 1e-9, "the shrunk pair is one whose planted omission rates differ"
    # the subgroup with more planted omission is the one the judge calls positive less often
    assert (planted > 0) == (comparison.difference.value < 0)
    assert abs(comparison.difference.value) > DELTA and comparison.mcnemar.only_a + comparison.mcnemar.only_b > 0


def test_faithful_phantom_passes_demographic_invariance(synthcxr_pool):
    assert synthcxr_pool.generator.name == "phantom"
    failures = []
    swap_property(synthcxr_pool, failures)()
    assert failures == []


@settings(max_examples=5, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(spec=cxr.prompt_specs(max_findings=0, max_negated=3))
def test_negated_findings_are_not_drawn_by_the_faithful_phantom(synthcxr_pool, spec):
    """Negation: "no X" must not produce X more often than a normal study does (same seeds)."""
    for finding, _ in spec.negated:
        comparison = synthcxr_pool.compare(spec.text, NORMAL_PROMPT, finding, SEEDS)
        note(f"{spec.text!r} {finding}: {comparison.describe()}")
        assert comparison.difference.value <= DELTA
