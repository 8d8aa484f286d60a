"""Paired subgroup statistics (issue 17): the empirical-Bernstein confidence sequence against the
`ville` reference implementation, hand-computed paired statistics, coverage under optional
stopping, the phantom's same-seed coupling, and the bias check choosing paired or unpaired."""

import math

import numpy as np
import pandas as pd
import pytest

from pytest_synthcxr.checks.bias import BiasCheck
from pytest_synthcxr.models.generators.phantom import PRESET_COUPLING, PRESETS, PhantomFaults, PhantomGenerator
from pytest_synthcxr.sampling.cells import Cell, derive_seed
from pytest_synthcxr.sampling.pool import score_column
from pytest_synthcxr.stats.confseq import empirical_bernstein_cs
from pytest_synthcxr.stats.paired import newcombe_paired, paired_table
from pytest_synthcxr.stats.paired_groups import (
    discordance,
    paired_difference,
    paired_gap,
    paired_largest_difference,
    paired_relative_deviation,
)

ville_means = pytest.importorskip("ville.means")


@pytest.mark.parametrize("n,disagree,alpha", [(1, 0.3, 0.05), (25, 0.3, 0.05), (400, 0.1, 0.01), (3000, 0.5, 0.002)])
def test_empirical_bernstein_matches_ville(n, disagree, alpha):
    rng = np.random.default_rng(n)
    d = rng.choice([-1, 0, 1], size=n, p=[disagree / 2, 1 - disagree, disagree / 2])
    reference = ville_means.EmpiricalBernsteinCS(bounds=(-1, 1), alpha=alpha).fit(d).interval()
    assert empirical_bernstein_cs(d, alpha, (-1.0, 1.0)) == pytest.approx(reference, abs=1e-12)


def test_empirical_bernstein_edges():
    assert empirical_bernstein_cs([], 0.05, (-1.0, 1.0)) == (-1.0, 1.0)
    with pytest.raises(ValueError, match="must lie in"):
        empirical_bernstein_cs([0.5, 2.0], 0.05)
    low, high = empirical_bernstein_cs(np.zeros(5000), 0.05, (-1.0, 1.0))  # every pair agrees
    assert -0.01 < low <= 0.0 <= high < 0.01


def test_paired_difference_fixed_is_newcombe_and_drops_invalid_pairs():
    a = np.array([1, 1, 0, 1, 0, 1, np.nan, 1, 0, 1], dtype=float)
    b = np.array([1, 0, 0, 1, 0, 0, 1, 1, np.nan, 1], dtype=float)
    got = paired_difference(a, b, 0.05, "fixed")
    keep = np.isfinite(a) & np.isfinite(b)
    x, y = a[keep].astype(bool), b[keep].astype(bool)
    assert got.n == 8
    assert got.value == pytest.approx(x.mean() - y.mean())  # 6/8 - 4/8
    assert (got.low, got.high) == pytest.approx(newcombe_paired(paired_table(x, y), 0.05))
    any_ = paired_difference(a, b, 0.05, "anytime")
    assert (any_.low, any_.high) == pytest.approx(empirical_bernstein_cs(x.astype(float) - y, 0.05, (-1, 1)))
    assert discordance(a, b) == pytest.approx(2 / 8)


def test_gap_and_deviation_by_hand():
    # three subgroups of 6 paired samples: rates 4/6, 3/6, 1/6
    g = [np.array(v, dtype=float) for v in ([1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0])]
    gap = paired_gap(g, 0.05, "fixed")
    assert gap.value == pytest.approx(3 / 6)
    # its interval: the largest |difference| over the 3 pairs, each Newcombe at alpha / 3
    parts = [paired_difference(g[i], g[j], 0.05 / 3, "fixed") for i, j in ((0, 1), (0, 2), (1, 2))]
    assert gap.high == pytest.approx(max(max(abs(p.low), abs(p.high)) for p in parts))
    expected_low = max(0.0 if p.low <= 0 <= p.high else min(abs(p.low), abs(p.high)) for p in parts)
    assert gap.low == pytest.approx(expected_low)
    largest, worst = paired_largest_difference([(g[1], g[0]), (g[2], g[0])], 0.05, "fixed")
    assert (largest.value, worst) == (pytest.approx(0.5), 1)
    rel, worst = paired_relative_deviation(g, 0, 0.05, "fixed")
    assert rel.value == pytest.approx(abs((1 / 6) / (4 / 6) - 1)) and worst == 2
    assert rel.low <= rel.value <= rel.high


