"""Reader-study statistics against their oracles (ppi_python, statsmodels, scipy) and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_synthcxr.stats.agreement import (
    clopper_pearson, cohens_kappa, confusion, fleiss_kappa, real_vs_synthetic, subgroup_flags,
)
from pytest_synthcxr.stats.ppi import ppi_mean, stratified


def _data(seed: int, n: int = 60, big_n: int = 900):
    rng = np.random.default_rng(seed)
    truth = rng.random(n + big_n) < 0.4
    judge = np.where(rng.random(n + big_n) < 0.25, ~truth, truth)  # 25% of calls wrong
    return truth[:n].astype(float), judge[:n].astype(float), judge[n:].astype(float)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lam", [1.0, 0.0, "tuned"])
def test_ppi_mean_matches_ppi_python(seed, lam):
    ppi_py = pytest.importorskip("ppi_py")
    y, f, u = _data(seed)
    mine = ppi_mean(y, f, u, alpha=0.1, lam=lam, bounds=None)
    low, high = ppi_py.ppi_mean_ci(y, f, u, alpha=0.1, lam=None if lam == "tuned" else lam)
    assert mine.low == pytest.approx(float(np.ravel(low)[0]), abs=1e-12)
    assert mine.high == pytest.approx(float(np.ravel(high)[0]), abs=1e-12)
    point = ppi_py.ppi_mean_pointestimate(y, f, u, lam=mine.lam)
    assert mine.value == pytest.approx(float(np.ravel(point)[0]), abs=1e-12)


def test_ppi_mean_by_hand():
    # labelled: Y = 1,1,0,0 ; f = 1,0,0,0 -> rectifier mean(Y - f) = 0.25 ; unlabelled mean 0.5
    est = ppi_mean([1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0], alpha=0.05, bounds=None)
    assert est.value == pytest.approx(0.75)
    var = 0.25 / 4 + np.var([0, 1, 0, 0]) / 4  # var(f_unl)/N + var(Y - f)/n, ddof 0
    assert est.variance == pytest.approx(var)
    assert est.high - est.value == pytest.approx(1.959964 * math.sqrt(var), rel=1e-5)
    clipped = ppi_mean([1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0])
    assert clipped.high == 1.0 and clipped.low == pytest.approx(est.low)


def test_stratified_ppi_weights_strata_and_widens_unlabelled_ones():
    y, f, u = _data(3)
    one = ppi_mean(y, f, u, bounds=None)
    same = stratified([(y, f, u)], bounds=(-10.0, 10.0))
    assert same.value == pytest.approx(one.value) and same.low == pytest.approx(one.low)
    # two equal strata: the value is the mean of the two, the variance a quarter of the sum
    y2, f2, u2 = _data(4)
    two = stratified([(y, f, u), (y2, f2, u2)], bounds=(-10.0, 10.0))
    other = ppi_mean(y2, f2, u2, bounds=None)
    assert two.value == pytest.approx((one.value + other.value) / 2)
    assert two.variance == pytest.approx((one.variance + other.variance) / 4)
    # a stratum without labels: worst case over [0, 1] for its weight, never a narrow interval
    blind = stratified([(y, f, u), (np.array([]), np.array([]), u2)])
    assert blind.high - blind.low >= 0.5 * 0.99 * (u2.size / (u2.size + y.size + u.size)) * 2 - 1e-9
    assert blind.low <= one.value * 0.5 + 1e-9


def test_clopper_pearson_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    for k, n in [(0, 10), (3, 10), (10, 10), (17, 40)]:
        low, high = proportion_confint(k, n, alpha=0.05, method="beta")
        assert clopper_pearson(k, n) == pytest.approx((low, high), abs=1e-10)


@pytest.mark.parametrize("table", [[[20, 5], [10, 15]], [[30, 2, 1], [3, 25, 4], [0, 6, 29]], [[45, 5], [2, 1]]])
def test_cohens_kappa_matches_statsmodels(table):
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    ref = sm_kappa(np.asarray(table), return_results=True)
    mine = cohens_kappa(table, alpha=0.05)
    if math.isnan(mine.value):
        return
    assert mine.value == pytest.approx(ref.kappa, abs=1e-12)
    assert (mine.value - mine.low) / 1.959964 == pytest.approx(ref.std_kappa, rel=1e-5)


def test_cohens_kappa_by_hand():
    # po = 0.7, pe = 0.5*0.6 + 0.5*0.4 = 0.5 -> kappa 0.4
    assert cohens_kappa([[20, 5], [10, 15]]).value == pytest.approx(0.4)


def test_fleiss_kappa_matches_statsmodels():
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    table = np.array([[3, 0], [2, 1], [0, 3], [1, 2], [3, 0], [0, 3]])
    assert fleiss_kappa(table) == pytest.approx(sm_fleiss(table), abs=1e-12)
    with pytest.raises(ValueError):
        fleiss_kappa([[2, 0], [1, 2]])


def test_confusion_and_flags():
    c = confusion([1, 1, 0, 0, 1], [1, 0, 1, 0, 1])
    assert (c.tp, c.fn, c.tn, c.fp) == (2, 1, 1, 1)
    from pytest_synthcxr.stats.agreement import Confusion

    fair = Confusion(tp=90, fn=10, tn=90, fp=10)
    missed = Confusion(tp=40, fn=60, tn=90, fp=10)
    flags = subgroup_flags({"White female": fair, "Hispanic female": missed, "Asian female": fair})
    assert set(flags) == {"Hispanic female"} and flags["Hispanic female"][0] > 0
    assert subgroup_flags({"a": fair, "b": Confusion(tp=88, fn=12, tn=90, fp=10)}) == {}


def test_real_vs_synthetic_by_hand():
    # a reader who is always right and always sure: AUROC 1, accuracy 1
    truth = np.array([True] * 10 + [False] * 10)
    perfect = real_vs_synthetic(truth, truth, [5] * 20)
    assert perfect.auroc.value == 1.0 and perfect.accuracy.value == 1.0 and perfect.auroc.low < 1.0
    # a coin: answers independent of the truth -> AUROC interval holds 0.5
    rng = np.random.default_rng(0)
    truth = rng.random(200) < 0.5
    coin = real_vs_synthetic(truth, rng.random(200) < 0.5, rng.integers(1, 6, 200))
    assert coin.auroc.low < 0.5 < coin.auroc.high and coin.accuracy.low < 0.5 < coin.accuracy.high
    # by hand: 2 synthetic (scores +3, -1), 2 real (scores -2, +1): pairs won 3 of 4 -> 0.75
    hand = real_vs_synthetic([1, 1, 0, 0], [1, 0, 0, 1], [3, 1, 2, 1])
    assert hand.auroc.value == pytest.approx(0.75) and hand.accuracy.value == pytest.approx(0.5)


def test_a_stratum_read_in_full_is_the_readers_mean():
    y = np.array([1.0, 0.0, 1.0, 1.0])
    est = stratified([(y, np.ones(4), np.array([]))], bounds=(-10.0, 10.0))
    assert est.value == pytest.approx(0.75) and est.variance == pytest.approx(np.var(y) / 4)


def test_stratified_ppi_holds_its_level_where_the_judge_alone_does_not():
    """400 simulated studies (8 cells of 300 images, 40 read per cell; the judge misses 40% of
    positives in two cells, 10% elsewhere): the 95% PPI interval covers the true rate in at least
    93% of studies; the judge-only Wilson interval almost never does."""
    from pytest_synthcxr.stats.intervals import wilson

    rng = np.random.default_rng(11)
    rates = np.array([0.2, 0.3, 0.4, 0.5, 0.2, 0.3, 0.4, 0.5])
    miss = np.array([0.1, 0.1, 0.4, 0.1, 0.1, 0.4, 0.1, 0.1])
    truth_rate = float(rates.mean())
    ppi_hits = judge_hits = 0
    runs = 400
    for _ in range(runs):
        strata, calls_all = [], []
        for p, m in zip(rates, miss):
            truth = rng.random(300) < p
            calls = np.where(truth, rng.random(300) >= m, rng.random(300) < 0.05).astype(float)
            read = rng.choice(300, size=40, replace=False)
            mask = np.zeros(300, dtype=bool)
            mask[read] = True
            strata.append((truth[mask].astype(float), calls[mask], calls[~mask]))
            calls_all.append(calls)
        est = stratified(strata, 0.05)
        ppi_hits += est.low <= truth_rate <= est.high
        judged = np.concatenate(calls_all)
        low, high = wilson(int(judged.sum()), judged.size, 0.05)
        judge_hits += low <= truth_rate <= high
    assert ppi_hits / runs >= 0.93, ppi_hits / runs
    assert judge_hits / runs <= 0.2, judge_hits / runs
