"""Score-table helpers shared by the report's main and reference sections."""

from __future__ import annotations

from typing import Any

#: entropy histogram: ENTROPY_BINS equal bins over [0, 1] bit
ENTROPY_BINS = 20


def without_aged_cells(table: Any) -> Any:
    """The rows of sex x race cells: prompts naming an age (demographic-fidelity cells) are other
    populations, left out of the heatmap and the synthetic-vs-reference section alike."""
    return table[table["age"] == ""] if "age" in table else table
