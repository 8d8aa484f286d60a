"""Re-deriving the built-in spec's bias bounds and budgets (issue 17): how often the rule that
runs passes phantom-fair and fails phantom-biased on each default bias item.

Two steps:
1. `rates`: the phantom judge's call rates on each preset's images, measured on rendered images
   (per requested finding: the judge's sensitivity where the finding was drawn, its false-call
   rate where it was omitted, and its call rate for the target finding on images asked for
   another finding or a normal study). With the preset's planted omission per prompt, they give
   every cell's true positive rate.
2. `simulate`: each cell's judge calls drawn as independent Bernoulli trials at that rate, and
   the real `BiasCheck` decided by the real `stats.sequential.run_check` (its looks, confidence
   sequences, budget) on the table they form, many times: P(pass), P(fail), images used.

    .venv/bin/python benchmarks/bias_defaults.py            # rates (about 3 min), then 200 runs per row
    .venv/bin/python benchmarks/bias_defaults.py --runs 50  # quicker, coarser

The only modelling step is in 1: a cell's calls are treated as exchangeable draws at its rate
(true of the phantom: its random draws are independent per seed); tests/test_bias_defaults.py
checks the simulated rates against a real audit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_synthcxr.checks.base import positives as _real_positives
from pytest_synthcxr.checks.bias import BiasCheck
from pytest_synthcxr.sampling.cells import Cell, derive_seed
from pytest_synthcxr.sampling.prompts import build_prompt, parse_prompt
from pytest_synthcxr.spec.schema import default_spec_text
from pytest_synthcxr.spec.vocabulary import FINDINGS

RATES_FILE = Path(__file__).with_name("bias_rates.json")


@dataclass(frozen=True)
class JudgeRates:
    """The phantom judge on one preset's images, for one target finding."""

    sensitivity: float  # called positive where the target was drawn
    omitted: float  # called positive where it was asked for but omitted (no trace drawn)
    other: dict[str, float]  # called positive on images asked for another finding ("normal": none), plain prompts
    other_named: dict[str, float]  # the same with sex and race in the prompt (phantom-biased draws fewer faint findings there)


#: the subgroup whose named prompts measure `other_named` (named prompts differ by subgroup only in
#: their omission, which `cell_rate` applies)
NAMED_AS = {"sex": "female", "race": "White"}


def measure_rates(preset: str, targets: tuple[str, ...], n: int = 160, seed: int = 4242) -> dict[str, JudgeRates]:
    """Render n images per requested finding (and normal), plain and named, and score them."""
    from pytest_synthcxr.models.generators.phantom import PhantomGenerator
    from pytest_synthcxr.models.judges.phantom import PhantomJudge

    gen, judge = PhantomGenerator(preset), PhantomJudge()
    calls: dict[tuple[str | None, bool], tuple[np.ndarray, list[Any]]] = {}
    for f, named in [(f, named) for named in (False, True) for f in (*FINDINGS, None)]:
        prompt = build_prompt(f, NAMED_AS if named else None)
        drawn, images = [], []
        for i in range(n):
            image, d = gen.draw(prompt, derive_seed(seed, prompt, i))
            images.append(image)
            drawn.append(d)
        calls[f, named] = (judge.predict(np.stack(images)) > 0.5, drawn)
    out = {}
    for t in targets:
        col = judge.outputs.index(t)
        own, drawn = calls[t, False]
        has = np.array([t in d.findings for d in drawn])
        normal, nd = calls[None, False]
        clean = np.array([t not in d.ghosts for d in nd])  # an omitted finding leaves no trace, not even a faint one
        out[t] = JudgeRates(
            sensitivity=float(own[has, col].mean()),
            omitted=float(normal[clean, col].mean()),
            other={("normal" if f is None else f): float(calls[f, False][0][:, col].mean()) for f in (*FINDINGS, None) if f != t},
            other_named={("normal" if f is None else f): float(calls[f, True][0][:, col].mean()) for f in (*FINDINGS, None) if f != t},
        )
    return out


def cell_rate(preset: str, cell: Cell, target: str, rates: dict[str, JudgeRates]) -> float:
    """True rate of judge calls positive for `target` in `cell` on `preset`."""
    from pytest_synthcxr.models.generators.phantom import PRESETS

    r = rates[target]
    if cell.finding != target:
        return (r.other_named if cell.named else r.other)[cell.finding or "normal"]
    omit = PRESETS[preset].omission_for(parse_prompt(cell.prompt))
    return (1 - omit) * r.sensitivity + omit * r.omitted


class Counts(dict):
    """A score table reduced to what the bias checks read: cell key -> (positives, images)."""


def _positives(table: Any, cells: Any, output: str) -> tuple[int, int]:
    if not isinstance(table, Counts):
        return _real_positives(table, cells, output)
    pairs = [table[c.key] for c in cells]
    return sum(c for c, _ in pairs), sum(n for _, n in pairs)


