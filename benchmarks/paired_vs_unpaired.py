"""Samples needed to detect a planted demographic effect: paired same-seed vs unpaired.

    .venv/bin/python benchmarks/paired_vs_unpaired.py [--replicates 10] [--max-n 128]

On `phantom-biased`, prompt A names one subgroup and prompt B another (default: "Hispanic
female. Pleural effusion." vs "White male. Pleural effusion.", planted omission 0.56 vs 0.26).
For each replicate r, prompt A gets seeds of base r; prompt B gets the *same* seeds (paired) or
seeds of base 10_000 + r (unpaired). The samples needed is the smallest n on the grid 8, 16, ...
where the 95% interval of the rate difference excludes 0: Newcombe's paired interval (method 10)
for paired data, Newcombe's independent-samples interval otherwise (and McNemar p < 0.05 shown for
the paired arm). Prints the median and each replicate's n, and the ratio unpaired / paired.
Looking at every n of the grid is optional stopping, so "first n that excludes 0" is a yardstick
for comparing the two designs on equal terms, not a valid test of either.
"""

from __future__ import annotations

import argparse
import statistics
import time

from pytest_synthcxr.fuzz.sampler import PairedSampler
from pytest_synthcxr.models.generators.phantom import PhantomGenerator
from pytest_synthcxr.models.judges.phantom import PhantomJudge
from pytest_synthcxr.stats.paired import compare_decisions
from pytest_synthcxr.stats.intervals import newcombe


def first_detection(a, b, grid, paired: bool) -> int | None:
    for n in grid:
        if paired:
            d = compare_decisions(a[:n], b[:n]).difference
            low, high = d.low, d.high
        else:
            low, high = newcombe(int(a[:n].sum()), n, int(b[:n].sum()), n)
        if low > 0 or high < 0:
            return n
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=10)
    parser.add_argument("--max-n", type=int, default=128)
    parser.add_argument("--a", default="Hispanic female. Pleural effusion.")
    parser.add_argument("--b", default="White male. Pleural effusion.")
    parser.add_argument("--finding", default="Effusion")
    args = parser.parse_args()
    grid = list(range(8, args.max_n + 1, 8))
    generator, judge = PhantomGenerator("phantom-biased"), PhantomJudge()
    t0 = time.perf_counter()
    paired_n, unpaired_n, mcnemar_n = [], [], []
    for r in range(args.replicates):
        same = PairedSampler(generator, judge, r)
        other = PairedSampler(generator, judge, 10_000 + r)
        a = same.probability(args.a, args.finding, args.max_n) > 0.5
        b_paired = same.probability(args.b, args.finding, args.max_n) > 0.5
        b_unpaired = other.probability(args.b, args.finding, args.max_n) > 0.5
        paired_n.append(first_detection(a, b_paired, grid, True))
        unpaired_n.append(first_detection(a, b_unpaired, grid, False))
        mcnemar_n.append(next((n for n in grid if compare_decisions(a[:n], b_paired[:n]).mcnemar.pvalue < 0.05), None))
        print(f"replicate {r}: paired {paired_n[-1]}, McNemar {mcnemar_n[-1]}, unpaired {unpaired_n[-1]}", flush=True)
    cap = args.max_n * 2  # not detected within max-n: counted as 2 x max-n (a lower bound)

    def median(ns: list[int | None]) -> float:
        return statistics.median(n if n is not None else cap for n in ns)

    mp, mu = median(paired_n), median(unpaired_n)
    print(f"{args.a!r} vs {args.b!r} ({args.finding}), {args.replicates} replicates, {time.perf_counter() - t0:.0f}s")
    print(f"median samples per prompt to detect: paired {mp:g} (McNemar {median(mcnemar_n):g}), unpaired {mu:g}; ratio {mu / mp:.2f}")


if __name__ == "__main__":
    main()
