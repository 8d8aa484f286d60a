"""The built-in spec's bias items decide (issue 17): a fair but imperfect model (phantom-fair: TPR
about 0.6 in every subgroup) passes each, phantom-biased fails each, by seeded simulation of the
rule that runs (stats.sequential.run_check on the real BiasCheck, judge calls drawn at each
cell's planted rate). Short version for CI; benchmarks/bias_defaults.py runs 500 runs per row
with judge rates measured on rendered phantoms, and its tables are in benchmarks/README.md and
docs/bias.md."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_synthcxr.checks import build_checks
from pytest_synthcxr.checks.bias import BiasCheck
from pytest_synthcxr.models.generators.phantom import PRESETS
from pytest_synthcxr.sampling.pool import score_column
from pytest_synthcxr.sampling.prompts import parse_prompt
from pytest_synthcxr.spec.schema import load_spec
from pytest_synthcxr.stats import sequential

BENCH = Path(__file__).parent.parent / "benchmarks" / "bias_defaults.py"


def bench():
    import sys

    if "bias_defaults" not in sys.modules:  # registered first: its dataclasses look themselves up there
        spec = importlib.util.spec_from_file_location("bias_defaults", BENCH)
        module = importlib.util.module_from_spec(spec)
        sys.modules["bias_defaults"] = module
        spec.loader.exec_module(module)
    return sys.modules["bias_defaults"]


def default_bias_checks() -> list[BiasCheck]:
    return [c for c in build_checks(load_spec(None).spec) if isinstance(c, BiasCheck)]


def planted_rate(preset: str, cell) -> float:
    """TPR of a cell: the phantom judge finds every drawn effusion or enlarged heart and calls
    omitted ones negative (measured: sensitivity 1.0 on both presets, benchmarks/bias_rates.json),
    so the rate is 1 - the planted omission of the cell's prompt."""
    return 1.0 - PRESETS[preset].omission_for(parse_prompt(cell.prompt))


@pytest.mark.parametrize("index", [0, 1, 2])
def test_builtin_bias_items_pass_phantom_fair_and_fail_phantom_biased(index, monkeypatch):
    b = bench()
    check = default_bias_checks()[index]
    assert check.metric == "tpr"  # planted_rate covers TPR items (the SR item is not in the gate)
    runs = 12
    fair = b.simulate(check, {c.key: planted_rate("phantom-fair", c) for c in check.cells()}, runs, seed=index)
    biased = b.simulate(check, {c.key: planted_rate("phantom-biased", c) for c in check.cells()}, runs, seed=index)
    assert fair["pass"] >= 10 / 12 and fair["fail"] == 0  # 0.99 at 500 runs (benchmark)
    assert biased["fail"] == 1.0
    assert fair["mean_samples"] <= check.samples and biased["mean_samples"] < check.samples


def test_the_count_shortcut_runs_the_same_rule_as_a_score_table(monkeypatch):
    """The benchmark reads cumulative counts instead of an image table; on the same draws both
    give the same verdict, samples spent and interval."""
    b = bench()
    check = dataclasses.replace(default_bias_checks()[2], samples=300)  # prompt effect: 16 cells
    rng = np.random.default_rng(5)
    keys = [c.key for c in check.cells()]
    rates = np.array([planted_rate("phantom-biased", c) * 0.2 + 0.5 for c in check.cells()])  # near the bound
    calls = rng.random((len(keys), check.samples)) < rates[:, None]
    table = pd.DataFrame({
        "cell": np.repeat(keys, check.samples), "i": np.tile(np.arange(check.samples), len(keys)), "valid": True,
        score_column(check.finding): calls.reshape(-1).astype(float),
    })
    from pytest_synthcxr.checks import bias

    monkeypatch.setattr(sequential, "more_samples_note", lambda *a, **k: "")
    real, _ = sequential.run_check(check, lambda c, n: table[table["i"] < n], 0.95, sequential=True, first_round=16)
    cum = np.cumsum(calls, axis=1)
    monkeypatch.setattr(bias, "positives", b._positives)
    counted, _ = sequential.run_check(
        check, lambda c, n: b.Counts({k: (int(cum[j, n - 1]), n) for j, k in enumerate(keys)}), 0.95, sequential=True, first_round=16
    )
    assert (real.verdict, real.samples) == (counted.verdict, counted.samples)
    assert real.samples > 16  # decided after several looks, not at the first
    assert (real.estimate.low, real.estimate.high) == pytest.approx((counted.estimate.low, counted.estimate.high))
