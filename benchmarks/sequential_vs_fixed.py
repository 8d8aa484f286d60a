"""Samples the sequential rule needs to reach a verdict vs a fixed-sample design with the same error rates.

    .venv/bin/python benchmarks/sequential_vs_fixed.py [--runs 2000] [--threshold 0.05 0.2] [--growth 1.5]

Simulated Bernoulli data, no images. One item checks that a rate stays at most `threshold` at
level alpha = 0.05, for true rates of 0.5x, 0.8x, 1.2x and 2x the threshold.

- fixed n (this rate): a one-sided level-alpha test with power 0.9 at that very rate
  (statsmodels ``NormalIndPower``, Cohen's h). It presumes the truth is known in advance.
- fixed n (design): one fixed design with power 0.9 at every rate of the table, i.e. at 0.8x and
  1.2x, the nearest (the largest of the row sizes). This is the fixed design with the same error
  rates as the sequential rule over the whole table: the budget a release gate must set when it
  does not know the truth.
- sequential: ``sequential.run_check`` itself, on a check that decides like a hallucination item
  (looks at 16 samples and then `growth` times more each time, the beta-binomial confidence
  sequence with its prior centred on the threshold, a pass stops at once, a fail when it holds),
  whose table is the simulated draws and whose budget is the design's fixed n (it never spends
  more). Reported: mean and median samples spent, the mean as a share of both fixed sizes, the
  share of runs ending in the right verdict, and the share still inconclusive at the budget.
  Its false-verdict rate at the threshold stays below alpha at every look (tests/test_sequential.py).
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_synthcxr.checks.base import ANYTIME_GROWTH, Measured
from pytest_synthcxr.checks.hallucination import HallucinationCheck
from pytest_synthcxr.stats.sequential import run_check
from pytest_synthcxr.stats.intervals import IntervalKind, proportion

RATIOS = (0.5, 0.8, 1.2, 2.0)


@dataclass(frozen=True)
class SimulatedRate(HallucinationCheck):
    """A hallucination-like rate check whose 'score table' is an array of 0/1 judge calls."""

    growth: float = ANYTIME_GROWTH

    def round_growth(self) -> float:
        return self.growth

    @property
    def quantity(self) -> str:
        return "simulated rate"

    def cells(self) -> tuple:
        return ()

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        return Measured(proportion(int(table.sum()), int(table.size), alpha, interval, self.threshold))


def fixed_n(threshold: float, truth: float, alpha: float, power: float) -> int:
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    h = abs(float(proportion_effectsize(truth, threshold)))
    return int(np.ceil(NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=0, alternative="larger")))


def row(threshold: float, ratio: float, design: int, runs: int, first_round: int, alpha: float, growth: float, seed: int) -> dict[str, Any]:
    truth = ratio * threshold
    check = SimulatedRate(name="sim", samples=design, threshold=threshold, direction="max", growth=growth)
    right = "pass" if truth < threshold else "fail"
    rng = np.random.default_rng(seed)
    spent, correct, inconclusive = [], 0, 0
    for _ in range(runs):
        draws = (rng.random(design) < truth).astype(np.int8)
        result, _ = run_check(check, lambda c, n: draws[:n], 1 - alpha, sequential=True, first_round=first_round)
        spent.append(result.samples)
        correct += result.verdict == right
        inconclusive += result.verdict == "inconclusive"
    return {
        "truth": truth,
        "mean": statistics.fmean(spent),
        "median": statistics.median(spent),
        "correct": correct / runs,
        "inconclusive": inconclusive / runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--threshold", type=float, nargs="+", default=[0.05, 0.2])
    ap.add_argument("--first-round", type=int, default=16)
    ap.add_argument("--growth", type=float, default=ANYTIME_GROWTH, help="rounds grow by this factor (default: the plugin's)")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--power", type=float, default=0.9)
    args = ap.parse_args()
    print(f"alpha {args.alpha}, power {args.power}, looks {args.first_round} x {args.growth:g}^k, {args.runs} runs per row")
    print(
        "| threshold | true rate | fixed n (this rate) | fixed n (design) | sequential mean | median "
        "| mean / fixed (this rate) | mean / fixed (design) | right verdict | inconclusive |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for i, threshold in enumerate(args.threshold):
        sizes = {ratio: fixed_n(threshold, ratio * threshold, args.alpha, args.power) for ratio in RATIOS}
        design = max(sizes.values())
        for j, ratio in enumerate(RATIOS):
            r = row(threshold, ratio, design, args.runs, args.first_round, args.alpha, args.growth, seed=1000 * i + j)
            print(
                f"| {threshold:g} | {r['truth']:.3g} ({ratio:g}x) | {sizes[ratio]} | {design} | {r['mean']:.0f} | {r['median']:.0f} "
                f"| {r['mean'] / sizes[ratio]:.2f} | {r['mean'] / design:.2f} | {r['correct']:.1%} | {r['inconclusive']:.1%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