def simulate(
    check: BiasCheck, cell_rates: dict[str, float], runs: int, seed: int = 0, first_round: int = 16, confidence: float = 0.95, items: int = 1
) -> dict[str, float]:
    """stats.sequential.run_check on the check, `runs` times: shares of each verdict and mean
    samples per cell. The whole rule runs unchanged (looks, intervals, verdicts, stopping); only
    the score-table lookup (checks.base.positives) reads cumulative counts of Bernoulli calls
    instead of a table of images, which makes a 2,000-sample budget take milliseconds."""
    from pytest_synthcxr.checks import bias
    from pytest_synthcxr.stats import sequential

    # the "about N more samples" note of an inconclusive item re-runs the rule 30 times on
    # resampled data; it never changes the verdict, so the simulation skips it
    saved = bias.positives, sequential.more_samples_note
    bias.positives, sequential.more_samples_note = _positives, lambda *a, **k: ""
    try:
        return _simulate(check, cell_rates, runs, seed, first_round, confidence, items)
    finally:
        bias.positives, sequential.more_samples_note = saved


def _simulate(check: BiasCheck, cell_rates: dict[str, float], runs: int, seed: int, first_round: int, confidence: float, items: int) -> dict[str, float]:
    from pytest_synthcxr.stats.sequential import run_check

    rng = np.random.default_rng(seed)
    keys = [c.key for c in check.cells()]
    p = np.array([cell_rates[k] for k in keys])[:, None]
    counts = {"pass": 0, "fail": 0, "inconclusive": 0}
    used = []
    for _ in range(runs):
        cum = np.cumsum(rng.random((len(keys), check.samples)) < p, axis=1)

        def table_of(_check: Any, n: int, cum: np.ndarray = cum) -> Counts:
            return Counts({k: (int(cum[j, n - 1]), n) for j, k in enumerate(keys)})

        # items: a fail stops early only once it also holds at alpha / items (the Holm label), as
        # in a run of the whole spec; a pass stops at once
        result, _ = run_check(check, table_of, confidence, sequential=True, first_round=first_round, items=items)
        counts[result.verdict] += 1
        used.append(result.samples)
    return {**{k: v / runs for k, v in counts.items()}, "mean_samples": float(np.mean(used))}


def bias_checks(spec_text: str | None = None) -> list[BiasCheck]:
    """The bias items of a spec (default: the built-in one)."""
    return [c for c in all_checks(spec_text) if isinstance(c, BiasCheck)]


def all_checks(spec_text: str | None = None) -> list[Any]:
    import tomllib

    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.spec.schema import AuditSpec

    spec = AuditSpec.model_validate(tomllib.loads(spec_text or default_spec_text()))
    return build_checks(spec)


def truth(check: BiasCheck, cell_rates: dict[str, float]) -> float:
    """The item's statistic at the cells' true rates (subgroup rates pool their cells equally)."""
    def rate(g: tuple[tuple[str, str], ...], named: bool) -> float:
        return float(np.mean([cell_rates[c.key] for c in check._cells_of(g, named)]))

    if check.statistic == "prompt-effect":
        return max(abs(rate(g, True) - rate(g, False)) for g in check.subgroups)
    rates = [rate(g, check.named) for g in check.subgroups]
    if check.statistic == "gap":
        return max(rates) - min(rates)
    if check.statistic == "ratio":
        return min(rates) / max(rates)
    ref = rates[check.subgroups.index(check.reference)]
    if check.scale == "relative":
        return max(abs(r / ref - 1) for r in rates)
    return max(abs(r - ref) for r in rates)


