"""Which flagged images a report gallery shows: spread over cells and over the score range.

The judge of a strongly hallucinating model saturates: dozens of images score p = 1.000, and
the top 8 by score are often 8 images of one cell. A reader learns more from images of
different cells and from the whole range of flagged scores, down to the operating point.
Pure function of scores and cell keys; no pandas, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence


#: cost of showing a cell twice, in units of the flagged score range (a repeat wins only when
#: no unshown cell has an image within a quarter of the range of the target score)
REPEAT_COST = 0.25


def spread_pick(scores: Sequence[float], cells: Sequence[str], k: int) -> list[int]:
    """Indices of k items (all when there are at most k), most confident first.

    Target j of k sits at score max - j (max - min) / (k - 1), so the first target is the most
    confident item and the last the least confident one; each target takes the free item with
    the least cost |score - target| / (max - min), plus REPEAT_COST when its cell is already
    shown in this round (a round ends once every cell is shown). Ties (a saturated judge scores
    many images 1.000) go to the item whose rank among the scores is nearest the target's rank,
    then to the earlier position. Deterministic."""
    n = len(scores)
    if len(cells) != n:
        raise ValueError(f"spread_pick: {n} scores but {len(cells)} cells")
    if k <= 0 or n == 0:
        return []
    ranked = sorted(range(n), key=lambda i: (-scores[i], i))
    if n <= k:
        return ranked
    rank = {i: r for r, i in enumerate(ranked)}
    top, bottom = scores[ranked[0]], scores[ranked[-1]]
    width = (top - bottom) or 1.0
    all_cells = set(cells)
    taken: set[int] = set()
    seen: set[str] = set()
    for j in range(k):
        target = top - j * (top - bottom) / (k - 1) if k > 1 else top
        target_rank = j * (n - 1) / (k - 1) if k > 1 else 0.0
        if seen >= all_cells:  # every cell shown once: start a new round
            seen = set()
        best = min(
            (i for i in range(n) if i not in taken),
            key=lambda i: (abs(scores[i] - target) / width + (REPEAT_COST if cells[i] in seen else 0.0), abs(rank[i] - target_rank), i),
        )
        taken.add(best)
        seen.add(cells[best])
    return sorted(taken, key=lambda i: rank[i])
