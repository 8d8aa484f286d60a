"""Statistics against hand-computed values and the library functions they wrap."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from pytest_synthcxr import stats
from pytest_synthcxr.stats.intervals import Estimate


def test_wilson_hand_computed():
    # 8/10, z = 1.959964: centre (8 + z^2/2) / (10 + z^2) = 0.71674, half-width 0.22657
    low, high = stats.wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_extremes_stay_in_unit_interval():
    assert stats.wilson(0, 20)[0] == 0.0
    assert stats.wilson(20, 20)[1] == 1.0
    assert stats.wilson(0, 0) == (0.0, 1.0)


def test_newcombe_matches_newcombe_1998_example():
    # Newcombe (1998), Stat Med 17:873, method 10: 56/70 - 48/80 = 0.2, CI 0.0524 to 0.3339
    low, high = stats.newcombe(56, 70, 48, 80)
    assert low == pytest.approx(0.0524, abs=1e-4)
    assert high == pytest.approx(0.3339, abs=1e-4)


def test_gap_uses_bonferroni_box():
    counts, nobs = [30, 45, 40], [50, 50, 50]
    est = stats.gap(counts, nobs, alpha=0.05)
    box = [stats.wilson(c, n, 0.05 / 3) for c, n in zip(counts, nobs)]
    assert est.value == pytest.approx(0.9 - 0.6)
    assert est.low == pytest.approx(max(0.0, box[1][0] - box[0][1]))
    assert est.high == pytest.approx(box[1][1] - box[0][0])
    assert est.n == 150


def test_ratio_range_over_box():
    counts, nobs = [20, 80], [100, 100]
    est = stats.ratio(counts, nobs)
    (l0, h0), (l1, h1) = [stats.wilson(c, n, 0.025) for c, n in zip(counts, nobs)]
    assert est.value == pytest.approx(0.25)
    assert est.low == pytest.approx(l0 / h1)
    assert est.high == pytest.approx(h0 / l1)
    # overlapping intervals: parity cannot be excluded
    assert stats.ratio([50, 52], [100, 100]).high == 1.0


def test_largest_difference_picks_worst_pair_with_adjusted_newcombe():
    pairs = [(50, 100, 52, 100), (30, 100, 60, 100)]
    est, worst = stats.largest_difference(pairs)
    assert worst == 1
    assert est.value == pytest.approx(0.3)
    lo, hi = stats.newcombe(30, 100, 60, 100, 0.025)
    assert est.high == pytest.approx(max(abs(lo), abs(hi)))
    assert est.low == pytest.approx(min(abs(lo), abs(hi)))


def test_mean_bounded_is_student_t():
    x = np.array([0.1, 0.2, 0.4, 0.3, 0.25])
    est = stats.mean_bounded(x)
    half = sps.t.ppf(0.975, 4) * x.std(ddof=1) / math.sqrt(5)
    assert est.value == pytest.approx(0.25)
    assert (est.low, est.high) == pytest.approx((0.25 - half, 0.25 + half))
    assert stats.mean_bounded([0.0, 0.0, 0.0]) == Estimate(0.0, 0.0, 0.0, 3)


def test_binary_entropy_bits():
    h = stats.binary_entropy(np.array([0.0, 0.5, 1.0, 0.11]))
    assert h[:3] == pytest.approx([0.0, 1.0, 0.0])
    assert h[3] == pytest.approx(0.4999, abs=1e-3)


def test_auroc_hand_computed_and_interval():
    # pairs: 0.9>0.5, 0.9>0.3, 0.8>0.5, 0.8>0.3, 0.4<0.5, 0.4>0.3 -> 5 of 6
    est = stats.auroc([0.9, 0.8, 0.4], [0.5, 0.3])
    assert est.value == pytest.approx(5 / 6)
    assert est.low < 5 / 6 < est.high
    # Newcombe's score interval (method 5): both bounds solve (A - t)^2 = z^2 V(t), where V is
    # Hanley-McNeil's variance at t with N* = (3 + 2) / 2 in place of n1 and n0
    a, z = 5 / 6, 1.959963984540054

    def v(t):
        return t * (1 - t) / 6 * (1 + 1.5 * ((1 - t) / (2 - t) + t / (1 + t)))

    for bound in (est.low, est.high):
        assert (a - bound) ** 2 == pytest.approx(z * z * v(bound), abs=1e-9)
    assert stats.auroc([1, 2, 3], [0, -1]).value == 1.0


def test_auroc_interval_keeps_its_width_at_one():
    # 20 + 20 perfectly separated: the bound solves 1 - t = z^2 t (1 + 19 (1 - t) / (2 - t) + 19 t / (1 + t)) / 400
    est = stats.auroc(np.arange(20) + 100.0, np.arange(20.0))
    assert est.value == 1.0 and est.high == 1.0
    t, z = est.low, 1.959963984540054
    assert 1 - t == pytest.approx(z * z * t * (1 + 19 * ((1 - t) / (2 - t) + t / (1 + t))) / 400, abs=1e-9)
    assert 0.85 < est.low < 0.95  # not the Hanley-McNeil [1, 1]


@pytest.mark.parametrize(
    "low, high, threshold, direction, outcome",
    [
        (0.01, 0.04, 0.05, "max", "pass"),
        (0.06, 0.09, 0.05, "max", "fail"),
        (0.03, 0.07, 0.05, "max", "inconclusive"),
        (0.91, 0.97, 0.90, "min", "pass"),
        (0.70, 0.85, 0.90, "min", "fail"),
        (0.85, 0.95, 0.90, "min", "inconclusive"),
    ],
)
def test_verdicts(low, high, threshold, direction, outcome):
    assert stats.verdict(Estimate((low + high) / 2, low, high, 10), threshold, direction) == outcome


def test_gap_interval_covers_true_gap():
    """Known-answer simulation: the simultaneous gap interval covers the true gap >= 95% of runs."""
    rng = np.random.default_rng(7)
    p = np.array([0.44, 0.56, 0.64, 0.70])
    n = np.array([200, 200, 200, 200])
    truth = p.max() - p.min()
    covered = 0
    runs = 300
    for _ in range(runs):
        counts = rng.binomial(n, p)
        est = stats.gap(list(counts), list(n))
        covered += est.low <= truth <= est.high
    assert covered / runs >= 0.95


# ----------------------------------------------------------------------------- judge error


def test_rogan_gladen_point_hand_computed():
    # (0.42 + 0.95 - 1) / (0.90 + 0.95 - 1) = 0.37 / 0.85
    assert stats.rogan_gladen(0.42, 0.90, 0.95) == pytest.approx(0.435294, abs=1e-6)
    assert stats.rogan_gladen(0.02, 0.90, 0.95) == 0.0  # below the false-positive floor: clipped
    assert stats.rogan_gladen(0.99, 0.90, 0.95) == 1.0
    assert math.isnan(stats.rogan_gladen(0.3, 0.5, 0.5))  # a coin-flip judge says nothing


def test_corrected_proportion_hand_computed_box():
    # 42 of 100 flagged; judge 90/100 sensitive, 95/100 specific. Each interval at alpha / 3
    # (z = 2.39398): Wilson p_obs [0.309345, 0.539328], se [0.805184, 0.951452], sp [0.869308, 0.981908].
    # Lowest corner (p low, se high, sp low): (0.309345 + 0.869308 - 1) / (0.951452 + 0.869308 - 1) = 0.217667
    # highest (p high, se low, sp high): (0.539328 + 0.981908 - 1) / (0.805184 + 0.981908 - 1) = 0.662230
    judge = stats.JudgeAccuracy(tp=90, fn=10, tn=95, fp=5)
    assert (judge.sensitivity, judge.specificity) == (0.9, 0.95)
    e = stats.corrected_proportion(42, 100, judge, alpha=0.05)
    assert e.value == pytest.approx(0.435294, abs=1e-6) and e.n == 100
    assert e.low == pytest.approx(0.217667, abs=1e-5)
    assert e.high == pytest.approx(0.662230, abs=1e-5)
    # the judge's uncertainty widens the interval beyond the raw share's own
    raw_low, raw_high = stats.wilson(42, 100)
    assert e.high - e.low > raw_high - raw_low


def test_corrected_proportion_uninformative_judge_gives_the_unit_interval():
    # se 6/10, sp 6/10: the box reaches se + sp <= 1
    e = stats.corrected_proportion(30, 100, stats.JudgeAccuracy(6, 4, 6, 4))
    assert (e.low, e.high) == (0.0, 1.0)


def test_corrected_proportion_anytime_is_wider_and_covers():
    judge = stats.JudgeAccuracy(tp=180, fn=20, tn=190, fp=10)
    fixed = stats.corrected_proportion(40, 200, judge)
    anytime = stats.corrected_proportion(40, 200, judge, interval="anytime", center=0.1)
    assert anytime.low <= fixed.low and anytime.high >= fixed.high


def test_corrected_proportion_coverage_simulated():
    """True rate 0.3, judge se 0.85 / sp 0.9 estimated from 150 + 150 validation images each run:
    the corrected interval covers 0.3 in at least 95% of 600 runs (Bonferroni box: conservative)."""
    rng = np.random.default_rng(5)
    truth, se, sp, n = 0.3, 0.85, 0.9, 300
    covered = 0
    for _ in range(600):
        flagged = rng.binomial(n, truth * se + (1 - truth) * (1 - sp))
        tp, tn = rng.binomial(150, se), rng.binomial(150, sp)
        e = stats.corrected_proportion(int(flagged), n, stats.JudgeAccuracy(int(tp), 150 - int(tp), int(tn), 150 - int(tn)))
        covered += e.low <= truth <= e.high
    assert covered / 600 >= 0.95