def _correlated_pairs(rng, n, p1, p2, coupling):
    """0/1 outcomes of two subgroups on the same seeds: with probability `coupling` both come from
    one uniform (comonotone), else from two (independent), as the phantom couples them."""
    shared = rng.random(n) < coupling
    u1 = rng.random(n)
    u2 = np.where(shared, u1, rng.random(n))
    return (u1 < p1).astype(float), (u2 < p2).astype(float)


@pytest.mark.parametrize("coupling", [0.0, 0.5, 1.0])
def test_anytime_paired_interval_covers_under_optional_stopping(coupling):
    """Looked at after every 50 pairs up to 1,000, the confidence sequence holds the true
    difference at every look in at least 1 - alpha of the runs (150 runs; alpha 0.1)."""
    rng = np.random.default_rng(int(coupling * 10) + 3)
    p1, p2, alpha, misses = 0.55, 0.45, 0.1, 0
    for _ in range(150):
        a, b = _correlated_pairs(rng, 1000, p1, p2, coupling)
        for n in range(50, 1001, 50):
            est = paired_difference(a[:n], b[:n], alpha, "anytime")
            if not est.low <= p1 - p2 <= est.high:
                misses += 1
                break
    assert misses / 150 <= alpha + 0.05  # binomial slack for 150 runs


def test_pairing_narrows_the_interval_when_the_pair_agrees_and_costs_little_when_not():
    from pytest_synthcxr.stats.intervals import largest_difference

    rng = np.random.default_rng(5)
    widths = {}
    for coupling in (0.0, 0.5, 1.0):
        a, b = _correlated_pairs(rng, 2000, 0.6, 0.6, coupling)
        paired = paired_difference(a, b, 0.05, "anytime")
        unpaired, _ = largest_difference([(int(a.sum()), 2000, int(b.sum()), 2000)], 0.05, "anytime")
        widths[coupling] = (paired.high - paired.low, 2 * unpaired.high)  # |d| interval: width of d is 2 x its upper end near 0
    assert widths[1.0][0] < 0.3 * widths[1.0][1]
    assert widths[0.5][0] < 0.8 * widths[0.5][1]
    assert widths[0.0][0] < 1.25 * widths[0.0][1]  # nothing to gain at zero coupling, and little lost


# ---------------------------------------------------------------------------- phantom coupling


@pytest.mark.parametrize("coupling", [0.0, 0.5, 1.0])
def test_phantom_coupling_is_the_share_of_same_seed_pairs_that_share_their_draws(coupling):
    """Agreement of two subgroups' omissions on the same seed is c (1 - |p1 - p2|) + (1 - c)
    (p1 p2 + q1 q2): the stated coupling, not an artefact."""
    faults = PhantomFaults(omission_named={"female/White": 0.3, "female/Hispanic": 0.6}, coupling=coupling)
    gen = PhantomGenerator("custom", faults=faults)
    a = Cell("Effusion", (("sex", "female"), ("race", "White")), True, paired=True)
    b = Cell("Effusion", (("sex", "female"), ("race", "Hispanic")), True, paired=True)
    n, agree = 3000, 0
    for i in range(n):
        seed = derive_seed(1, a.seed_key, i)
        assert seed == derive_seed(1, b.seed_key, i)  # paired cells share the seed
        agree += ("Effusion" in gen.plan(a.prompt, seed)[1].omitted) == ("Effusion" in gen.plan(b.prompt, seed)[1].omitted)
    expected = coupling * (1 - 0.3) + (1 - coupling) * (0.3 * 0.6 + 0.7 * 0.4)
    assert abs(agree / n - expected) < 4 * math.sqrt(expected * (1 - expected) / n)