def table(rates: dict[str, dict[str, JudgeRates]], runs: int, spec_text: str | None = None, seed: int = 0) -> list[str]:
    """Markdown rows: each bias item of the spec on each preset."""
    lines = [
        "| item | bound | budget/cell | preset | truth | P(pass) | P(fail) | P(inconclusive) | mean samples/cell | mean images |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    items = len(all_checks(spec_text))  # the Holm correction runs over every item of the spec
    for check in bias_checks(spec_text):
        for preset in ("phantom-fair", "phantom-biased"):
            cells = {c.key: cell_rate(preset, c, check.finding, rates[preset]) for c in check.cells()}
            out = simulate(check, cells, runs, seed, items=items)
            images = out["mean_samples"] * len(cells)
            lines.append(
                f"| {check.nodename} | {check.threshold:g} | {check.samples} | {preset} | {truth(check, cells):.3f} | "
                f"{out['pass']:.3f} | {out['fail']:.3f} | {out['inconclusive']:.3f} | {out['mean_samples']:.0f} | {images:.0f} |"
            )
    return lines


def count_rule(check: BiasCheck, cell_rates: dict[str, float], budget: int, runs: int, seed: int = 0, first_round: int = 16) -> dict[str, float]:
    """The same rule as `simulate` for a relative deviation, on counts instead of tables (fast
    enough for budgets of 10,000 samples per cell): at each of run_check's looks, every
    subgroup's count pooled over its cells, the item's own interval
    (stats.relative.largest_relative_deviation, anytime) and verdict; stop at a pass or a fail."""
    from pytest_synthcxr.checks.base import ANYTIME_GROWTH
    from pytest_synthcxr.stats.intervals import verdict
    from pytest_synthcxr.stats.relative import largest_relative_deviation
    from pytest_synthcxr.stats.sequential import rounds

    assert check.statistic == "deviation" and check.scale == "relative"
    rng = np.random.default_rng(seed)
    looks = rounds(first_round, budget, ANYTIME_GROWTH)
    ref = check.subgroups.index(check.reference)
    p = np.array([[cell_rates[c.key] for c in check._cells_of(g, check.named)] for g in check.subgroups])
    counts = {"pass": 0, "fail": 0, "inconclusive": 0}
    used = []
    for _ in range(runs):
        total, seen, outcome = np.zeros(p.shape, dtype=int), 0, "inconclusive"
        for n in looks:
            total += rng.binomial(n - seen, p)
            seen = n
            sums = total.sum(axis=1)
            estimate, _ = largest_relative_deviation(list(sums), [n * p.shape[1]] * len(sums), ref, 0.05, "anytime")
            outcome = verdict(estimate, check.threshold, check.direction)
            if outcome != "inconclusive":
                break
        counts[outcome] += 1
        used.append(seen)
    return {**{k: v / runs for k, v in counts.items()}, "mean_samples": float(np.mean(used))}


def relative_sr_table(rates: dict[str, dict[str, JudgeRates]], bound: float, budgets: tuple[int, ...], runs: int) -> list[str]:
    """The SR relative deviation (named prompts, Effusion, sex x race, built-in findings) by budget."""
    spec = default_spec_text().split("[[bias]]")[0] + (
        f'[[bias]]\nmetric = "sr"\nstatistic = "deviation"\nscale = "relative"\nfindings = ["Effusion"]\nprompt = "named"\nmax = {bound}\n'
    )
    check = bias_checks(spec)[0]
    lines = [
        "| bound | budget/cell | preset | truth | P(pass) | P(fail) | P(inconclusive) | mean samples/cell | mean images |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for budget in budgets:
        for preset in ("phantom-fair", "phantom-biased"):
            cells = {c.key: cell_rate(preset, c, check.finding, rates[preset]) for c in check.cells()}
            out = count_rule(check, cells, budget, runs)
            lines.append(
                f"| {bound:g} | {budget} | {preset} | {truth(check, cells):.3f} | {out['pass']:.3f} | {out['fail']:.3f} | "
                f"{out['inconclusive']:.3f} | {out['mean_samples']:.0f} | {out['mean_samples'] * len(cells):.0f} |"
            )
    return lines


def load_rates(presets: tuple[str, ...], targets: tuple[str, ...], n: int) -> dict[str, dict[str, JudgeRates]]:
    if RATES_FILE.exists():
        saved = json.loads(RATES_FILE.read_text())
        if all(p in saved and all(t in saved[p] for t in targets) for p in presets):
            return {p: {t: JudgeRates(**saved[p][t]) for t in targets} for p in presets}
    out = {p: measure_rates(p, targets, n) for p in presets}
    RATES_FILE.write_text(json.dumps({p: {t: vars(r) for t, r in v.items()} for p, v in out.items()}, indent=1, sort_keys=True) + "\n")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--n", type=int, default=160, help="rendered images per requested finding for the judge rates")
    parser.add_argument("--rates-only", action="store_true")
    parser.add_argument("--relative-sr", action="store_true", help="the SR relative deviation at bound 0.13 by budget (count-based rule)")
    parser.add_argument("--spec", help="a spec file whose bias items to simulate (default: the built-in spec)")
    args = parser.parse_args()
    t0 = time.time()
    rates = load_rates(("phantom-fair", "phantom-biased"), ("Effusion", "Cardiomegaly"), args.n)
    print(json.dumps({p: {t: vars(r) for t, r in v.items()} for p, v in rates.items()}, indent=1), f"({time.time() - t0:.0f} s)")
    if args.rates_only:
        sys.exit(0)
    if args.relative_sr:
        for line in relative_sr_table(rates, 0.13, (2000, 4000, 8000, 16000), args.runs):
            print(line, flush=True)
        sys.exit(0)
    spec_text = Path(args.spec).read_text() if args.spec else None
    for line in table(rates, args.runs, spec_text):
        print(line, flush=True)
