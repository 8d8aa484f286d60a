"""Sequential sampling: schedule, anytime-valid coverage under optional stopping, false verdicts,
fail-side multiple-testing control. Simulated Bernoulli data, no images."""

import math

import numpy as np
import pytest

from pytest_synthcxr import stats
from pytest_synthcxr.checks.base import ANYTIME_GROWTH, Result
from pytest_synthcxr.stats.sequential import adjust, more_samples_note, rounds, run_check, schedule
from pytest_synthcxr.stats.intervals import Estimate

RUNS = 1000


def test_rounds_double_up_to_the_budget():
    assert rounds(16, 200) == [16, 32, 64, 128, 200]
    assert rounds(16, 128) == [16, 32, 64, 128]
    assert rounds(50, 20) == [20]
    # checks decided by a confidence sequence look more often: 16, ceil(16 x 1.5) = 24, 36, 54, 81, 122, 183, budget
    assert rounds(16, 200, 1.5) == [16, 24, 36, 54, 81, 122, 183, 200]
    assert rounds(2, 5, 1.1) == [2, 3, 4, 5]  # always at least one more sample per look


def test_each_check_has_its_schedule():
    from pytest_synthcxr.sampling.cells import Cell
    from pytest_synthcxr.checks.hallucination import HallucinationCheck
    from pytest_synthcxr.checks.uncertainty import UncertaintyCheck
    from pytest_synthcxr.checks.validity import ValidityCheck

    cells = (Cell(None, (("sex", "female"),), False),)
    rate = HallucinationCheck(name="x", samples=100, threshold=0.1, direction="max", population=cells)
    mean = UncertaintyCheck(name="x", samples=100, threshold=0.1, direction="max", population=cells)
    area = ValidityCheck(name="x", samples=100, threshold=0.9, direction="min", metric="auroc", population=cells)
    assert schedule(rate, 16, sequential=True) == [16, 24, 36, 54, 81, 100]
    assert schedule(mean, 16, sequential=True) == schedule(area, 16, sequential=True) == [16, 32, 64, 100]  # alpha split over looks
    assert schedule(rate, 16, sequential=False) == [100]


def test_beta_binomial_cs_is_wider_than_wilson_and_contains_the_mle():
    for count, n in [(0, 16), (5, 16), (250, 500), (16, 16)]:
        low, high = stats.beta_binomial_cs(count, n)
        wl, wh = stats.wilson(count, n)
        assert low <= wl + 1e-12 and high >= wh - 1e-12
        assert low <= count / n <= high


def test_beta_binomial_cs_boundary_is_where_the_martingale_crosses():
    from scipy.special import betaln

    low, high = stats.beta_binomial_cs(30, 100, alpha=0.05)
    for p in (low, high):
        log_m = betaln(31, 71) - betaln(1, 1) - 30 * math.log(p) - 70 * math.log1p(-p)
        assert log_m == pytest.approx(math.log(20), abs=1e-6)


def sequential_run(rng, p, threshold, budget=1024, first=16, alpha=0.05, growth=ANYTIME_GROWTH):
    """Sample Bernoulli(p) in the rounds the plugin uses for rates, stop when the CS is on one side
    of an upper limit."""
    draws = rng.random(budget) < p
    for n in rounds(first, budget, growth):
        low, high = stats.beta_binomial_cs(int(draws[:n].sum()), n, alpha, stats.threshold_prior(threshold))
        outcome = stats.verdict(Estimate(draws[:n].mean(), low, high, n), threshold, "max")
        if outcome != "inconclusive":
            break
    return outcome, n, low <= p <= high


@pytest.mark.parametrize("p", [0.05, 0.3, 0.42])
def test_coverage_under_optional_stopping(p):
    rng = np.random.default_rng(11)
    covered = sum(sequential_run(rng, p, threshold=0.2)[2] for _ in range(RUNS))
    assert covered / RUNS >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / RUNS)


def test_at_the_threshold_pass_is_rare_and_mostly_inconclusive():
    rng = np.random.default_rng(12)
    outcomes = [sequential_run(rng, 0.05, threshold=0.05)[0] for _ in range(RUNS)]
    assert outcomes.count("pass") / RUNS <= 0.05
    assert outcomes.count("inconclusive") / RUNS >= 0.9


@pytest.mark.parametrize("p, expected", [(0.10, "fail"), (0.01, "pass")])
def test_far_from_the_threshold_the_right_verdict_early(p, expected):
    rng = np.random.default_rng(13)
    runs = [sequential_run(rng, p, threshold=0.05) for _ in range(RUNS)]
    assert sum(r[0] == expected for r in runs) / RUNS >= 0.95
    assert np.median([r[1] for r in runs]) < 1024 / 2  # decided well before the budget


def result(name, verdict, value=0.3, low=0.2, high=0.4, threshold=0.1, samples=100):
    return Result(
        check=name, family="bias", quantity="q", estimate=Estimate(value, low, high, samples), threshold=threshold,
        direction="max", verdict=verdict, confidence=0.95, samples=samples,
    )


