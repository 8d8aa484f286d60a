"""The release gate: which verdicts block a release under the spec's `inconclusive` policy.

The gate is an intersection-union test: it ships only when no item blocks. A fail always blocks
(whatever its family-wise label); an inconclusive item blocks only under inconclusive = "fail".
So under "fail" a model with a truly bad item ships only if that item *passes*, which its own
interval allows with probability at most alpha; under "warn", "skip" or "xfail" it ships
whenever that item does not fail, with probability up to 1 - alpha / 2 for an item just past
its bound (docs/verdicts.md, tests/test_gate_error.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from .intervals import Outcome

Policy = Literal["fail", "xfail", "skip", "warn"]
#: the policies under which P(ship | an item truly past its bound) <= that item's alpha
SAFE_POLICIES: tuple[Policy, ...] = ("fail",)


def blocks(verdict: Outcome, policy: Policy) -> bool:
    """Whether one item's verdict blocks the release (pytest counts it failed)."""
    return verdict == "fail" or (verdict == "inconclusive" and policy == "fail")


def ships(verdicts: Iterable[Outcome], policy: Policy) -> bool:
    """Whether a run with these verdicts (and no errors) ships."""
    return not any(blocks(v, policy) for v in verdicts)


__all__ = ["SAFE_POLICIES", "Policy", "blocks", "ships"]
