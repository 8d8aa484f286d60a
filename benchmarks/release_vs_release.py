"""Candidate vs released model (issue 18): the paired two-model design against the JSON baseline.

One sensitivity item ("the candidate's Effusion sensitivity is at most 0.02 below the released
model's"), realistic rate 0.6, over `--cells` plain cells (default 8: sex x race) of `--budget`
samples each (default 4000). Per seed a coupling coin with probability c says whether the two
models' calls on that seed come from one shared uniform (comonotone) or from two independent ones
(the phantom's same-seed coupling; c = 0: same seeds, no shared draw).

- Paired design (`--synthcxr-baseline-model`): the real `CompareCheck.of(ValidityCheck)` decided
  by the real `stats.sequential.run_check` (looks 16, 24, 36, ... up to the budget, stop when
  decided) on a drawn two-model table (column `model`); both models' images on the same seeds.
  Images: both models' (the released model's come from the sample cache on later runs, so a CI
  run generates only the candidate's half).
- JSON design (`--synthcxr-baseline` + `relative_to_baseline`): the released model was audited
  once on `--released` samples per cell (default: the budget, then `seq`) with the same spec seed, so its
  calls share the candidate's seeds (and the coupling); its point estimate goes through the real
  `report.baseline.resolve_relative` (threshold = estimate - 0.02), and the candidate's own
  `ValidityCheck` is decided by `run_check` on the candidate's images alone. `--released seq`:
  the released estimate is the one its own sequential audit of the item (against min_sensitivity
  0.5) stopped at, which is what a real run's JSON report holds.
- Unpaired (`--only unpaired`): the same comparison item with the released model's images on
  other seeds, so it falls back to the two models' own intervals at alpha / 2 each.

Truths: no regression (both 0.6), the candidate regressed by 0.03 (beyond the margin: a pass is
a false pass) and by 0.05. For the JSON design the false-pass rate at 0.03 is also given
conditionally on a lucky released estimate (more than one standard error below its truth, so the
threshold is low) and an unlucky one (more than one above).

`more_samples_note` (the simulated "more samples would decide it" text on inconclusive items,
several seconds per call) is replaced by a stub here: it never changes a verdict or a sample count.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/release_vs_release.py --only paired --runs 100    # ~6 min on 2 shared cores
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/release_vs_release.py --only json --released budget 500 seq
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/release_vs_release.py --only unpaired --runs 50
    (--regressions 0.022 for the rows just beyond the margin; tables in benchmarks/README.md)
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pytest_synthcxr.checks.compare import CANDIDATE, RELEASED, CompareCheck
from pytest_synthcxr.checks.validity import ValidityCheck
from pytest_synthcxr.report.baseline import resolve_relative
from pytest_synthcxr.sampling.cells import Cell
from pytest_synthcxr.sampling.pool import score_column
from pytest_synthcxr.stats import sequential

RATE = 0.6
MARGIN = 0.02
MIN_SENSITIVITY = 0.5  # the item's own absolute bound (the spec's min_sensitivity)
CONFIDENCE = 0.95
FIRST_ROUND = 16
COUPLINGS = (0.0, 0.5, 0.9)
REGRESSIONS = (0.0, 0.03, 0.05)
SEXES = ("female", "male")
RACES = ("White", "Black", "Asian", "Hispanic")
SCORE = score_column("Effusion")


def _no_note(*_args: Any, **_kwargs: Any) -> str:
    return "more samples may decide it (note not simulated in this benchmark)"


@contextlib.contextmanager
def quiet_notes() -> Iterator[None]:
    """run_check without the inconclusive note's simulation (it looks the function up in its module
    at call time); restored afterwards, so importing this module changes nothing."""
    saved = sequential.more_samples_note
    sequential.more_samples_note = _no_note
    try:
        yield
    finally:
        sequential.more_samples_note = saved


def population(cells: int) -> tuple[Cell, ...]:
    grid = [Cell("Effusion", (("sex", s), ("race", r)), False) for s in SEXES for r in RACES]
    if cells > len(grid):
        raise SystemExit(f"at most {len(grid)} cells")
    return tuple(grid[:cells])


def inner_check(cells: tuple[Cell, ...], budget: int, threshold: float = MIN_SENSITIVITY, baseline_margin: float | None = None) -> ValidityCheck:
    return ValidityCheck(
        name="sensitivity-Effusion", samples=budget, threshold=threshold, direction="min", metric="sensitivity",
        finding="Effusion", population=cells, compare_margin=MARGIN, baseline_margin=baseline_margin,
    )


def draw_uniforms(rng: np.random.Generator, cells: int, n: int, coupling: float) -> tuple[np.ndarray, np.ndarray]:
    """(cells, n) uniforms of the candidate and of the released model on the same seeds: with
    probability `coupling` a seed's two draws are one uniform."""
    u = rng.random((cells, n))
    v = np.where(rng.random((cells, n)) < coupling, u, rng.random((cells, n)))
    return u, v