def test_fail_side_correction_labels_fails_and_never_changes_a_verdict():
    results = {"a": result("a", "fail"), "b": result("b", "fail"), "c": result("c", "pass"), "d": result("d", "inconclusive")}
    # Holm with m = 4: sorted p 0.001 (x4 = 0.004 <= 0.05: rejected), 0.02 (x3 = 0.06 > 0.05: kept)
    adjusted = adjust(results, {"a": 0.001, "b": 0.02}, 0.95, "holm")
    assert {k: r.verdict for k, r in adjusted.items()} == {k: r.verdict for k, r in results.items()}
    assert adjusted["a"].familywise is True and adjusted["a"].p_fail == pytest.approx(0.004)
    # b still fails (it blocks the release); only its label says it is not significant family-wise
    assert adjusted["b"].familywise is False and adjusted["b"].p_fail == pytest.approx(0.06)
    assert "not significant family-wise" in adjusted["b"].note and "Holm across 4 items" in adjusted["b"].note
    assert adjusted["b"].message().startswith("fail: ") and "still blocks the release" in adjusted["b"].message()
    assert adjusted["c"].familywise is None and adjusted["d"].familywise is None
    # BH: 0.02 <= 2/4 * 0.05 = 0.025, so both labelled significant (false-discovery rate)
    bh = adjust(results, {"a": 0.001, "b": 0.02}, 0.95, "bh")
    assert bh["b"].verdict == "fail" and bh["b"].familywise is True
    assert adjust(results, {"a": 0.001, "b": 0.02}, 0.95, "none") == results


class _Scripted:
    """A check whose verdict at each look is scripted (run_check only reads the verdicts)."""

    nodename, samples, threshold, direction = "scripted", 64, 0.1, "max"

    def __init__(self, verdicts, strict):
        self.verdicts, self.strict, self.calls = list(verdicts), strict, 0

    def round_growth(self):
        return 2.0

    def evaluate(self, table, confidence, *, interval="fixed", looks=1):
        v = self.verdicts[min(self.calls, len(self.verdicts) - 1)]
        self.calls += 1
        return result("scripted", v, samples=table)

    def decide(self, table, alpha, interval, looks):
        return Estimate(0.3, 0.2, 0.4, table) if self.strict else Estimate(0.3, 0.05, 0.4, table)


def test_a_fail_seen_at_one_look_stays_a_fail():
    # looks 8, 16, 32, 64: fails at 8 (not at alpha / items), then the later looks lose it
    check = _Scripted(["fail", "inconclusive", "pass", "pass"], strict=False)
    got, table = run_check(check, lambda c, n: n, 0.95, sequential=True, first_round=8, items=10)
    assert got.verdict == "fail" and got.samples == 8 and table == 8 and check.calls == 3  # stopped at the pass
    # without a correction a fail stops sampling at once
    check = _Scripted(["fail", "pass"], strict=False)
    got, _ = run_check(check, lambda c, n: n, 0.95, sequential=True, first_round=8, items=1)
    assert got.verdict == "fail" and check.calls == 1


def _rate_check(budget):
    """A hallucination-like rate check whose score table is an array of 0/1 judge calls."""
    from dataclasses import dataclass

    from pytest_synthcxr.checks.base import Measured
    from pytest_synthcxr.checks.hallucination import HallucinationCheck

    @dataclass(frozen=True)
    class Rate(HallucinationCheck):
        @property
        def quantity(self):
            return "simulated rate"

        def cells(self):
            return ()

        def measure(self, table, alpha, interval="fixed", looks=1):
            return Measured(stats.proportion(int(table.sum()), int(table.size), alpha, interval, self.threshold))

    return Rate(name="rate", samples=budget, threshold=0.10, direction="max")


def test_more_samples_note_comes_from_the_rule_that_runs():
    check = _rate_check(100)
    # 4 of 100 against a bound of 0.10, fixed sampling: Wilson [0.016, 0.098] already passes; 6 of 100 does not
    data = np.array([1] * 6 + [0] * 94, dtype=np.int8)
    result, _ = run_check(check, lambda c, n: data[:n], 0.95, sequential=False, first_round=16)
    assert result.verdict == "inconclusive"
    note = result.note
    assert note.startswith("about ") and "more samples per cell (" in note and "if the truth were the current estimate" in note
    more, total = int(note.split()[1]), int(note.split("(")[1].split()[0])
    assert total == 100 + more and total in (200, 400)  # fixed designs double: 200, 400
    # the claim holds: at that size Wilson on resampled 6% data decides >= 80% of the time
    rng = np.random.default_rng(0)
    decided = [stats.wilson(int((rng.random(total) < 0.06).sum()), total)[1] <= 0.10 for _ in range(400)]
    assert np.mean(decided) >= 0.7
    # an estimate on the bound: even 4x the budget rarely decides it, and the note says so
    at = np.array([1] * 10 + [0] * 90, dtype=np.int8)
    result, _ = run_check(check, lambda c, n: at[:n], 0.95, sequential=False, first_round=16)
    assert result.note.startswith("even 400 samples per cell (4x the budget)") and "close to the threshold" in result.note
    # reproducible (seeded by the item's name)
    assert run_check(check, lambda c, n: at[:n], 0.95, sequential=False, first_round=16)[0].note == result.note


@pytest.mark.parametrize("method, name", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjusted_p_matches_statsmodels(method, name):
    from statsmodels.stats.multitest import multipletests

    from pytest_synthcxr.stats.sequential import adjusted_p

    rng = np.random.default_rng(3)
    for m in (1, 2, 5, 40):
        p = np.where(rng.random(m) < 0.5, 1.0, rng.random(m) * 0.2)
        assert adjusted_p(list(p), method) == pytest.approx(list(multipletests(p, method=name)[1]), abs=1e-12)
