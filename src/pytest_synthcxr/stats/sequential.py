"""Sequential sampling: grow a check's cells in rounds and stop as soon as its verdict is known;
then label fails across all items (multiple testing on the fail side).

The gate is an intersection-union test: a release ships only if every item passes at its own
level, so the chance of shipping a model with a truly bad item is bounded by that item's alpha
with no correction at all. A fail-side correction therefore never changes a verdict: every raw
fail stays a fail and blocks the release. What multiplies with the number of items is the
chance of a false *block*; the correction only labels each fail as significant family-wise or
not. Holm (default) bounds the chance that any fail labelled significant is false; Benjamini-
Hochberg ("bh") bounds the expected share of false fails among those labelled (the false-
discovery rate), not the chance of any. (Demoting fails to inconclusive, as an earlier version
did, let a truly failing model ship under the non-blocking inconclusive policies: issue 16.)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Literal, Protocol

from .intervals import Direction, Estimate, IntervalKind, verdict

Correction = Literal["holm", "bh", "none"]
#: a check's result (checks.base.Result, a frozen dataclass): read and copied with dataclasses.replace
Result = Any


class Check(Protocol):
    """What the sequential rule needs of a check (checks.base.Check has it); stats sits below checks."""

    nodename: str
    samples: int
    threshold: float
    direction: Direction

    def round_growth(self) -> float: ...

    def evaluate(self, table: Any, confidence: float, *, interval: IntervalKind = "fixed", looks: int = 1) -> Result: ...

    def decide(self, table: Any, alpha: float, interval: IntervalKind, looks: int) -> Estimate: ...


def rounds(first: int, budget: int, growth: float = 2.0) -> list[int]:
    """Samples per cell at each look: first, then each look `growth` times the last (rounded up),
    and the budget itself. growth 2: first, 2 first, 4 first, ..."""
    looks, n = [], max(1, min(first, budget))
    while n < budget:
        looks.append(n)
        n = max(n + 1, math.ceil(n * growth))
    return looks + [budget]


def schedule(check: Check, first_round: int, sequential: bool) -> list[int]:
    """The check's planned looks: rounds growing by the check's own factor (finer for checks
    decided by a confidence sequence, which may look as often as they like; doubling for checks
    that split alpha over their looks), or the whole budget at once with fixed sampling."""
    return rounds(first_round, check.samples, check.round_growth()) if sequential else [check.samples]


def run_check(
    check: Check, table_of: Callable[[Check, int], Any], confidence: float, *, sequential: bool, first_round: int, items: int = 1
) -> tuple[Result, Any]:
    """Evaluate a check at each planned look until it is decided; returns the result and its table.

    A pass stops sampling at once. A fail stops early when it also holds at alpha / items (so its
    label survives the fail-side correction across `items`); otherwise sampling goes on to sharpen
    the label, but the fail is kept: the intervals of every look hold together (confidence
    sequences, or alpha split over the planned looks), so a fail seen at one look is a fail of the
    item and a later look never turns it into a verdict that ships.
    """
    looks = schedule(check, first_round, sequential)
    interval: IntervalKind = "anytime" if sequential else "fixed"
    strict_alpha = (1 - confidence) / max(items, 1)
    first_fail: tuple[Result, Any, int] | None = None
    for look, n in enumerate(looks):
        table = table_of(check, n)
        result = check.evaluate(table, confidence, interval=interval, looks=len(looks))
        if result.verdict == "fail":
            first_fail = first_fail or (result, table, n)
            strict = check.decide(table, strict_alpha, interval, len(looks))
            if items <= 1 or verdict(strict, check.threshold, check.direction) == "fail":
                break
        if result.verdict == "pass" or look == len(looks) - 1:
            break
    if first_fail is not None and result.verdict != "fail":  # the fail stands (see above)
        result, table, n = first_fail
    result = replace(result, samples=n, budget=check.samples)
    if result.verdict == "inconclusive":
        more = more_samples_note(check, result, table, confidence, sequential=sequential, first_round=first_round)
        result = replace(result, note=f"{result.note}; {more}" if result.note else more)
    return result, table


#: the "more samples" note: runs of the simulation, the chance it reports, how far it looks
NOTE_RUNS = 30
NOTE_CHANCE = 0.8
NOTE_REACH = 4  # times the budget


def more_samples_note(check: Check, result: Result, table: Any, confidence: float, *, sequential: bool, first_round: int) -> str:
    """How many more samples per cell would decide an inconclusive item, from the rule that runs.

    Simulated: the item's data are resampled (whole seeds, so paired cells stay paired) to grow
    each cell past its n, and the item's own rule (its looks and intervals: sequential, or one
    fixed-sample look at a larger budget) runs on them, NOTE_RUNS times, seeded by the item's
    name. The note gives the smallest size at which it decides with probability NOTE_CHANCE if
    the truth were the current estimate, and says so. (The earlier 1/sqrt(n) rule assumed the
    estimate stays put and the interval keeps its shape: it said 122 where ~400 were needed.)"""
    n = result.samples
    grow = _grower(table, n)
    if grow is None or n == 0:
        return "more samples may decide it (no simulation for this item's data)"
    import zlib

    import numpy as np

    rng = np.random.default_rng(zlib.crc32(check.nodename.encode()))
    reach = NOTE_REACH * max(check.samples, n)
    plan = rounds(first_round, reach, check.round_growth()) if sequential else rounds(n, reach, 2.0)
    sizes = [size for size in plan if size > n]
    if not sizes:
        return "more samples may decide it"
    interval: IntervalKind = "anytime" if sequential else "fixed"
    looks = len(plan) if sequential else 1
    hits = np.zeros((NOTE_RUNS, len(sizes)), dtype=bool)  # run decided at (sequential: by) size j
    for run in range(NOTE_RUNS):
        extra = rng.integers(0, n, size=sizes[-1] - n)
        for j, size in enumerate(sizes):
            if check.evaluate(grow(extra[: size - n]), confidence, interval=interval, looks=looks).verdict != "inconclusive":
                hits[run, j] = True
                if sequential:  # the rule stops there
                    hits[run, j:] = True
                    break
    for j, size in enumerate(sizes):
        chance = float(hits[:, j].mean())
        if chance >= NOTE_CHANCE:
            return (
                f"about {size - n} more samples per cell ({size} in all) would decide it with probability about "
                f"{chance:.0%} if the truth were the current estimate (the item's own rule re-run on resampled data, {NOTE_RUNS} runs)"
            )
    best = float(hits.mean(axis=0).max())
    why = "it likely sits close to the threshold" if best < 0.5 else f"more than that is needed for {NOTE_CHANCE:.0%}"
    return (
        f"even {reach} samples per cell ({NOTE_REACH}x the budget) would decide it with probability only about {best:.0%} "
        f"if the truth were the current estimate (resampled, {NOTE_RUNS} runs): {why}"
    )


#: runs of the plan's rule-power simulation
POWER_RUNS = 400


@functools.lru_cache(maxsize=512)
def rate_rule_power(
    threshold: float, direction: Direction, truth: float, pooled: int, looks: tuple[int, ...], alpha: float, sequential: bool
) -> float:
    """Chance that the rule that runs decides a single pooled rate right (pass if `truth` is on
    the allowed side, else fail) within its looks: `pooled` cells of n samples each at each look,
    the rate's own intervals (the beta-binomial confidence sequence centred on the threshold, or
    Wilson at the one look of a fixed design). Seeded simulation, POWER_RUNS runs; cached per
    item shape (the plan asks once per item)."""
    import numpy as np

    from .intervals import proportion

    rng = np.random.default_rng(1616)
    allowed = truth <= threshold if direction == "max" else truth >= threshold
    interval: IntervalKind = "anytime" if sequential else "fixed"
    right = 0
    for _ in range(POWER_RUNS):
        draws = np.cumsum(rng.random(pooled * looks[-1]) < truth)
        outcome = "inconclusive"
        for n in looks:
            k = pooled * n
            outcome = verdict(proportion(int(draws[k - 1]), k, alpha, interval, threshold), threshold, direction)
            if outcome != "inconclusive":
                break
        right += outcome == ("pass" if allowed else "fail")
    return right / POWER_RUNS


def _grower(table: Any, n: int) -> Callable[[Any], Any] | None:
    """A function taking seed indices (0..n-1) and returning the table grown by those seeds'
    samples, renumbered from n on; None for tables it cannot grow (reference bundles)."""
    import numpy as np

    if isinstance(table, np.ndarray) and table.ndim == 1 and len(table) >= n:
        return lambda extra: np.concatenate([table[:n], table[:n][extra]])
    if not (hasattr(table, "groupby") and {"cell", "i"} <= set(getattr(table, "columns", ()))):
        return None
    import pandas as pd

    cells = [g.sort_values("i").iloc[:n] for _, g in table.groupby("cell", sort=False)]
    if any(len(g) < n for g in cells):
        return None

    def grow(extra: Any) -> Any:
        added = [g.iloc[extra].assign(i=np.arange(n, n + len(extra))) for g in cells]
        return pd.concat([table, *added], ignore_index=True)

    return grow


def fail_p_value(check: Check, table: Any, confidence: float, interval: IntervalKind, looks: int) -> float:
    """Smallest alpha at which the check's interval lies on the forbidden side (bisection in log alpha)."""

    def fails(alpha: float) -> bool:
        return verdict(check.decide(table, alpha, interval, looks), check.threshold, check.direction) == "fail"

    alpha = 1 - confidence
    if not fails(alpha):
        return 1.0
    low, high = math.log(1e-12), math.log(alpha)  # fails at high; find the boundary below it
    if fails(math.exp(low)):
        return 1e-12
    for _ in range(40):
        mid = (low + high) / 2
        if fails(math.exp(mid)):
            high = mid
        else:
            low = mid
    return math.exp(high)