def frame(cells: tuple[Cell, ...], calls: np.ndarray, model: str | None, seed_base: int = 0) -> pd.DataFrame:
    k, n = calls.shape
    data = {
        "cell": np.repeat([c.key for c in cells], n), "finding": "Effusion", "i": np.tile(np.arange(n), k),
        "seed": (seed_base + np.arange(k)[:, None] * 1_000_003 + np.arange(n)[None, :]).ravel(), "valid": True, "seeded": True,
        SCORE: np.where(calls.ravel(), 0.9, 0.1),
    }
    if model is not None:
        data["model"] = model
    return pd.DataFrame(data)


def sliced(full: pd.DataFrame) -> Any:
    index = full["i"].to_numpy()

    def table_of(_check: Any, n: int) -> pd.DataFrame:
        return full[index < n]

    return table_of


@dataclass
class Row:
    verdicts: list[str]
    samples: list[int]  # per cell, at the verdict
    lucky: list[int]  # JSON: -1 released estimate > 1 SE below truth, +1 > 1 SE above, 0 otherwise
    thresholds: list[float]
    released: list[int] = field(default_factory=list)  # JSON: the released audit's samples per cell

    def share(self, verdict: str, mask: np.ndarray | None = None) -> float:
        v = np.array(self.verdicts)
        if mask is not None:
            v = v[mask]
        return float((v == verdict).mean()) if v.size else math.nan


def paired_run(
    check: CompareCheck, cells: tuple[Cell, ...], budget: int, regression: float, coupling: float, rng: np.random.Generator, unpaired: bool = False
) -> Any:
    """One paired run: both models' tables drawn on the same seeds, the comparison item decided.
    unpaired: the released model's images on other seeds (no shared draw; the item falls back to
    the two models' own intervals)."""
    u, v = draw_uniforms(rng, len(cells), budget, 0.0 if unpaired else coupling)
    released = frame(cells, v < RATE, RELEASED, seed_base=500_000_000 if unpaired else 0)
    full = pd.concat([frame(cells, u < RATE - regression, CANDIDATE), released], ignore_index=True)
    with quiet_notes():
        result, _ = sequential.run_check(check, sliced(full), CONFIDENCE, sequential=True, first_round=FIRST_ROUND)
    return result


def json_run(cells: tuple[Cell, ...], budget: int, estimate: float, candidate_calls: np.ndarray) -> tuple[Any, float]:
    """One JSON-baseline run: the released estimate resolved into the candidate item's threshold
    by the real resolve_relative, the candidate's item decided on its own calls ((cells, budget))."""
    plain = inner_check(cells, budget, baseline_margin=MARGIN)
    baseline = {"items": [{"check": plain.nodename, "estimate": estimate}]}
    (check,) = resolve_relative([plain], Path("released.json"), 1, data=baseline)
    with quiet_notes():
        result, _ = sequential.run_check(check, sliced(frame(cells, candidate_calls, None)), CONFIDENCE, sequential=True, first_round=FIRST_ROUND)
    return result, check.threshold


def paired_row(cells: tuple[Cell, ...], budget: int, regression: float, coupling: float, runs: int, seed: int, unpaired: bool = False) -> Row:
    check = CompareCheck.of(inner_check(cells, budget))
    rng = np.random.default_rng(seed)
    row = Row([], [], [], [])
    for _ in range(runs):
        result = paired_run(check, cells, budget, regression, coupling, rng, unpaired)
        row.verdicts.append(result.verdict)
        row.samples.append(result.samples)
    return row


def released_audit(cells: tuple[Cell, ...], budget: int, calls: np.ndarray) -> tuple[float, int]:
    """The released model's own audit as a JSON baseline records it: its sensitivity item
    (min_sensitivity 0.5) decided sequentially by run_check; the estimate at the look where it
    stopped, and that look's samples per cell."""
    with quiet_notes():
        result, _ = sequential.run_check(inner_check(cells, budget), sliced(frame(cells, calls, None)), CONFIDENCE, sequential=True, first_round=FIRST_ROUND)
    return float(result.estimate.value), int(result.samples)


