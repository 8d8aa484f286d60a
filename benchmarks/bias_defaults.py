"""Re-deriving the built-in spec's bias bounds and budgets (issue 17): how often the rule that
runs passes phantom-fair and fails phantom-biased on each default bias item, and what pairing
subgroups on shared seeds saves against the unpaired design.

Two steps:
1. `rates`: the phantom judge's call rates on each preset's images, measured on rendered images
   (per requested finding: the judge's sensitivity where the finding was drawn, its false-call
   rate where it was omitted, and its call rate for the target finding on images asked for
   another finding or a normal study). With the preset's planted omission per prompt (and, for
   plain prompts, per sex the phantom draws), they give every cell's true positive rate.
2. `simulate`: a real score table (the columns the bias check reads: cell, i, seed, valid,
   seeded, p:<finding>, p:sex:female, p:sex:male) drawn per run with the phantom's same-seed
   coupling, and the real `BiasCheck` decided by the real `stats.sequential.run_check` (its
   looks, confidence sequences, budget, Holm label) on it, many times: P(pass), P(fail), images.

How a table is drawn (`draw_table`): per seed (a paired cell's seed depends on its finding and
sample index only) a coupling coin with probability `coupling` says whether every cell on that
seed shares one uniform u (and one drawn sex, for plain prompts) or each draws its own, as the
phantom's `PhantomFaults.coupling` does; a cell's outcome is u < its true rate (comonotone when
shared). The plain cell's image sex is a fair coin and its rate depends on it (phantom-biased
omits more for women); the attribute judge reads it back exactly (phantom-attributes, accuracy
1.0). The unpaired design gives every cell its own seeds: then no draw is shared (the coupling
does not matter) and the check's `seed` columns differ, so it decides with the unpaired method.

    .venv/bin/python benchmarks/bias_defaults.py                 # Table B: built-in items, 200 runs per row
    .venv/bin/python benchmarks/bias_defaults.py --paired-table  # Table A: paired vs unpaired by coupling
    .venv/bin/python benchmarks/bias_defaults.py --rates-only    # (re)measure bias_rates.json (delete it first)

The only modelling steps: a cell's calls at one seed are u < rate (the phantom judge's sensitivity
is 1.0 on both presets, so an image's call follows its omission draw), and seeds are independent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pytest_synthcxr.checks.bias import BiasCheck
from pytest_synthcxr.sampling.cells import Cell, derive_seed
from pytest_synthcxr.sampling.prompts import build_prompt, parse_prompt
from pytest_synthcxr.spec.schema import default_spec_text
from pytest_synthcxr.spec.vocabulary import FINDINGS, SEXES

RATES_FILE = Path(__file__).with_name("bias_rates.json")
PRESETS_SIMULATED = ("phantom-fair", "phantom-biased")
COUPLINGS = (0.0, 0.25, 0.5, 0.75, 1.0)


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


def cell_rate(preset: str, cell: Cell, target: str, rates: dict[str, JudgeRates], sex: str | None = None) -> float:
    """True rate of judge calls positive for `target` in `cell` on `preset`; for a plain prompt,
    on images the phantom drew as `sex` (None: the plain omission whatever the sex)."""
    from pytest_synthcxr.models.generators.phantom import PRESETS

    r = rates[target]
    if cell.finding != target:
        return (r.other_named if cell.named else r.other)[cell.finding or "normal"]
    omit = PRESETS[preset].omission_for(parse_prompt(cell.prompt), sex)
    return (1 - omit) * r.sensitivity + omit * r.omitted


def cell_rates_by_sex(preset: str, check: BiasCheck, rates: dict[str, JudgeRates]) -> dict[str, tuple[float, float]]:
    """Each cell's true rate on images of each sex, (female, male): a named cell's sex is the one
    its prompt names, so both entries are its rate; a plain cell's depends on the drawn sex."""
    out = {}
    for c in check.cells():
        if c.named:
            r = cell_rate(preset, c, check.finding, rates)
            out[c.key] = (r, r)
        else:
            out[c.key] = (cell_rate(preset, c, check.finding, rates, "female"), cell_rate(preset, c, check.finding, rates, "male"))
    return out