def adjusted_p(pvalues: Sequence[float], method: Literal["holm", "bh"]) -> list[float]:
    """Holm's step-down or Benjamini-Hochberg's step-up adjusted p-values (the values of
    statsmodels' multipletests "holm" and "fdr_bh"; written out because multipletests runs a
    garbage collection on every call, most of the cost of a gate simulation)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out = [1.0] * m
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):  # (m - rank) p, made non-decreasing
            running = max(running, min(1.0, (m - rank) * pvalues[i]))
            out[i] = running
    else:
        running = 1.0
        for rank in range(m - 1, -1, -1):  # m p / (rank + 1), made non-increasing from the top
            i = order[rank]
            running = min(running, m * pvalues[i] / (rank + 1))
            out[i] = min(1.0, running)
    return out


def adjust(results: dict[str, Result], p_fail: dict[str, float], confidence: float, method: Correction) -> dict[str, Result]:
    """Fail-side multiple-testing labels: every fail stays a fail (it blocks the release); the
    correction only records whether it is significant family-wise (`familywise`) and its
    adjusted p-value. Verdicts never change here.

    Items that did not fail carry p = 1: step-down (Holm) and step-up (BH) rejections of the
    smaller p-values do not depend on the exact value of p-values above alpha.
    """
    if method == "none" or not results:
        return results
    names = list(results)
    alpha = 1 - confidence
    adjusted = adjusted_p([p_fail.get(name, 1.0) for name in names], method)
    reject = [p <= alpha for p in adjusted]
    what = {"holm": "Holm", "bh": "Benjamini-Hochberg (false-discovery rate)"}[method]
    out = {}
    for name, rej, p_adj in zip(names, reject, adjusted):
        result = replace(results[name], p_fail=float(p_adj))
        if result.verdict == "fail":
            result = replace(result, familywise=bool(rej))
            if not rej:
                note = (
                    f"fail, not significant family-wise: {what} across {len(names)} items gives adjusted p {p_adj:.3g}; "
                    "it still blocks the release"
                )
                result = replace(result, note=f"{result.note}; {note}" if result.note else note)
        out[name] = result
    return out


def run_all(
    checks: Sequence[Check],
    table_of: Callable[[Check, int], Any],
    confidence: float,
    *,
    sequential: bool,
    first_round: int,
    correction: Correction,
    on_error: Callable[[Check, BaseException], None],
) -> dict[str, Result]:
    raw: dict[str, Result] = {}
    p_fail: dict[str, float] = {}
    interval: IntervalKind = "anytime" if sequential else "fixed"
    for check in checks:
        try:
            result, table = run_check(
                check, table_of, confidence, sequential=sequential, first_round=first_round,
                items=len(checks) if correction != "none" else 1,
            )
        except Exception as exc:  # one broken check must not lose the others' finished work
            on_error(check, exc)
            continue
        raw[check.nodename] = result
        if result.verdict == "fail":
            looks = len(schedule(check, first_round, sequential))
            p_fail[check.nodename] = fail_p_value(check, table, confidence, interval, looks)
    return adjust(raw, p_fail, confidence, correction)
