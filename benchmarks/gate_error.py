"""P(ship | one item truly past its bound among many) for the gate as a whole, under every
`inconclusive` policy and fail-side correction (issue 16).

    .venv/bin/python benchmarks/gate_error.py [--items 40] [--runs 2000] [--bad 0.11 0.14 0.2]

Simulated Bernoulli data, no images. Every item checks that a rate stays at most 0.10 at
alpha = 0.05 (Wilson with fixed sampling, the beta-binomial confidence sequence with sequential
sampling: looks at 16 samples, then 1.5x, budget 300). Item 0 is truly bad (rate `bad`), the
other items truly good (rate 0.02). The real rule runs: ``stats.sequential.run_all`` with the
correction, then ``stats.gate.ships`` with the policy. The same draws feed every correction.
"old rule" columns: the same runs with a fail that is not significant family-wise turned
inconclusive, as the plugin did before issue 16. Also reported: with every item exactly at its
bound (0.10, allowed: the worst case for false blocks), the chance of any false block (any fail)
and of any fail labelled significant family-wise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_gate_error import ALPHA, CORRECTIONS, POLICIES, gate_runs, ship_rate  # noqa: E402  (the CI test's harness)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--bad", type=float, nargs="+", default=[0.11, 0.14, 0.2])
    args = ap.parse_args()
    print(f"{args.items} items, one truly bad; alpha {ALPHA}; {args.runs} runs per row (fixed), {args.runs // 8} (sequential)")
    print("| sampling | bad item's rate | correction | " + " | ".join(f"ship ({p})" for p in POLICIES) + " | old rule: ship (fail) | old rule: ship (warn) |")
    print("|---|---|---|" + "---|" * (len(POLICIES) + 2))
    for sequential in (False, True):
        runs = args.runs // 8 if sequential else args.runs
        for j, bad in enumerate(args.bad):
            verdicts = gate_runs(args.items, bad, runs, sequential, seed=100 * j + sequential)
            for correction in CORRECTIONS:
                rates = [ship_rate(verdicts[correction], p) for p in POLICIES]
                rates += [ship_rate(verdicts[correction], p, demote=True) for p in ("fail", "warn")]
                print(
                    f"| {'sequential' if sequential else 'fixed'} | {bad:g} | {correction} | " + " | ".join(f"{r:.1%}" for r in rates) + " |",
                    flush=True,
                )
    print()
    print("every item at its bound (rate 0.10): chance of any false block, and of any false fail labelled significant family-wise")
    for sequential in (False, True):
        runs = args.runs // 8 if sequential else args.runs
        verdicts = gate_runs(args.items, 0.10, runs, sequential, seed=999, good=0.10)
        for correction in CORRECTIONS:
            any_fail = np.mean([any(v == "fail" for v, _ in run) for run in verdicts[correction]])
            labelled = np.mean([any(v == "fail" and fw is not False for v, fw in run) for run in verdicts[correction]])
            print(f"| {'sequential' if sequential else 'fixed'} | {correction} | any false block {any_fail:.1%} | any false fail labelled significant {labelled:.1%} |")


if __name__ == "__main__":
    main()
