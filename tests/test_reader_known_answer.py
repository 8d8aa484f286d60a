"""Known answer: a judge with a planted subgroup-dependent error, readers who see the truth.

The world: 8 subgroups (sex x race), images asked for Effusion show it with probability 0.70,
other images with 0.03. The judge misses a drawn effusion with probability 0.45 on Hispanic
women's images and 0.08 on everyone else's, and calls 4% of clean images positive, so its
sensitivity (share of images asked for Effusion that it calls positive) is about 0.62, not the
true 0.70. Two simulated readers report the truth on a stratified sample of 60 images per cell,
each flipping 3% of their answers. The reader-corrected (PPI) interval covers 0.70; the
judge-only interval does not; the agreement table flags Hispanic women and no one else.
"""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from pytest_synthcxr.sampling.cells import derive_seed, subgroup_label
from pytest_synthcxr.sampling.pool import score_column

TRUE_RATE = 0.70
N, LABELLED = 400, 60
MISS = {"Hispanic female": 0.45}
SPEC = """
seed = 0
findings = ["Effusion"]
sampling = "fixed"
[subgroups]
sex = ["female", "male"]
race = ["White", "Black", "Asian", "Hispanic"]
[[validity]]
min_sensitivity = 0.64
samples = 400
verdict = "reader"
[reader]
labels = "{labels}"
"""


def world(seed: int, cells, labelled: int = LABELLED) -> tuple[pd.DataFrame, list[dict]]:
    """The score table of the population cells and the two readers' label rows."""
    rng = np.random.default_rng(seed)
    frames, labels = [], []
    for cell in cells:
        asked = cell.finding == "Effusion"
        seeds = [derive_seed(0, cell.seed_key, i) for i in range(N)]
        truth = rng.random(N) < (TRUE_RATE if asked else 0.03)
        miss = MISS.get(subgroup_label(cell.subgroup), 0.08)
        called = np.where(truth, rng.random(N) >= miss, rng.random(N) < 0.04)
        attrs = cell.attributes
        frames.append(pd.DataFrame({
            "cell": cell.key, "finding": cell.finding or "", "sex": attrs["sex"], "race": attrs["race"], "age": "",
            "named": False, "i": np.arange(N), "seed": np.asarray(seeds, dtype=np.int64), "valid": True, "seeded": True,
            score_column("Effusion"): np.where(called, 0.9, 0.1),
        }))
        for i in sorted(rng.choice(N, size=labelled, replace=False)):
            for reader in ("r1", "r2"):
                says = bool(truth[i]) != bool(rng.random() < 0.03)
                for question, answer in (("Effusion", "present" if says else "absent"), ("usable", "yes")):
                    labels.append({
                        "reader": reader, "image_sha": f"{seeds[i]:064x}", "kind": "generated", "cell": cell.key, "seed": seeds[i],
                        "prompt": cell.prompt, "subgroup": subgroup_label(cell.subgroup), "finding": cell.finding or "",
                        "task": "findings", "question": question, "answer": answer, "confidence": "", "time": 0.0,
                    })
    return pd.concat(frames, ignore_index=True), labels


