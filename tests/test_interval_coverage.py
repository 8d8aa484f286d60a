"""Coverage of the AUROC and paired-difference intervals by seeded simulation (issue 16).

Short version for CI; benchmarks/interval_coverage.py runs thousands of draws per row and its
tables are in benchmarks/README.md and docs/verdicts.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from pytest_synthcxr.stats.intervals import auroc
from pytest_synthcxr.stats.paired import compare_decisions


def binormal(rng: np.random.Generator, auc: float, n1: int, n0: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores of n1 positives and n0 negatives whose true AUROC is `auc` (equal-variance
    binormal; AUROC 1: disjoint supports)."""
    if auc >= 1.0:
        return rng.random(n1) + 1.0, rng.random(n0)
    shift = math.sqrt(2) * sps.norm.ppf(auc)
    return rng.normal(shift, 1.0, n1), rng.normal(0.0, 1.0, n0)


def auroc_miss(auc: float, n: int, runs: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    misses = 0
    for _ in range(runs):
        e = auroc(*binormal(rng, auc, n, n), alpha=0.05)
        misses += not (e.low <= auc <= e.high)
    return misses / runs


def hanley_mcneil_miss(auc: float, n: int, runs: int, seed: int) -> float:
    """The interval this one replaced, for the same draws (it collapses to [1, 1] at A = 1)."""
    rng = np.random.default_rng(seed)
    misses = 0
    for _ in range(runs):
        a = auroc(*binormal(rng, auc, n, n)).value
        q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
        half = 1.959964 * math.sqrt(max(0.0, (a * (1 - a) + (n - 1) * (q1 - a * a) + (n - 1) * (q2 - a * a)) / (n * n)))
        misses += not (a - half <= auc <= a + half)
    return misses / runs


@pytest.mark.parametrize("auc, n", [(0.8, 20), (0.95, 20), (0.99, 20), (1.0, 20), (0.99, 50)])
def test_auroc_interval_holds_its_level(auc, n):
    # 300 draws: a true 5% miss rate stays below 9% with probability > 0.99
    assert auroc_miss(auc, n, 300, seed=int(1000 * auc) + n) <= 0.09


def test_the_replaced_interval_fails_where_this_one_holds():
    # the same check on Hanley-McNeil at AUROC 0.99, 20 + 20: the test can fail
    assert hanley_mcneil_miss(0.99, 20, 300, seed=1010) > 0.15


def paired_miss(p_a: float, p_b: float, rho: float, n: int, runs: int, seed: int) -> float:
    """Miss rate of the paired interval for p_a - p_b; decisions drawn from a 2 x 2 table of
    correlation `rho`."""
    rng = np.random.default_rng(seed)
    both = p_a * p_b + rho * math.sqrt(p_a * (1 - p_a) * p_b * (1 - p_b))
    probs = np.array([both, p_a - both, p_b - both, 1 - p_a - p_b + both])
    assert (probs >= 0).all()
    misses = 0
    for _ in range(runs):
        kinds = rng.choice(4, size=n, p=probs)
        a, b = np.isin(kinds, (0, 1)), np.isin(kinds, (0, 2))
        d = compare_decisions(a, b, 0.05).difference
        misses += not (d.low <= p_a - p_b <= d.high)
    return misses / runs


@pytest.mark.parametrize("p_a, p_b, rho, n", [(0.5, 0.3, 0.5, 32), (0.2, 0.1, 0.3, 32), (0.6, 0.6, 0.8, 48)])
def test_paired_interval_holds_its_level(p_a, p_b, rho, n):
    assert paired_miss(p_a, p_b, rho, n, 400, seed=n) <= 0.085
