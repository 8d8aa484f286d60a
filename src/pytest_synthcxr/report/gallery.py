"""Which flagged images a report gallery shows: spread over cells and over the score range.

The judge of a strongly hallucinating model saturates: dozens of images score p = 1.000, and
the top 8 by score are often 8 images of one cell. A reader learns more from images of
different cells and from the whole range of flagged scores, down to the operating point.
Pure function of scores and cell keys; no pandas, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence


def spread_pick(scores: Sequence[float], cells: Sequence[str], k: int) -> list[int]:
    """Indices of k items (all when there are at most k), most confident first.

    Targets are k ranks evenly spaced over the items sorted by score (highest first, ties by
    position), so the first target is the most confident item and the last the least confident
    one. Each target takes the nearest-ranked item whose cell is not shown yet; once every cell
    is shown, cells may repeat. Deterministic: ties resolve by rank, then by position."""
    n = len(scores)
    if len(cells) != n:
        raise ValueError(f"spread_pick: {n} scores but {len(cells)} cells")
    if k <= 0 or n == 0:
        return []
    ranked = sorted(range(n), key=lambda i: (-scores[i], i))
    if n <= k:
        return ranked
    all_cells = set(cells)
    targets = [round(j * (n - 1) / (k - 1)) for j in range(k)] if k > 1 else [0]
    taken: set[int] = set()  # ranks
    seen: set[str] = set()
    for target in targets:
        if seen >= all_cells:  # every cell shown once: start a new round
            seen = set()
        best = None
        for distance in range(n):
            for rank in (target - distance, target + distance):
                if 0 <= rank < n and rank not in taken and cells[ranked[rank]] not in seen:
                    best = rank
                    break
            if best is not None:
                break
        if best is None:  # the unshown cells' items are all taken: any free rank, nearest first
            best = min((r for r in range(n) if r not in taken), key=lambda r: (abs(r - target), r))
        taken.add(best)
        seen.add(cells[ranked[best]])
    return [ranked[r] for r in sorted(taken)]