def draw_table(check: BiasCheck, rates: dict[str, tuple[float, float]], budget: int, rng: np.random.Generator, coupling: float, paired: bool = True) -> pd.DataFrame:
    """One run's score table for the check's cells, `budget` samples each, rows ordered by sample
    index (so the first n * cells rows are the table at n samples per cell)."""
    cells = check.cells()
    k = len(cells)
    groups = sorted({c.seed_key for c in cells}) if paired else [c.key for c in cells]
    group_of = np.array([groups.index(c.seed_key if paired else c.key) for c in cells])
    coin = rng.random((len(groups), budget)) < coupling  # per seed: share every draw, or not
    shared_u, shared_sex = rng.random((len(groups), budget)), rng.random((len(groups), budget)) < 0.5
    own_u, own_sex = rng.random((k, budget)), rng.random((k, budget)) < 0.5
    share = coin[group_of] if paired else np.zeros((k, budget), dtype=bool)
    u = np.where(share, shared_u[group_of], own_u)
    drawn_female = np.where(share, shared_sex[group_of], own_sex)
    named_sex = np.array([dict(c.subgroup).get("sex") if c.named else None for c in cells], dtype=object)
    female = np.where(
        np.array([s is None for s in named_sex])[:, None], drawn_female, np.array([s == "female" for s in named_sex])[:, None]
    )
    p = np.array([rates[c.key] for c in cells])  # (k, 2): female, male
    rate = np.where(female, p[:, :1], p[:, 1:])
    calls = (u < rate).astype(float)
    seed_base = 1_000_003 * (group_of + 1)  # same seeds for cells of one finding (paired), else per cell
    seeds = seed_base[None, :] + np.arange(budget)[:, None]
    # rows: sample index major, cell minor
    return pd.DataFrame({
        "cell": pd.Categorical(np.tile([c.key for c in cells], budget)),
        "i": np.repeat(np.arange(budget), k),
        "seed": seeds.reshape(-1),
        "valid": True,
        "seeded": True,
        f"p:{check.finding}": calls.T.reshape(-1),
        "p:sex:female": female.T.reshape(-1).astype(float),
        "p:sex:male": (~female).T.reshape(-1).astype(float),
    })


def simulate(
    check: BiasCheck, rates: dict[str, tuple[float, float]], runs: int, seed: int = 0, coupling: float = 0.5, paired: bool = True,
    first_round: int = 16, confidence: float = 0.95, items: int = 1,
) -> dict[str, Any]:
    """stats.sequential.run_check on the check, `runs` times, each on a freshly drawn score table:
    shares of each verdict, mean samples per cell and images, and each run's (verdict, samples)."""
    from pytest_synthcxr.stats import sequential

    # the "about N more samples" note of an inconclusive item re-runs the rule 30 times on
    # resampled data; it never changes the verdict, so the simulation skips it
    saved = sequential.more_samples_note
    sequential.more_samples_note = lambda *a, **k: ""
    try:
        rng = np.random.default_rng([seed, zlib.crc32(check.nodename.encode()), int(coupling * 100), int(paired)])
        counts = {"pass": 0, "fail": 0, "inconclusive": 0}
        used, each = [], []
        k = len(check.cells())
        for _ in range(runs):
            full = draw_table(check, rates, check.samples, rng, coupling, paired)

            def table_of(_check: Any, n: int, full: pd.DataFrame = full) -> pd.DataFrame:
                return full.iloc[: n * k]

            # items: a fail stops early only once it also holds at alpha / items (the Holm
            # label), as in a run of the whole spec; a pass stops at once
            result, _ = sequential.run_check(check, table_of, confidence, sequential=True, first_round=first_round, items=items)
            counts[result.verdict] += 1
            used.append(result.samples)
            each.append((result.verdict, result.samples))
    finally:
        sequential.more_samples_note = saved
    mean = float(np.mean(used))
    return {**{v: c / runs for v, c in counts.items()}, "mean_samples": mean, "mean_images": mean * k, "runs": each}


def bias_checks(spec_text: str | None = None) -> list[BiasCheck]:
    """The bias items of a spec (default: the built-in one)."""
    return [c for c in all_checks(spec_text) if isinstance(c, BiasCheck)]


def all_checks(spec_text: str | None = None) -> list[Any]:
    import tomllib

    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.spec.schema import AuditSpec

    spec = AuditSpec.model_validate(tomllib.loads(spec_text or default_spec_text()))
    return build_checks(spec)


def truth(check: BiasCheck, rates: dict[str, tuple[float, float]]) -> float:
    """The item's statistic at the cells' true rates (subgroup rates pool their cells equally;
    a plain cell's rate over both sexes is their mean: the phantom draws sex 50/50)."""
    def rate(g: tuple[tuple[str, str], ...], named: bool) -> float:
        return float(np.mean([np.mean(rates[c.key]) for c in check._cells_of(g, named)]))

    if check.statistic == "prompt-effect":
        return max(abs(rate(g, True) - rate(g, False)) for g in check.subgroups)
    if check.perceived:  # plain prompts, grouped by the (exactly read) drawn sex
        rs = [float(np.mean([rates[c.key][SEXES.index(dict(g)["sex"]) if "sex" in dict(g) else 0] for c in check._cells_of((), False)])) for g in check.subgroups]
        return max(rs) - min(rs)
    rs = [rate(g, check.named) for g in check.subgroups]
    if check.statistic == "gap":
        return max(rs) - min(rs)
    if check.statistic == "ratio":
        return min(rs) / max(rs)
    ref = rs[check.subgroups.index(check.reference)]
    if check.scale == "relative":
        return max(abs(r / ref - 1) for r in rs)
    return max(abs(r - ref) for r in rs)


