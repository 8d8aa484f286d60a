"""The gate as a whole (issue 16): P(ship | one item truly past its bound among many) under every
inconclusive policy and fail-side correction, by seeded simulation of the real rule
(stats.sequential.run_all on rate checks whose score table is an array of 0/1 judge calls).

Short version for CI; benchmarks/gate_error.py runs 40 items and thousands of runs, and its
table is in docs/verdicts.md and benchmarks/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from pytest_synthcxr.checks.base import ANYTIME_GROWTH, Measured
from pytest_synthcxr.checks.hallucination import HallucinationCheck
from pytest_synthcxr.stats.gate import SAFE_POLICIES, blocks, ships
from pytest_synthcxr.stats.intervals import IntervalKind, proportion
from pytest_synthcxr.stats.sequential import run_all

ALPHA = 0.05
THRESHOLD = 0.10  # each item: a rate that must stay at most 0.10
GOOD, BUDGET, FIRST = 0.02, 300, 16
POLICIES = ("fail", "warn", "skip", "xfail")
CORRECTIONS = ("none", "holm", "bh")


@dataclass(frozen=True)
class SimulatedRate(HallucinationCheck):
    """A rate check whose 'score table' is an array of 0/1 judge calls (decides like a
    hallucination item: Wilson, or the beta-binomial confidence sequence when sequential)."""

    def round_growth(self) -> float:
        return ANYTIME_GROWTH

    @property
    def quantity(self) -> str:
        return "simulated rate"

    def cells(self) -> tuple:
        return ()

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        return Measured(proportion(int(table.sum()), int(table.size), alpha, interval, self.threshold))


def gate_runs(items: int, bad: float, runs: int, sequential: bool, seed: int, good: float = GOOD) -> dict[str, list[list[tuple[str, Any]]]]:
    """(verdict, family-wise label) of every item per run and correction; item 0 is truly bad
    (rate `bad`), the others truly good (rate `good`). The same draws feed every correction."""
    checks = [SimulatedRate(name=f"i{k}", samples=BUDGET, threshold=THRESHOLD, direction="max") for k in range(items)]
    rng = np.random.default_rng(seed)
    out: dict[str, list[list[tuple[str, Any]]]] = {c: [] for c in CORRECTIONS}
    for _ in range(runs):
        truth = np.array([bad] + [good] * (items - 1))
        draws = {c.nodename: (rng.random(BUDGET) < p).astype(np.int8) for c, p in zip(checks, truth)}

        def table_of(check: Any, n: int) -> Any:
            return draws[check.nodename][:n]

        def on_error(check: Any, exc: BaseException) -> None:
            raise exc

        for correction in CORRECTIONS:
            results = run_all(checks, table_of, 1 - ALPHA, sequential=sequential, first_round=FIRST, correction=correction, on_error=on_error)
            out[correction].append([(results[c.nodename].verdict, results[c.nodename].familywise) for c in checks])
    return out


def verdicts(runs: list[list[tuple[str, Any]]], demote: bool = False) -> list[list[str]]:
    """The runs' verdicts; demote: as the earlier rule had them (a fail not significant
    family-wise turned inconclusive), for comparison."""
    return [["inconclusive" if demote and v == "fail" and fw is False else v for v, fw in run] for run in runs]


def ship_rate(runs: list[list[tuple[str, Any]]], policy: str, demote: bool = False) -> float:
    return float(np.mean([ships(v, policy) for v in verdicts(runs, demote)]))


def test_blocks_and_ships():
    assert blocks("fail", "warn") and blocks("inconclusive", "fail") and not blocks("inconclusive", "skip")
    assert ships(["pass", "inconclusive"], "xfail") and not ships(["pass", "inconclusive"], "fail")
    assert SAFE_POLICIES == ("fail",)


@pytest.mark.parametrize("sequential", [False, True], ids=["fixed", "sequential"])
def test_a_correction_never_makes_shipping_a_bad_model_more_likely(sequential):
    # a bad item just past its bound (0.11 > 0.10) among 8: the hardest case for the gate
    runs = gate_runs(items=8, bad=0.11, runs=60 if sequential else 400, sequential=sequential, seed=16)
    # the correction only labels fails: every run gets the same verdicts with and without it
    assert verdicts(runs["holm"]) == verdicts(runs["none"]) == verdicts(runs["bh"])
    rates = {policy: ship_rate(runs["none"], policy) for policy in POLICIES}
    # the safe policy: a bad model ships only when its bad item passes, at most alpha
    assert rates["fail"] <= ALPHA
    # the others ship whenever the bad item is not proven bad: most of the time this close to the bound
    assert min(rates[p] for p in ("warn", "skip", "xfail")) > 0.5
    assert rates["warn"] == rates["skip"] == rates["xfail"]


def test_good_items_alone_ship_under_the_safe_policy():
    # the same gate with every item good (the bad one at 0.02 too): the gate is not vacuous
    runs = gate_runs(items=8, bad=GOOD, runs=100, sequential=False, seed=7)
    assert ship_rate(runs["holm"], "fail") > 0.9
