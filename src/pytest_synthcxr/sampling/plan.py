"""The sampling plan: what an audit may generate, known before anything is generated.

Beside each item's spec budget (samples per cell) the plan shows the samples per cell a
fixed-sample design needs to decide it with the spec's `power` when the truth lies `margin`
beyond the threshold (statsmodels' normal-approximation power; "-" where the check has no power
calculation), and the power of the rule that actually runs: the chance that the item's own looks
and intervals decide it right within its budget at that truth (simulated; single-rate items,
"-" for the others). A fixed-sample formula overstates a sequential rule's power: its
confidence sequences are wider than a fixed interval (issue 16: 45-72% real against 90% claimed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..stats.sequential import Check as SequentialCheck
from ..stats.sequential import schedule
from .cells import Cell


class Check(SequentialCheck, Protocol):
    """What the plan needs of a check (checks.base.Check has it); sampling sits below checks."""

    def cells(self) -> tuple[Cell, ...]: ...

    def power_samples(self, alpha: float, power: float, margin: float) -> int | None: ...


@dataclass(frozen=True)
class PlanRow:
    check: str
    cells: int
    budget: int  # most samples per cell
    looks: tuple[int, ...]  # samples per cell at each planned look
    #: samples per cell from the power calculation (None: no power calculation for this check)
    power: int | None = None
    #: chance the rule that runs decides right within the budget at margin beyond the threshold
    #: (the smaller side; None: not simulated for this check)
    rule_power: float | None = None

    @property
    def max_images(self) -> int:
        return self.cells * self.budget


def plan(
    checks: Sequence[Check],
    *,
    sequential: bool,
    first_round: int,
    alpha: float = 0.05,
    power: float = 0.9,
    margin: float = 0.05,
) -> tuple[list[PlanRow], int]:
    """One row per check, and the most distinct images the audit can need (cells are shared)."""
    rows = [
        PlanRow(
            c.nodename,
            len(set(c.cells())),
            c.samples,
            tuple(schedule(c, first_round, sequential)),
            c.power_samples(alpha, power, margin),
            _rule_power(c, alpha, margin, sequential, first_round),
        )
        for c in checks
    ]
    return rows, sum(cell_budgets(checks).values())


def _rule_power(check: Check, alpha: float, margin: float, sequential: bool, first_round: int) -> float | None:
    simulate = getattr(check, "rule_power", None)
    return None if simulate is None else simulate(alpha, margin, sequential=sequential, first_round=first_round)


def cell_budgets(checks: Sequence[Check]) -> dict[Cell, int]:
    """The most samples any of the checks can ask of each cell (cells are shared between checks)."""
    need: dict[Cell, int] = {}
    for check in checks:
        for cell in check.cells():
            need[cell] = max(need.get(cell, 0), check.samples)
    return need


def extra_lines(fuzz: Sequence[Check], reference_images: int | None) -> list[str]:
    """What the plan's table leaves out: fuzz items (they draw their own prompt pairs, outside the
    cells) and the reference set (scored by the judge once, and cached)."""
    lines = []
    for f in fuzz:
        examples = getattr(f, "max_examples", 0)
        lines.append(
            f"{f.nodename}: up to {examples} examples x 2 prompts x {f.samples} seeds = {2 * examples * f.samples} images, "
            "plus hypothesis's shrinking of a falsifying example (prompts it has seen cost nothing again)"
        )
    if reference_images:
        lines.append(f"reference set: {reference_images} images scored by the judge once (features and MS-SSIM where items need them), cached")
    return lines


def format_plan(
    rows: list[PlanRow], total: int, images_per_second: float | None = None, *, power: float = 0.9, margin: float = 0.05
) -> list[str]:
    width = max((len(r.check) for r in rows), default=10)
    lines = [f"{'item':<{width}}  cells  max/cell  power/cell  rule power  looks (samples per cell)"]
    lines += [
        f"{r.check:<{width}}  {r.cells:>5}  {r.budget:>8}  {'-' if r.power is None else r.power:>10}  "
        f"{'-' if r.rule_power is None else f'{r.rule_power:.0%}':>10}  {', '.join(map(str, r.looks))}"
        for r in rows
    ]
    short = [r.check for r in rows if r.power is not None and r.power > r.budget]
    summary = f"at most {total} distinct images (cells shared between items are generated once)"
    if images_per_second:
        summary += f", about {total / images_per_second / 60:.1f} min at {images_per_second:.1f} images/s"
    notes = [
        f"power/cell: samples per cell a fixed-sample design needs for power {power:g} at {margin:g} beyond the threshold",
        f"rule power: chance the rule that runs (its looks and intervals) decides right within max/cell when the truth lies "
        f"{margin:g} beyond the threshold (the smaller side; simulated, single-rate items)",
    ]
    if short:
        notes.append(f"{len(short)} item(s) with a budget below the power-based size may end inconclusive: {', '.join(short)}")
    return lines + notes + [summary]
