"""Which (prompt, seed) an audit asks for, in one canonical order: the manifest template users
fill with images generated elsewhere, and the assignment of a folder model's manifest rows.

The order depends only on the checks (their cells and sample budgets) and the base seed: sample
index 0 of every cell (cells sorted by key), then index 1, ... up to each cell's largest budget.
A run that stops early (sequential sampling) asks for a prefix of it per cell, so its samples are
the same whatever the cache, process, worker or order of the items.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from .cells import Cell, derive_seed

TEMPLATE_COLUMNS = ("image", "prompt", "seed", "cell", "index", "of")


def requests(checks: Iterable[Any], base_seed: int) -> list[tuple[Cell, int, int]]:
    """(cell, sample index, seed) of every sample the checks may ask for, in canonical order
    (the same order ``python -m pytest_synthcxr.fill`` shards)."""
    from .plan import cell_budgets

    need = cell_budgets(list(checks))
    ordered = sorted(need, key=lambda c: c.key)
    most = max(need.values(), default=0)
    return [(cell, i, derive_seed(base_seed, cell.seed_key, i)) for i in range(most) for cell in ordered if i < need[cell]]


def template(rows: Sequence[tuple[Cell, int, int]]) -> str:
    """The manifest template as CSV text: fill the ``image`` column and it is a folder model's manifest."""
    counts: dict[str, int] = {}
    for cell, _, _ in rows:
        counts[cell.key] = counts.get(cell.key, 0) + 1
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TEMPLATE_COLUMNS)
    for cell, i, seed in sorted(rows, key=lambda r: (r[0].key, r[1])):
        writer.writerow(["", cell.prompt, seed, cell.key, i, counts[cell.key]])
    return out.getvalue()
