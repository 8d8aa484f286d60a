"""[[tool.synthcxr.fuzz]] sections as audit items: spec expansion, the falsification rule, and the
known answer through pytest itself (pytester): on `phantom-biased` the demographic-invariance item
fails with a one-line message holding the shrunk prompt pair, which names the planted subgroup
and the finding; the next run replays that pair from the hypothesis database in the cache dir;
the faithful `phantom` passes every property. samples = 48 per pair: at 32 the search finds the
planted fault for only about 5 search seeds in 8 (benchmarks/fuzz_search.py), at 48 for 8 in 8."""

from __future__ import annotations

import json

import hypothesis  # noqa: F401  (loaded once: pytester runs forget modules imported inside them)
import numpy as np
import pytest

from pytest_synthcxr.checks.fuzz import FuzzCheck, build_fuzz_checks, judge_example
from pytest_synthcxr.models.generators.phantom import PRESETS
from pytest_synthcxr.stats.paired import PairedTable, compare_decisions, newcombe_paired
from pytest_synthcxr.sampling.prompts import parse_prompt
from pytest_synthcxr.spec.schema import AuditSpec, SpecError, load_spec

ITEM = "fuzz[demographic-invariance-Atelectasis]"
SPEC = """
findings = ["Effusion", "Cardiomegaly"]

[[fuzz]]
property = "demographic-invariance"
findings = ["Atelectasis"]
delta = 0.05
max_examples = 10
samples = 48

[[fuzz]]
property = "negation"
delta = 0.2
max_examples = 3
samples = 12

[[fuzz]]
property = "paraphrase-invariance"
findings = ["Cardiomegaly"]
delta = 0.2
max_examples = 3
samples = 12

[[fuzz]]
property = "laterality"
delta = 0.2
max_examples = 3
samples = 12
"""
OTHERS = ("fuzz[negation-Effusion]", "fuzz[negation-Cardiomegaly]", "fuzz[paraphrase-invariance-Cardiomegaly]", "fuzz[laterality-Effusion]")


