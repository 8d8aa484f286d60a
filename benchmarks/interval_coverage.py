"""Coverage of the AUROC and paired-difference intervals (issue 16): share of simulated draws
whose 95% interval misses the truth (nominal 5%), beside the intervals they replaced.

    .venv/bin/python benchmarks/interval_coverage.py [--runs 4000]

AUROC: equal-variance binormal scores with true AUROC 0.8, 0.95, 0.99 and 1.0 (disjoint
supports), n = 20 + 20 and 50 + 50; Newcombe's score interval (stats.intervals.auroc) vs the
Hanley-McNeil plug-in interval. Paired differences: 2 x 2 tables of paired decisions with rates
(p_a, p_b) and correlation rho; Newcombe's method 10 with the continuity-adjusted phi
(stats.paired.newcombe_paired) vs the same without the adjustment.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_interval_coverage import auroc_miss, hanley_mcneil_miss, paired_miss  # noqa: E402  (the CI test's draws)


from pytest_synthcxr.stats import paired  # noqa: E402


def unadjusted_miss(p_a: float, p_b: float, rho: float, n: int, runs: int, seed: int) -> float:
    """paired_miss with phi left unadjusted (the interval before issue 16)."""
    original = paired.newcombe_paired

    def plain(table: paired.PairedTable, alpha: float = 0.05) -> tuple[float, float]:
        e, f, g, h = table.both, table.only_a, table.only_b, table.neither
        n_ = table.n
        p1, p2 = (e + f) / n_, (e + g) / n_
        l1, u1 = paired.wilson(e + f, n_, alpha)
        l2, u2 = paired.wilson(e + g, n_, alpha)
        den = (e + f) * (g + h) * (e + g) * (f + h)
        phi = (e * h - f * g) / math.sqrt(den) if den > 0 else 0.0
        d = p1 - p2
        below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
        above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
        return max(-1.0, d - below), min(1.0, d + above)

    paired.newcombe_paired = plain
    try:
        return paired_miss(p_a, p_b, rho, n, runs, seed)
    finally:
        paired.newcombe_paired = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=4000)
    args = ap.parse_args()
    print(f"AUROC, 95% intervals, {args.runs} draws per row (Monte Carlo SE of a 5% rate: {math.sqrt(0.05 * 0.95 / args.runs):.1%})")
    print("| n | true AUROC | miss: Newcombe score (now) | miss: Hanley-McNeil (before) |")
    print("|---|---|---|---|")
    for n in (20, 50):
        for auc in (0.8, 0.95, 0.99, 1.0):
            seed = int(1000 * auc) + n
            print(f"| {n} + {n} | {auc:g} | {auroc_miss(auc, n, args.runs, seed):.1%} | {hanley_mcneil_miss(auc, n, args.runs, seed):.1%} |", flush=True)
    print()
    print(f"Paired difference p_a - p_b, 95% intervals, {args.runs} draws per row")
    print("| n | p_a | p_b | rho | miss: continuity-adjusted phi (now) | miss: unadjusted phi (before) |")
    print("|---|---|---|---|---|---|")
    for p_a, p_b, rho in ((0.5, 0.3, 0.5), (0.2, 0.1, 0.3), (0.6, 0.6, 0.8), (0.3, 0.3, 0.9), (0.1, 0.05, 0.5)):
        for n in (16, 32, 100):
            both = p_a * p_b + rho * math.sqrt(p_a * (1 - p_a) * p_b * (1 - p_b))
            if min(both, p_a - both, p_b - both, 1 - p_a - p_b + both) < 0:
                continue
            print(
                f"| {n} | {p_a:g} | {p_b:g} | {rho:g} | {paired_miss(p_a, p_b, rho, n, args.runs, n):.1%} "
                f"| {unadjusted_miss(p_a, p_b, rho, n, args.runs, n):.1%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