@pytest.mark.parametrize("seed", [0, 1])
def test_reader_corrected_rate_covers_the_truth_and_the_judge_does_not(tmp_path, seed):
    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.checks.reader import ReaderValidityCheck, agreement_rows, read_labels
    from pytest_synthcxr.reader.store import COLUMNS
    from pytest_synthcxr.spec.schema import load_spec

    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text("reader\n")  # replaced below, once the cells are known
    spec_path = tmp_path / "ka.synthcxr.toml"
    spec_path.write_text(SPEC.format(labels=labels_csv.as_posix()))
    population = [c for c in build_checks(load_spec(spec_path).spec)[0].population]
    table, rows = world(seed, population)
    with open(labels_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    (check,) = [c for c in build_checks(load_spec(spec_path).spec) if c.nodename == "validity[sensitivity-Effusion]"]
    assert isinstance(check, ReaderValidityCheck)
    result = check.evaluate(table, 0.95)
    ppi, judge = result.estimate, result.stats
    print(
        f"seed {seed}: reader-corrected {ppi.value:.3f} [{ppi.low:.3f}, {ppi.high:.3f}] ({result.verdict}); "
        f"judge alone {judge['judge_only']:.3f} [{judge['judge_only_low']:.3f}, {judge['judge_only_high']:.3f}]"
    )
    assert ppi.low <= TRUE_RATE <= ppi.high
    assert result.verdict == "pass"  # min_sensitivity 0.64: the readers show the model meets it; the judge alone sat below
    assert judge["judge_only_high"] < TRUE_RATE  # the judge's planted misses pull its interval below the truth
    assert judge["reader_labelled"] == 8 * LABELLED
    assert "reader-corrected" in result.message() and "judge alone" in result.message()
    groups = {g.label: g for g in result.groups}
    assert groups["Hispanic female"].low <= TRUE_RATE <= groups["Hispanic female"].high

    asked = [c for c in population if c.finding == "Effusion"]
    rows_ = agreement_rows(check.sample_values(table), read_labels(labels_csv), "Effusion", asked)
    flagged = {r["subgroup"] for r in rows_ if "sensitivity" in r["flagged"]}
    assert flagged == {"Hispanic female"}
    hisp = next(r for r in rows_ if r["subgroup"] == "Hispanic female")
    assert hisp["sensitivity"][2] < 0.8 < min(r["sensitivity"][0] for r in rows_ if r["subgroup"] != "Hispanic female")


def test_reader_verdict_needs_labels_and_readable_ones(tmp_path):
    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.spec.schema import SpecError, load_spec

    spec_path = tmp_path / "s.synthcxr.toml"
    spec_path.write_text(SPEC.split("[reader]")[0])
    with pytest.raises(SpecError, match=r'validity\[0\]: verdict = "reader" needs reader labels'):
        load_spec(spec_path)
    spec_path.write_text(SPEC.format(labels=(tmp_path / "missing.sqlite").as_posix()))
    with pytest.raises(SpecError, match="labels: .*missing.sqlite: no such file"):
        build_checks(load_spec(spec_path).spec)
    bad = tmp_path / "bad.csv"
    bad.write_text("who,what\n1,2\n")
    spec_path.write_text(SPEC.format(labels=bad.as_posix()))
    with pytest.raises(SpecError, match="bad.csv"):
        build_checks(load_spec(spec_path).spec)


BIAS_SPEC = """
seed = 0
findings = ["Effusion"]
sampling = "fixed"
[subgroups]
sex = ["female", "male"]
race = ["White", "Black", "Asian", "Hispanic"]
[[bias]]
metric = "tpr"
statistic = "gap"
max = 0.15
samples = 400
verdict = "reader"
[reader]
labels = "{labels}"
"""


@pytest.mark.parametrize("seed", [0, 1])
def test_a_judge_made_tpr_gap_disappears_under_reader_correction(tmp_path, seed):
    """The generator is fair (TPR 0.70 in every subgroup: true gap 0); the judge's planted misses
    on Hispanic women's images make a judge-only gap near 0.26 that fails max = 0.15. With 100
    reader-labelled images per subgroup the reader-corrected gap's interval covers 0."""
    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.checks.reader import ReaderBiasCheck
    from pytest_synthcxr.reader.store import COLUMNS
    from pytest_synthcxr.spec.schema import load_spec

    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text("reader\n")
    spec_path = tmp_path / "gap.synthcxr.toml"
    spec_path.write_text(BIAS_SPEC.format(labels=labels_csv.as_posix()))
    spec = load_spec(spec_path).spec
    cells = build_checks(spec.model_copy(update={"reader": None}))[0].cells()
    table, rows = world(seed, cells, labelled=100)
    with open(labels_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (check,) = build_checks(load_spec(spec_path).spec)
    assert isinstance(check, ReaderBiasCheck)
    result = check.evaluate(table, 0.95)
    print(
        f"seed {seed}: reader-corrected gap {result.estimate.value:.3f} [{result.estimate.low:.3f}, {result.estimate.high:.3f}] "
        f"({result.verdict}); judge alone {result.stats['judge_only']:.3f} [{result.stats['judge_only_low']:.3f}, {result.stats['judge_only_high']:.3f}]"
    )
    assert result.stats["judge_only_low"] > 0.15  # the judge alone fails a fair generator
    assert result.estimate.low == 0.0 <= result.estimate.high  # the readers' interval holds the true gap 0
    assert result.verdict != "fail"
    assert result.stats["reader_labelled"] == 8 * 100


def test_reader_verdict_on_a_bias_statistic_it_cannot_correct_is_one_line(tmp_path):
    from pytest_synthcxr.spec.schema import SpecError, load_spec

    spec_path = tmp_path / "r.synthcxr.toml"
    spec_path.write_text(BIAS_SPEC.format(labels="x.csv").replace('statistic = "gap"\nmax = 0.15', 'statistic = "ratio"\nmin = 0.8'))
    with pytest.raises(SpecError, match=r'bias\[0\]: verdict = "reader" applies to named-prompt gaps'):
        load_spec(spec_path)


def test_a_repeated_row_of_a_read_image_is_not_a_second_label():
    """The "more samples" note resamples rows: repeats of a read image count as judge calls only."""
    from pytest_synthcxr.checks.reader import rectify

    values = pd.DataFrame({"cell": ["c"] * 6, "i": range(6), "seed": [1, 2, 3, 4, 1, 1], "value": [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]})
    truth = {("c", 1): (1.0, "a"), ("c", 2): (0.0, "b")}
    out = rectify(values, truth, ["c"], 0.05, "classic")
    assert out.labelled == 2 and out.estimate.n == 6 and out.judge.n == 2


HALLUCINATION_SPEC = """
seed = 0
findings = ["Effusion"]
sampling = "fixed"
[subgroups]
sex = ["female", "male"]
race = ["White", "Hispanic"]
[[hallucination]]
max_rate = 0.15
samples = 300
verdict = "reader"
[reader]
labels = "{labels}"
lam = "{lam}"
"""


@pytest.mark.parametrize("lam", ["classic", "tuned"])
def test_a_judge_that_sees_covid_everywhere_is_corrected(tmp_path, lam):
    """8% of images truly show the probe; the judge also flags 25% of clean images of White men
    (5% elsewhere): judge alone about 0.16 and failing max 0.15, the reader-corrected rate covers
    0.08 and passes."""
    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.checks.reader import ReaderHallucinationCheck
    from pytest_synthcxr.reader.store import COLUMNS
    from pytest_synthcxr.spec.schema import load_spec

    labels_csv = tmp_path / "labels.csv"
    spec_path = tmp_path / "h.synthcxr.toml"
    spec_path.write_text(HALLUCINATION_SPEC.format(labels=labels_csv.as_posix(), lam=lam))
    labels_csv.write_text(",".join(COLUMNS) + "\n")
    (plain,) = build_checks(load_spec(spec_path).spec)
    rng = np.random.default_rng(5)
    frames, rows = [], []
    for cell in plain.cells():
        seeds = [derive_seed(0, cell.seed_key, i) for i in range(300)]
        truth = rng.random(300) < 0.08
        false_alarm = 0.25 if subgroup_label(cell.subgroup) == "White male" else 0.05
        called = np.where(truth, rng.random(300) < 0.9, rng.random(300) < false_alarm)
        a = cell.attributes
        frames.append(pd.DataFrame({"cell": cell.key, "finding": cell.finding or "", "sex": a["sex"], "race": a["race"], "age": "", "named": False,
                                    "i": np.arange(300), "seed": np.asarray(seeds, dtype=np.int64), "valid": True, "seeded": True,
                                    score_column("COVID-19"): np.where(called, 0.9, 0.1), score_column("Effusion"): 0.1}))
        for i in sorted(rng.choice(300, size=80, replace=False)):
            rows.append({"reader": "r1", "image_sha": f"{seeds[i]:064x}", "kind": "generated", "cell": cell.key, "seed": seeds[i], "prompt": "", "subgroup": "",
                         "finding": "", "task": "findings", "question": "COVID-19", "answer": "present" if truth[i] else "absent", "confidence": "", "time": 0})
    with open(labels_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (check,) = build_checks(load_spec(spec_path).spec)
    assert isinstance(check, ReaderHallucinationCheck) and check.reader_lam == lam
    result = check.evaluate(pd.concat(frames, ignore_index=True), 0.95)
    print(f"{lam}: reader-corrected {result.estimate.value:.3f} [{result.estimate.low:.3f}, {result.estimate.high:.3f}] ({result.verdict}); "
          f"judge alone {result.stats['judge_only']:.3f} [{result.stats['judge_only_low']:.3f}, {result.stats['judge_only_high']:.3f}]")
    assert result.stats["judge_only_low"] > 0.15 > result.estimate.high
    assert result.estimate.low <= 0.08 <= result.estimate.high and result.verdict == "pass"