def load_rates(presets: tuple[str, ...] = PRESETS_SIMULATED, targets: tuple[str, ...] = ("Effusion", "Cardiomegaly"), n: int = 240) -> dict[str, dict[str, JudgeRates]]:
    if RATES_FILE.exists():
        saved = json.loads(RATES_FILE.read_text())
        if all(p in saved and all(t in saved[p] for t in targets) for p in presets):
            return {p: {t: JudgeRates(**saved[p][t]) for t in targets} for p in presets}
    out = {p: measure_rates(p, targets, n) for p in presets}
    RATES_FILE.write_text(json.dumps({p: {t: vars(r) for t, r in v.items()} for p, v in out.items()}, indent=1, sort_keys=True) + "\n")
    return out


def table_b(rates: dict[str, dict[str, JudgeRates]], runs: int, spec_text: str | None = None, coupling: float = 0.5, seed: int = 0) -> list[str]:
    """Markdown rows: each bias item of the spec on each preset, paired design."""
    lines = [
        "| item | bound | budget/cell | preset | truth | P(pass) | P(fail) | P(inconclusive) | mean samples/cell | mean images |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    items = len(all_checks(spec_text))  # the Holm label runs over every item of the spec
    for check in bias_checks(spec_text):
        for preset in PRESETS_SIMULATED:
            r = cell_rates_by_sex(preset, check, rates[preset])
            out = simulate(check, r, runs, seed, coupling, True, items=items)
            lines.append(
                f"| {check.nodename} | {check.threshold:g} | {check.samples} | {preset} | {truth(check, r):.3f} | "
                f"{out['pass']:.3f} | {out['fail']:.3f} | {out['inconclusive']:.3f} | {out['mean_samples']:.0f} | {out['mean_images']:.0f} |"
            )
            print(lines[-1], flush=True)
    return lines


def table_a(rates: dict[str, dict[str, JudgeRates]], runs: int, spec_text: str | None = None, seed: int = 0, budget: int | None = None) -> list[str]:
    """Markdown rows: the named TPR-gap items, paired vs unpaired, by coupling, on both presets
    (`budget`: samples per cell instead of the spec's). The unpaired design shares no draw
    whatever the coupling, so it runs once per item and preset."""
    lines = [
        "| item | preset | coupling | paired: images | P(pass) | P(fail) | unpaired: images | P(pass) | P(fail) | paired / unpaired images |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    items = len(all_checks(spec_text))
    gaps = [replace(c, samples=budget or c.samples) for c in bias_checks(spec_text) if c.statistic == "gap" and c.named]
    for check in gaps:
        for preset in PRESETS_SIMULATED:
            r = cell_rates_by_sex(preset, check, rates[preset])
            un = simulate(check, r, runs, seed, 0.0, False, items=items)
            for coupling in COUPLINGS:
                pa = simulate(check, r, runs, seed, coupling, True, items=items)
                lines.append(
                    f"| {check.nodename} | {preset} | {coupling:g} | {pa['mean_images']:.0f} | {pa['pass']:.3f} | {pa['fail']:.3f} | "
                    f"{un['mean_images']:.0f} | {un['pass']:.3f} | {un['fail']:.3f} | {pa['mean_images'] / un['mean_images']:.2f} |"
                )
                print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--n", type=int, default=240, help="rendered images per requested finding for the judge rates")
    parser.add_argument("--rates-only", action="store_true")
    parser.add_argument("--paired-table", action="store_true", help="Table A: paired vs unpaired on the named TPR gaps, by coupling")
    parser.add_argument("--budget", type=int, help="Table A: samples per cell (default: the spec's)")
    parser.add_argument("--spec", help="a spec file whose bias items to simulate (default: the built-in spec)")
    args = parser.parse_args()
    t0 = time.time()
    rates = load_rates(n=args.n)
    if args.rates_only:
        print(json.dumps({p: {t: vars(r) for t, r in v.items()} for p, v in rates.items()}, indent=1))
        sys.exit(0)
    spec_text = Path(args.spec).read_text() if args.spec else None
    if args.paired_table:
        table_a(rates, args.runs, spec_text, budget=args.budget)
    else:
        table_b(rates, args.runs, spec_text)
    print(f"({time.time() - t0:.0f} s)")