def json_row(cells: tuple[Cell, ...], budget: int, released: int | None, regression: float, coupling: float, runs: int, seed: int) -> Row:
    """The released model audited once on `released` samples per cell (same seeds as the
    candidate's first ones; None: its own sequential audit, stopping when its absolute bound is
    decided), its estimate saved; the candidate decided alone against it."""
    rng = np.random.default_rng(seed)
    row = Row([], [], [], [])
    for _ in range(runs):
        u, v = draw_uniforms(rng, len(cells), budget if released is None else max(budget, released), coupling)
        if released is None:
            estimate, n_released = released_audit(cells, budget, v < RATE)
        else:
            estimate, n_released = float((v[:, :released] < RATE).mean()), released
        se = math.sqrt(RATE * (1 - RATE) / (n_released * len(cells)))
        row.released.append(n_released)
        result, threshold = json_run(cells, budget, estimate, u[:, :budget] < RATE - regression)
        row.verdicts.append(result.verdict)
        row.samples.append(result.samples)
        row.lucky.append(-1 if estimate < RATE - se else (1 if estimate > RATE + se else 0))
        row.thresholds.append(threshold)
    return row


def fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--budget", type=int, default=4000, help="samples per cell and model")
    parser.add_argument("--released", nargs="*", default=["budget", "seq"],
                        help="JSON design: the released audit's samples per cell, each a number, 'budget', or 'seq' (its own sequential audit)")
    parser.add_argument("--runs", type=int, default=100, help="paired runs per row")
    parser.add_argument("--json-runs", type=int, default=1000, help="JSON runs per row at regressions between the margin and 0.05 (other rows: --runs)")
    parser.add_argument("--regressions", type=float, nargs="*", default=list(REGRESSIONS), help="true regressions (released minus candidate sensitivity)")
    parser.add_argument("--couplings", type=float, nargs="*", default=list(COUPLINGS))
    parser.add_argument("--json-couplings", type=float, nargs="*", default=[0.5], help="couplings of the JSON design's rows")
    parser.add_argument("--only", choices=("paired", "json", "unpaired"), default=None)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    cells = population(args.cells)
    k = len(cells)
    t0 = time.perf_counter()
    print(f"{k} cells x {args.budget} samples per cell and model, rate {RATE}, margin {MARGIN}, confidence {CONFIDENCE}\n")
    if args.only in (None, "paired"):
        paired_tables(args, cells)
    if args.only in (None, "json"):
        json_tables(args, cells)
    if args.only in (None, "unpaired"):
        paired_tables(args, cells, unpaired=True)
    print(f"\n{time.perf_counter() - t0:.0f}s")


def paired_tables(args: argparse.Namespace, cells: tuple[Cell, ...], unpaired: bool = False) -> None:
    k = len(cells)
    if unpaired:
        print("\nUnpaired (CompareCheck, the released model's images on other seeds: the two models' own intervals)\n")
    else:
        print("Paired (CompareCheck, both models' images on the same seeds)\n")
    print("| coupling | true regression | runs | P(pass) | P(fail) | P(inconclusive) | mean samples/cell | mean images (both models) | candidate images |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in [0.0] if unpaired else args.couplings:
        for j, d in enumerate(args.regressions):
            row = paired_row(cells, args.budget, d, c, args.runs, args.seed + 100 * j + int(1000 * c) + 50 * unpaired, unpaired)
            m = float(np.mean(row.samples))
            print(f"| {c:g} | {d:g} | {args.runs} | {fmt(row.share('pass'))} | {fmt(row.share('fail'))} | {fmt(row.share('inconclusive'))} "
                  f"| {m:.0f} | {2 * k * m:.0f} | {k * m:.0f} |", flush=True)


def json_tables(args: argparse.Namespace, cells: tuple[Cell, ...]) -> None:
    k = len(cells)
    for spec in args.released:
        released = None if spec == "seq" else (args.budget if spec == "budget" else int(spec))
        what = ("its own sequential audit (min_sensitivity 0.5), estimate at its stop" if released is None
                else f"{released} per cell = {released * k} images")
        print(f"\nJSON baseline, released audited once: {what}; candidate alone, threshold = released estimate - {MARGIN}\n")
        print("| coupling | true regression | runs | released samples/cell | P(pass) | P(fail) | P(inconclusive) | mean samples/cell | mean candidate images | "
              "P(pass), released estimate > 1 SE low (lucky) | P(pass), > 1 SE high | share lucky |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for c in args.json_couplings:
            for j, d in enumerate(args.regressions):
                runs = args.json_runs if MARGIN < d < 0.05 else args.runs
                row = json_row(cells, args.budget, released, d, c, runs, args.seed + 7 + 100 * j + int(1000 * c))
                lucky = np.array(row.lucky)
                m = float(np.mean(row.samples))
                print(f"| {c:g} | {d:g} | {runs} | {np.mean(row.released):.0f} | {fmt(row.share('pass'))} | {fmt(row.share('fail'))} "
                      f"| {fmt(row.share('inconclusive'))} | {m:.0f} | {k * m:.0f} | {fmt(row.share('pass', lucky == -1))} (n={int((lucky == -1).sum())}) "
                      f"| {fmt(row.share('pass', lucky == 1))} | {float((lucky == -1).mean()):.3f} |", flush=True)


if __name__ == "__main__":
    main()
