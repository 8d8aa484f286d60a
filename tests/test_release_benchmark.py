"""Candidate vs released model (issue 18), short seeded version of benchmarks/release_vs_release.py
(its tables are in benchmarks/README.md, "Candidate vs released model (issue 18)").

A candidate whose Effusion sensitivity truly regressed by 0.03 (0.57 against 0.60; the margin is
0.02, so a pass is a false pass): the paired comparison item (CompareCheck on both models' images,
same seeds, coupling 0.5) passes it at most alpha + slack of the time, while the JSON-baseline
design passes it most of the time when the released estimate it saved was lucky (0.57: the
released model's own sequential audit stops at about 40 images per cell, 320 in all, where 0.57 is
about 1.1 standard errors below its truth 0.60)."""

from __future__ import annotations


import numpy as np

from bench_support import load_benchmark
from pytest_synthcxr.stats import sequential

RUNS = 20
ALPHA_SLACK = 0.05 + 0.05


def bench():
    return load_benchmark("release_vs_release")


def test_paired_false_pass_is_bounded_and_below_the_lucky_json_baseline():
    b = bench()
    cells, budget, regression = b.population(8), 1000, 0.03
    check = b.CompareCheck.of(b.inner_check(cells, budget))
    rng = np.random.default_rng(1818)
    paired = [b.paired_run(check, cells, budget, regression, 0.5, rng).verdict for _ in range(RUNS)]
    lucky = b.RATE - 0.03
    json = []
    for _ in range(RUNS):
        candidate = rng.random((len(cells), budget)) < b.RATE - regression
        result, threshold = b.json_run(cells, budget, lucky, candidate)
        assert threshold == round(lucky - b.MARGIN, 6)  # resolve_relative: released estimate - margin
        json.append(result.verdict)
    paired_pass, json_pass = paired.count("pass") / RUNS, json.count("pass") / RUNS
    assert paired_pass <= ALPHA_SLACK, paired
    assert json_pass >= 0.5, json
    assert paired_pass < json_pass
    assert sequential.more_samples_note is not b._no_note  # the benchmark's stub never leaks


def test_paired_passes_no_regression_at_high_coupling_and_fails_a_large_one():
    b = bench()
    cells, budget = b.population(8), 2000
    check = b.CompareCheck.of(b.inner_check(cells, budget))
    rng = np.random.default_rng(18)
    same = [b.paired_run(check, cells, budget, 0.0, 0.9, rng).verdict for _ in range(8)]
    worse = [b.paired_run(check, cells, budget, 0.08, 0.9, rng).verdict for _ in range(8)]
    assert same.count("pass") >= 7, same
    assert worse.count("fail") >= 7, worse
