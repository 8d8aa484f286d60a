"""Paired same-seed comparisons against hand-computed values."""

import math

import numpy as np
import pytest

from pytest_synthcxr.stats.paired import PairedTable, compare_decisions, mcnemar_test, newcombe_paired, paired_mean_difference, paired_table

Z = 1.959963984540054  # normal 0.975 quantile


def wilson_by_hand(k, n):
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


def test_table_counts_each_kind_of_pair():
    a = [1, 1, 1, 0, 0, 1, 0, 0]
    b = [1, 0, 1, 1, 0, 0, 0, 0]
    assert paired_table(a, b) == PairedTable(both=2, only_a=2, only_b=1, neither=3)
    with pytest.raises(ValueError):
        paired_table([1, 0], [1])
    with pytest.raises(ValueError):
        paired_table([0.3, 1.0], [1, 0])


def test_mcnemar_exact_is_the_binomial_on_discordant_pairs():
    # 5 discordant pairs, all one way: two-sided p = 2 * 0.5**5
    assert mcnemar_test(PairedTable(7, 5, 0, 4)).pvalue == pytest.approx(0.0625)
    # 1 vs 4: p = 2 * P(X <= 1 | 5, 0.5) = 2 * 6 / 32
    assert mcnemar_test(PairedTable(3, 1, 4, 8)).pvalue == pytest.approx(0.375)
    assert mcnemar_test(PairedTable(3, 0, 0, 8)).pvalue == 1.0


def test_mcnemar_chi_square_without_correction():
    result = mcnemar_test(PairedTable(10, 9, 3, 10), exact=False)
    assert result.statistic == pytest.approx((9 - 3) ** 2 / 12)  # 3.0
    assert result.pvalue == pytest.approx(math.erfc(math.sqrt(3.0 / 2)))  # chi2(1) tail = erfc(sqrt(x/2))


def test_newcombe_paired_matches_the_formula_by_hand():
    e, f, g, h = 5, 6, 1, 4
    n = 16
    p1, p2 = (e + f) / n, (e + g) / n
    (l1, u1), (l2, u2) = wilson_by_hand(e + f, n), wilson_by_hand(e + g, n)
    # Newcombe's continuity adjustment: e h - f g = 14 moves n / 2 = 8 towards 0
    phi = (e * h - f * g - n / 2) / math.sqrt((e + f) * (g + h) * (e + g) * (f + h))  # 6 / sqrt(11*5*6*10)
    low = p1 - p2 - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    high = p1 - p2 + math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    got = newcombe_paired(PairedTable(e, f, g, h))
    assert got == pytest.approx((low, high), abs=1e-9)
    assert got[0] < 0.3125 < got[1]


@pytest.mark.parametrize("table", [PairedTable(12, 1, 7, 1), PairedTable(1, 1, 7, 12)])
def test_newcombe_paired_matches_the_published_example(table):
    # Newcombe (1998), Stat Med 17:2635, method 10 on his worked example: [-0.5069, -0.0256]
    # (without the continuity adjustment to phi the interval would be [-0.5017, -0.0361])
    low, high = newcombe_paired(table)
    assert (round(low, 4), round(high, 4)) == (-0.5069, -0.0256)


def test_newcombe_paired_adjustment_stops_at_zero():
    # e h - f g = 2 < n / 2: the adjusted phi is 0, the two Wilson half-widths add in quadrature
    e, f, g, h = 2, 3, 3, 4
    n = 12
    (l1, u1) = wilson_by_hand(e + f, n)
    low, high = newcombe_paired(PairedTable(e, f, g, h))
    assert (low, high) == pytest.approx((-math.hypot(5 / 12 - l1, u1 - 5 / 12), math.hypot(u1 - 5 / 12, 5 / 12 - l1)), abs=1e-9)


def test_identical_decisions_give_a_zero_difference_whose_interval_holds_zero():
    c = compare_decisions([1, 0, 1, 1], [1, 0, 1, 1])
    assert c.difference.value == 0.0 and c.difference.low <= 0.0 <= c.difference.high
    assert c.mcnemar.pvalue == 1.0 and (c.rate_a, c.rate_b) == (0.75, 0.75)


def test_compare_decisions_reports_rates_and_direction():
    a = np.array([True] * 10 + [False] * 6)
    b = np.array([True] * 4 + [False] * 12)  # 6 pairs where only A is positive
    c = compare_decisions(a, b)
    assert (c.rate_a, c.rate_b) == (10 / 16, 4 / 16)
    assert c.difference.value == pytest.approx(0.375) and c.difference.n == 16
    assert c.difference.low > 0  # paired: the six discordant pairs all go one way
    assert c.mcnemar.pvalue == pytest.approx(2 * 0.5**6)
    assert "discordant 6/0" in c.describe()


def test_paired_mean_difference_is_a_t_interval_on_differences():
    a, b = [0.5, 0.7, 0.9, 1.0], [0.4, 0.5, 0.6, 0.6]  # differences 0.1, 0.2, 0.3, 0.4
    est = paired_mean_difference(a, b)
    se = math.sqrt(sum((d - 0.25) ** 2 for d in (0.1, 0.2, 0.3, 0.4)) / 3) / 2
    t = 3.182446305284263  # Student t, 3 df, 0.975
    assert est.value == pytest.approx(0.25)
    assert (est.low, est.high) == pytest.approx((0.25 - t * se, 0.25 + t * se))
    assert paired_mean_difference([0.2, 0.3], [0.2, 0.3]).low == 0.0