def test_presets_state_their_coupling_and_the_faithful_phantom_keeps_its_counterfactual_pairs():
    assert PRESETS["phantom"].coupling == 1.0
    assert PRESETS["phantom-fair"].coupling == PRESETS["phantom-biased"].coupling == PRESET_COUPLING
    gen = PhantomGenerator("phantom")
    img_w = gen.draw("White female. Pleural effusion.", 7)[0]
    img_h = gen.draw("Hispanic female. Pleural effusion.", 7)[0]
    assert np.array_equal(img_w, img_h)  # coupling 1: race words change nothing the phantom draws


def test_biased_preset_shares_the_fair_imperfection_for_plain_prompts():
    fair, biased = PRESETS["phantom-fair"], PRESETS["phantom-biased"]
    assert biased.omission == fair.omission
    assert dict(biased.omission_drawn_sex) == {"female": 0.7}


# ---------------------------------------------------------------------------- the check


GROUPS = ((("sex", "female"),), (("sex", "male"),))


def _table(rates, n, *, shared_seeds=True, rng=None):
    """A score table of two named paired cells (female, male) for Effusion."""
    rng = rng or np.random.default_rng(0)
    frames = []
    u = rng.random(n)
    for g, rate in zip(GROUPS, rates):
        cell = Cell("Effusion", g, True, paired=True)
        seeds = np.arange(n) if shared_seeds else np.arange(n) + 10_000 * (g[0][1] == "male")
        frames.append(pd.DataFrame({
            "cell": cell.key, "i": np.arange(n), "seed": seeds, "valid": True, "seeded": True,
            score_column("Effusion"): np.where(u < rate, 0.9, 0.1),
        }))
    return pd.concat(frames, ignore_index=True)


def test_check_pairs_on_shared_seeds_and_says_so_else_falls_back():
    check = BiasCheck(name="g", samples=500, threshold=0.1, direction="max", statistic="gap", finding="Effusion",
                      subgroups=GROUPS, reference=GROUPS[0], named=True)
    paired = check.measure(_table((0.6, 0.62), 500), 0.05, "anytime")
    assert paired.stats["paired"] == 1.0 and "paired: 500 same-seed" in paired.detail
    unpaired = check.measure(_table((0.6, 0.62), 500, shared_seeds=False), 0.05, "anytime")
    assert unpaired.stats["paired"] == 0.0 and "unpaired" in unpaired.detail
    # the same outcomes: pairing gives the narrower interval (they agree on 98% of seeds)
    assert paired.estimate.high < unpaired.estimate.high
    assert paired.estimate.value == pytest.approx(unpaired.estimate.value)


def test_a_pooled_rate_streams_per_sample_index_not_cell_after_cell():
    """A selection rate pools cells with different rates (asked for the finding: ~0.6; normal
    studies: ~0.03). The confidence sequence runs over sample indices, each the mean over its
    cells; a stream running through one cell and then the next would move its mean on the way,
    and its running intersection then missed the true difference in about half of the runs."""
    rng = np.random.default_rng(11)
    p_w, p_h, n, runs, misses = (0.64, 0.03), (0.45, 0.03), 400, 100, 0
    truth = np.mean(p_h) - np.mean(p_w)
    for _ in range(runs):
        w, h = zip(*(_correlated_pairs(rng, n, pw, ph, 0.5) for pw, ph in zip(p_w, p_h)))
        est = paired_difference(np.column_stack(h), np.column_stack(w), 0.05, "anytime")
        misses += not est.low <= truth <= est.high
        assert est.value == pytest.approx(np.mean(np.column_stack(h)) - np.mean(np.column_stack(w)))
    assert misses / runs <= 0.1
