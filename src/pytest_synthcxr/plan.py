"""The sampling plan: what an audit may generate, known before anything is generated."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .checks.base import Check
from .sequential import rounds


@dataclass(frozen=True)
class PlanRow:
    check: str
    cells: int
    budget: int  # most samples per cell
    looks: tuple[int, ...]  # samples per cell at each planned look

    @property
    def max_images(self) -> int:
        return self.cells * self.budget


def plan(checks: Sequence[Check], *, sequential: bool, first_round: int) -> tuple[list[PlanRow], int]:
    """One row per check, and the most distinct images the audit can need (cells are shared)."""
    rows = [
        PlanRow(c.nodename, len(set(c.cells())), c.samples, tuple(rounds(first_round, c.samples) if sequential else [c.samples]))
        for c in checks
    ]
    per_cell: dict[str, int] = {}
    for check in checks:
        for cell in check.cells():
            per_cell[cell.key] = max(per_cell.get(cell.key, 0), check.samples)
    return rows, sum(per_cell.values())


def format_plan(rows: list[PlanRow], total: int, images_per_second: float | None = None) -> list[str]:
    width = max((len(r.check) for r in rows), default=10)
    lines = [f"{'item':<{width}}  cells  max/cell  looks (samples per cell)"]
    lines += [f"{r.check:<{width}}  {r.cells:>5}  {r.budget:>8}  {', '.join(map(str, r.looks))}" for r in rows]
    summary = f"at most {total} distinct images (cells shared between items are generated once)"
    if images_per_second:
        summary += f", about {total / images_per_second / 60:.1f} min at {images_per_second:.1f} images/s"
    return lines + [summary]