def test_a_run_without_an_audit_imports_no_fuzzing_code(pytester):
    """hypothesis and the fuzz modules load only when an audit with [[fuzz]] sections runs."""
    pytester.makepyfile(
        """
        import sys

        def test_modules():
            loaded = [m for m in ("hypothesis", "pytest_synthcxr.fuzz.sampler", "pytest_synthcxr.plugin.fuzz_item", "pytest_synthcxr.fuzz.strategies") if m in sys.modules]
            assert loaded == []
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest").assert_outcomes(passed=1)


# ---------------------------------------------------------------- spec expansion and errors


def test_each_section_becomes_one_item_per_finding_with_its_settings():
    spec = AuditSpec.model_validate(
        {
            "findings": ["Effusion", "Cardiomegaly"],
            "fuzz": [
                {"property": "demographic-invariance", "delta": 0.05, "max_examples": 7, "samples": 12, "attributes": ["race"]},
                {"property": "laterality"},  # only the lateral findings of the spec
                {"property": "negation", "findings": ["Edema"]},
                {"property": "negation", "findings": ["Edema"]},
            ],
        }
    )
    checks = build_fuzz_checks(spec)
    assert [c.nodename for c in checks] == [
        "fuzz[demographic-invariance-Effusion]",
        "fuzz[demographic-invariance-Cardiomegaly]",
        "fuzz[laterality-Effusion]",
        "fuzz[negation-Edema]",
        "fuzz[negation-Edema-1]",
    ]
    first = checks[0]
    assert (first.threshold, first.max_examples, first.samples, first.attributes) == (0.05, 7, 12, ("race",))
    assert first.example_alpha(0.95) == pytest.approx(0.05 / 7)
    assert checks[2].max_examples == 20 and checks[2].samples == 32 and checks[2].threshold == 0.1  # documented defaults


@pytest.mark.parametrize(
    "section, message",
    [
        ('property = "symmetry"', "fuzz[0].property: Input should be 'demographic-invariance', 'negation', 'paraphrase-invariance' or 'laterality'"),
        ('property = "negation"\nattributes = ["sex"]', "fuzz[0]: 'attributes' applies to property 'demographic-invariance' only, not 'negation'"),
        ('property = "laterality"\nfindings = ["Cardiomegaly"]', "fuzz[0]: laterality needs findings drawn on one side"),
        ('property = "negation"\ndelta = 0', "fuzz[0].delta: Input should be greater than 0"),
        ('property = "negation"\nsamples_per_example = 3', "fuzz[0].samples_per_example: unknown key; allowed keys: attributes, delta, findings"),
    ],
)
def test_a_bad_fuzz_section_is_one_line(tmp_path, section, message):
    path = tmp_path / "synthcxr.toml"
    path.write_text(f"[[fuzz]]\n{section}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"synthcxr: {path}: ")
    assert message in text


# ---------------------------------------------------------------- the falsification rule


def _comparison(only_a: int, only_b: int, both: int, neither: int, alpha: float):
    a = np.array([1] * both + [1] * only_a + [0] * only_b + [0] * neither, dtype=bool)
    b = np.array([1] * both + [0] * only_a + [1] * only_b + [0] * neither, dtype=bool)
    return compare_decisions(a, b, alpha)


def test_a_pair_falsifies_only_when_its_interval_lies_beyond_delta():
    check = FuzzCheck(name="x", samples=32, threshold=0.2, direction="max", prop="demographic-invariance", finding="Effusion", max_examples=10)
    assert check.interval_alpha(0.95) == pytest.approx(2 * check.example_alpha(0.95)) == pytest.approx(0.01)
    alpha = check.interval_alpha(0.95)  # each bound one-sided at 0.005
    big = judge_example(check, _comparison(0, 20, 4, 8, alpha), 0.95)  # -20/32: |A - B| far beyond delta
    low, high = newcombe_paired(PairedTable(4, 0, 20, 8), alpha)
    assert big.falsified and big.size.value == pytest.approx(20 / 32) and big.size.low == pytest.approx(-high) and -high > 0.2
    # -9/32 > delta and McNemar rejects "no change" (p = 2^-8), but the interval reaches below delta
    large = judge_example(check, _comparison(0, 9, 13, 10, alpha), 0.95)
    assert large.comparison.mcnemar.pvalue < check.example_alpha(0.95) and large.size.value > 0.2
    assert large.size.low < 0.2 and not large.falsified
    # a change exactly at delta, however many seeds, is allowed
    at = judge_example(check, _comparison(0, 200, 400, 400, alpha), 0.95)
    assert at.size.value == pytest.approx(0.2) and not at.falsified
    # negation is one-sided: fewer X with "no X" never falsifies it
    negation = FuzzCheck(name="y", samples=32, threshold=0.2, direction="max", prop="negation", finding="Effusion", max_examples=10)
    assert not judge_example(negation, _comparison(0, 20, 4, 8, alpha), 0.95).falsified
    assert judge_example(negation, _comparison(20, 0, 4, 8, alpha), 0.95).falsified


@pytest.mark.parametrize(
    "prop, attributes",
    [("demographic-invariance", ("age",)), ("demographic-invariance", ("sex", "race")), ("negation", ()), ("paraphrase-invariance", ()), ("laterality", ())],
)
def test_each_property_draws_pairs_that_differ_in_what_it_names(prop, attributes):
    from hypothesis import given, settings

    from pytest_synthcxr.fuzz.sampler import pair_strategy

    check = FuzzCheck(name="x", samples=8, threshold=0.1, direction="max", prop=prop, finding="Effusion", attributes=attributes or ("sex", "race"))
    seen = set()

    @settings(max_examples=30, deadline=None, database=None)
    @given(pair_strategy(check))
    def pairs(pair):
        a, b = parse_prompt(pair.base.text), parse_prompt(pair.changed.text)
        seen.add(pair.attribute)
        if prop == "negation":
            assert "Effusion" in a.negated and "Effusion" not in b.negated | set(b.findings)
            assert a.findings == b.findings and a.negated - {"Effusion"} == b.negated
            return
        if prop == "laterality":  # asked on one side, against the same prompt without it
            assert a.findings["Effusion"] == pair.before and pair.detail["checked"] == {"left": "right", "right": "left"}[pair.before]
            assert "Effusion" not in b.findings and {**b.findings, "Effusion": pair.before} == dict(a.findings)
            assert (a.sex, a.race, a.age, a.negated) == (b.sex, b.race, b.age, b.negated)
            return
        assert set(a.findings) == set(b.findings) == {"Effusion"}  # the finding, and only it, asked in both
        if prop == "demographic-invariance":
            assert pair.attribute in attributes and a.sex and a.race
            assert [k for k in ("sex", "race", "age") if getattr(a, k) != getattr(b, k)] == [pair.attribute]
        else:
            assert pair.attribute == "paraphrase" and pair.before != pair.after and a == b

    pairs()
    assert seen == ({"negation"} if prop == "negation" else set(attributes) if attributes else {prop.split("-")[0]})


def test_the_judge_tells_the_side_of_a_phantom_effusion_from_mirrored_hemithoraces(synthcxr_judge):
    from pytest_synthcxr.fuzz.sampler import PairedSampler
    from pytest_synthcxr.models.generators.phantom import PhantomGenerator

    sampler = PairedSampler(PhantomGenerator("phantom"), synthcxr_judge, 0)
    k = synthcxr_judge.outputs.index("Effusion")
    positive = {prompt: (sampler.side_scores(prompt, 12)[:, :, k] > 0.5).mean(axis=0) for prompt in ("Left pleural effusion.", "Right pleural effusion.", "No acute cardiopulmonary process.")}
    assert positive["Left pleural effusion."][0] > 0.8 > 0.2 > positive["Left pleural effusion."][1]  # [patient's left, right]
    assert positive["Right pleural effusion."][1] > 0.8 > 0.2 > positive["Right pleural effusion."][0]
    assert positive["No acute cardiopulmonary process."].max() < 0.2


def test_a_generator_drawing_the_wrong_side_fails_laterality(synthcxr_judge):
    """Known answer: the phantom mirrored left-right puts every sided finding on the wrong side."""
    from pytest_synthcxr.fuzz.sampler import PairedSampler, run_property
    from pytest_synthcxr.models.generators.phantom import PhantomGenerator

    class Mirrored(PhantomGenerator):
        def generate(self, prompts, seeds):
            return np.ascontiguousarray(super().generate(prompts, seeds)[..., ::-1])

    check = FuzzCheck(name="x", samples=16, threshold=0.2, direction="max", prop="laterality", finding="Effusion", max_examples=5, negations=0)
    outcome = run_property(check, PairedSampler(Mirrored("phantom"), synthcxr_judge, 0), confidence=0.95, seed=1)
    assert outcome.falsified is not None, outcome.worst
    pair, judged = outcome.falsified.pair, outcome.falsified.judged
    asked = parse_prompt(pair.base.text).findings["Effusion"]
    assert asked == pair.before and pair.detail["checked"] != asked and "Effusion" not in parse_prompt(pair.changed.text).findings
    assert judged.comparison.difference.value > 0.8 and judged.comparison.mcnemar.only_b == 0


# ---------------------------------------------------------------- through pytest (known answer)


def _run(pytester, model, *args):
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", f"--synthcxr-model={model}", "--synthcxr-spec=synthcxr.toml", *args)


def _failure_line(result):
    lines = [line for line in result.stdout.lines if line.startswith("fail: ")]
    assert len(lines) == 1, result.stdout.str()
    return lines[0]


def test_phantom_biased_fails_with_the_shrunk_pair_replayed_next_run_and_phantom_passes(pytester):
    """One test, four runs (each costs seconds): the known answer on phantom-biased, its replay,
    the faithful phantom passing every property, and the same result without a database."""
    pytester.makefile(".toml", synthcxr=SPEC)
    swap = ("-m", "fuzz", "-k", "demographic")
    first = _run(pytester, "phantom-biased", *swap, "--synthcxr-cache-dir=cache", "--synthcxr-json=out/1.json", "--synthcxr-report=out/1.html")
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines(["fuzz: * images generated and judged for * prompts (the same seeds for every prompt)"])
    line = _failure_line(first)
    data = json.loads((pytester.path / "out" / "1.json").read_text())
    (item,) = data["items"]
    assert item["check"] == ITEM and item["family"] == "fuzz" and item["verdict"] == "fail" and item["subject"] == "Atelectasis"
    fuzz, x = item["fuzz"], item["fuzz"]["example"]
    assert fuzz["falsified"] and x["falsified"] and fuzz["examples"] > 1
    # the one line holds the shrunk pair and its paired numbers
    assert f"{x['base']!r} vs {x['changed']!r}" in line and f"{x['difference']:+.3f}" in line and f"discordant {x['only_a']}/{x['only_b']}" in line
    # known answer: the shrunk pair asks for the finding and names the most-omitted planted subgroup
    a, b = parse_prompt(x["base"]), parse_prompt(x["changed"])
    assert dict(a.findings) == dict(b.findings) == {"Atelectasis": None}
    omission = PRESETS["phantom-biased"].omission_named
    rates = {f"{p.sex}/{p.race}": omission[f"{p.sex}/{p.race}"] for p in (a, b)}
    assert max(rates.values()) == max(omission.values()), rates
    planted = rates[f"{a.sex}/{a.race}"] - rates[f"{b.sex}/{b.race}"]
    assert (planted > 0) == (x["difference"] < 0) and abs(x["difference"]) > fuzz["delta"]
    # falsified by the interval: its one-sided bound (two-sided at 2 x 0.05 / 10) lies beyond delta
    assert fuzz["alpha"] == pytest.approx(2 * 0.05 / 10)
    assert x["difference_low"] > fuzz["delta"] or x["difference_high"] < -fuzz["delta"]
    # the item's own numbers: |A - B| of that pair with its interval at the spec's 95%, inside the 99.5% one
    assert item["confidence"] == 0.95 and item["estimate"] == pytest.approx(abs(x["difference"]))
    assert item["low"] < item["estimate"] < item["high"] and item["high"] - item["low"] < x["difference_high"] - x["difference_low"]
    assert len(x["base"]) <= 40, "shrunk: no age, negation, side or severity words left"
    # the report: schema-valid JSON, and the HTML shows the pair with paired thumbnails
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_synthcxr.report.schema import load_schema

    jsonschema.validate(data, load_schema(), cls=jsonschema.Draft202012Validator)
    page = (pytester.path / "out" / "1.html").read_text()
    assert 'id="fuzz"' in page and f'id="{item["id"]}"' in page
    assert page.count('alt="A, seed') == page.count('alt="B, seed') == 3

    # the next run replays the falsifying pair from <cache dir>/hypothesis first
    assert (pytester.path / "cache" / "hypothesis").is_dir()
    second = _run(pytester, "phantom-biased", *swap, "--synthcxr-cache-dir=cache", "--synthcxr-json=out/2.json")
    second.assert_outcomes(failed=1)
    replayed = json.loads((pytester.path / "out" / "2.json").read_text())["items"][0]["fuzz"]
    assert replayed["example"] == x
    assert replayed["examples"] < fuzz["examples"], (replayed["examples"], fuzz["examples"])
    assert _failure_line(second).split(": ", 1)[1].split("; shrunk after")[0] == line.split(": ", 1)[1].split("; shrunk after")[0]

    # the faithful phantom passes the same item and every other property
    faithful = _run(pytester, "phantom", "--synthcxr-cache-dir=cache2", "--synthcxr-json=out/3.json", "-v")
    faithful.assert_outcomes(passed=5)
    escaped = ["".join(f"[{c}]" if c in "[]" else c for c in name) for name in (ITEM, *OTHERS)]
    faithful.stdout.fnmatch_lines([f"synthcxr.toml::{name} PASSED*" for name in escaped])  # laterality: no Cardiomegaly, it has no side
    passed = {i["check"]: i for i in json.loads((pytester.path / "out" / "3.json").read_text())["items"]}
    assert all(i["verdict"] == "pass" and not i["fuzz"]["falsified"] for i in passed.values())
    assert passed[ITEM]["fuzz"]["examples"] == 10 and all(passed[name]["fuzz"]["examples"] == 3 for name in OTHERS)
    assert [passed[name]["fuzz"]["example"]["attribute"] for name in OTHERS] == ["negation", "negation", "paraphrase", "laterality"]
    # passing searches leave nothing in the database (target()'s pareto front is not kept), so a
    # later run, with or without a database, explores the same pairs; without one, nothing is written
    assert not [p for p in (pytester.path / "cache2").rglob("*") if p.is_file() and "hypothesis" in p.parts]
    again = _run(pytester, "phantom", "-k", "not demographic", "--synthcxr-cache-dir=nocache", "--synthcxr-no-cache", "--synthcxr-json=out/4.json")
    again.assert_outcomes(passed=4)
    assert json.loads((pytester.path / "out" / "4.json").read_text())["items"] == [passed[name] for name in sorted(OTHERS)]
    assert not (pytester.path / "nocache").exists()
