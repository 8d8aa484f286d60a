"""The built-in spec's bias items decide (issue 17): a fair but imperfect model (phantom-fair: TPR
about 0.6 in every subgroup) passes each, phantom-biased fails each, by seeded simulation of the
rule that runs (stats.sequential.run_check on the real BiasCheck, on score tables drawn with the
phantom's same-seed coupling 0.5); and pairing subgroups on shared seeds spends fewer images than
giving each its own seeds. Short version for CI; benchmarks/bias_defaults.py runs 200 runs per row
and its tables are in benchmarks/README.md ("Paired bias items (issue 17)")."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench_support import load_benchmark
from pytest_synthcxr.checks.bias import BiasCheck
from pytest_synthcxr.models.generators.phantom import PRESET_COUPLING



def bench():
    return load_benchmark("bias_defaults")


def default_bias_checks() -> list[BiasCheck]:
    return bench().bias_checks()


def rates_of(preset: str, check: BiasCheck) -> dict[str, tuple[float, float]]:
    b = bench()
    return b.cell_rates_by_sex(preset, check, b.load_rates()[preset])  # measured judge rates (bias_rates.json)


def test_the_builtin_bias_items_are_the_expected_ones():
    names = [c.nodename for c in default_bias_checks()]
    assert names == [
        "bias[tpr-gap-Effusion-sex*race-named]",
        "bias[tpr-gap-Cardiomegaly-sex*race-named]",
        "bias[tpr-prompt-effect-Effusion-sex*race]",
        "bias[tpr-gap-Effusion-sex-perceived]",
    ]


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_builtin_bias_items_pass_phantom_fair_and_fail_phantom_biased(index):
    b = bench()
    check = default_bias_checks()[index]
    items = len(b.all_checks())
    runs = 6
    fair = b.simulate(check, rates_of("phantom-fair", check), runs, seed=index, coupling=PRESET_COUPLING, items=items)
    biased = b.simulate(check, rates_of("phantom-biased", check), runs, seed=index, coupling=PRESET_COUPLING, items=items)
    assert fair["pass"] >= 5 / 6 and fair["fail"] == 0  # >= 0.95 at 200 runs (benchmark)
    assert biased["fail"] >= 5 / 6 and biased["pass"] == 0
    assert b.truth(check, rates_of("phantom-fair", check)) < check.threshold < b.truth(check, rates_of("phantom-biased", check))


def test_the_drawn_tables_take_the_paired_path_only_when_seeds_are_shared():
    b = bench()
    check = dataclasses.replace(default_bias_checks()[0], samples=200)
    rates = rates_of("phantom-biased", check)
    paired = b.draw_table(check, rates, 200, np.random.default_rng(0), 1.0, paired=True)
    unpaired = b.draw_table(check, rates, 200, np.random.default_rng(0), 1.0, paired=False)
    assert check.measure(paired, 0.05).stats["paired"] == 1.0
    assert check.measure(unpaired, 0.05).stats["paired"] == 0.0
    # coupling 1: every subgroup's outcome at one seed is u < its rate on one shared u, so a
    # subgroup with a higher rate is positive wherever a lower one is
    calls = paired.pivot(index="i", columns="cell", values="p:Effusion")
    lo, hi = min(rates, key=lambda k: rates[k][0]), max(rates, key=lambda k: rates[k][0])
    assert (calls[hi] >= calls[lo]).all() and (calls[hi] > calls[lo]).any()


def test_pairing_spends_fewer_images_than_unpaired_at_the_presets_coupling():
    b = bench()
    check = dataclasses.replace(default_bias_checks()[0], samples=2000)  # unpaired needs ~1600 per cell
    rates = rates_of("phantom-fair", check)
    paired = b.simulate(check, rates, 4, seed=3, coupling=PRESET_COUPLING, paired=True)
    unpaired = b.simulate(check, rates, 4, seed=3, coupling=PRESET_COUPLING, paired=False)
    assert paired["pass"] == unpaired["pass"] == 1.0
    assert paired["mean_images"] < 0.75 * unpaired["mean_images"]  # 0.40 at 50 runs (benchmark)
