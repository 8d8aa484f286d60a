"""Sequential sampling: grow a check's cells in rounds and stop as soon as its verdict is known;
then control false blocks across all items (multiple testing on the fail side).

Why the fail side only: a release ships only if every item passes, an intersection-union test,
so the chance of shipping a model with at least one truly bad check is already bounded by each
check's own alpha. What multiplies with the number of items is the chance of a false *block*;
Holm (default) or Benjamini-Hochberg on the fail-side p-values controls that.
"""

from __future__ import annotations

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

    A pass stops sampling at once; a fail stops early only when it holds at alpha / items (so it
    survives the fail-side correction across `items`), otherwise sampling goes on.
    """
    looks = schedule(check, first_round, sequential)
    interval: IntervalKind = "anytime" if sequential else "fixed"
    strict_alpha = (1 - confidence) / max(items, 1)
    for look, n in enumerate(looks):
        table = table_of(check, n)
        result = check.evaluate(table, confidence, interval=interval, looks=len(looks))
        if result.verdict == "pass" or look == len(looks) - 1:
            break
        if result.verdict == "fail":
            strict = check.decide(table, strict_alpha, interval, len(looks))
            if verdict(strict, check.threshold, check.direction) == "fail":
                break
    result = replace(result, samples=n, budget=check.samples)
    if result.verdict == "inconclusive":
        more = more_samples_note(result)
        result = replace(result, note=f"{result.note}; {more}" if result.note else more)
    return result, table


def more_samples_note(result: Result) -> str:
    """How many more samples per cell would likely decide an inconclusive item (1/sqrt(n) shrinkage)."""
    e = result.corrected if result.decided_on == "corrected" and result.corrected is not None else result.estimate
    distance = abs(e.value - result.threshold)
    # the half of the interval that crosses the threshold (intervals clipped at 0 or 1 are lopsided)
    half = e.high - e.value if result.threshold > e.value else e.value - e.low
    if not math.isfinite(e.value) or distance < 1e-9 or result.samples == 0:
        return "the estimate sits at the threshold: more samples are unlikely to decide it"
    needed = math.ceil(result.samples * (half / distance) ** 2)
    return f"about {max(needed - result.samples, 1)} more samples per cell would likely decide it"


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


def adjust(results: dict[str, Result], p_fail: dict[str, float], confidence: float, method: Correction) -> dict[str, Result]:
    """Fail-side multiple-testing control: a raw fail whose adjusted p exceeds alpha becomes inconclusive.

    Items that did not fail carry p = 1: step-down (Holm) and step-up (BH) rejections of the
    smaller p-values do not depend on the exact value of p-values above alpha.
    """
    if method == "none" or not results:
        return results
    from statsmodels.stats.multitest import multipletests

    names = list(results)
    alpha = 1 - confidence
    pvals = [p_fail.get(name, 1.0) for name in names]
    reject, adjusted, _, _ = multipletests(pvals, alpha=alpha, method="holm" if method == "holm" else "fdr_bh")
    out = {}
    for name, rej, p_adj in zip(names, reject, adjusted):
        result = replace(results[name], p_fail=float(p_adj))
        if result.verdict == "fail" and not rej:
            note = f"fails at the item's own level but not after {method} across {len(names)} items (adjusted p {p_adj:.3g})"
            result = replace(result, verdict="inconclusive", note=note)
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
