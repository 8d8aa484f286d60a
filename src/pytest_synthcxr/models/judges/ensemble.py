"""Several judges as one: a disease-judge ensemble and/or probe judges side by side.

``outputs`` is the union of the members' outputs, in member order. An output scored by one
member keeps that member's score; an output scored by several is their mean calibrated
probability (each member's operating point already at 0.5), and gains a companion output
``disagreement:<name>``: the ensemble's mutual information in bits, H(mean p) - mean H(p_k)
(0 when all members agree, up to 1 when they split between certain yes and certain no), which
separates the judges' disagreement from their shared uncertainty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import as_images

DISAGREEMENT = "disagreement:"


def disagreement_output(name: str) -> str:
    return DISAGREEMENT + name


def _entropy_bits(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def panel_outputs(member_outputs: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The outputs a panel of judges with these outputs exposes (no judge needs to be built)."""
    seen: dict[str, int] = {}
    for outputs in member_outputs:
        for o in dict.fromkeys(outputs):
            seen[o] = seen.get(o, 0) + 1
    return tuple(seen) + tuple(disagreement_output(o) for o, k in seen.items() if k > 1)


class JudgePanel:
    def __init__(self, members: Sequence[Any]) -> None:
        if not members:
            raise ValueError("a judge panel needs at least one judge")
        self.members = list(members)
        self.name = "+".join(m.name for m in self.members)
        self.outputs: tuple[str, ...] = panel_outputs([m.outputs for m in self.members])
        self.shared: tuple[str, ...] = tuple(o[len(DISAGREEMENT) :] for o in self.outputs if o.startswith(DISAGREEMENT))

    @property
    def fingerprint(self) -> str:
        """The members' fingerprints, readable (each xrv judge's carries its weight file's SHA-256)."""
        return " + ".join(f"{m.name}={m.fingerprint}" for m in self.members)

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "kind": "panel",
            "members": {m.name: m.settings for m in self.members},
            "ensembled_outputs": list(self.shared),
            "combination": "mean calibrated probability; disagreement = mutual information (bits)",
        }

    def predict_members(self, images: np.ndarray) -> list[np.ndarray]:
        images = as_images(images)
        return [np.asarray(m.predict(images), dtype=np.float64) for m in self.members]

    def predict(self, images: np.ndarray) -> np.ndarray:
        per_member = self.predict_members(images)
        n = len(images)
        columns: dict[str, list[np.ndarray]] = {}
        for member, scores in zip(self.members, per_member):
            for j, o in enumerate(member.outputs):
                columns.setdefault(o, []).append(scores[:, j])
        out = np.empty((n, len(self.outputs)), dtype=np.float64)
        index = {o: j for j, o in enumerate(self.outputs)}
        for o, cols in columns.items():
            stack = np.stack(cols, axis=1)  # (n, k)
            mean = stack.mean(axis=1)
            out[:, index[o]] = mean
            if len(cols) > 1:
                mi = _entropy_bits(mean) - _entropy_bits(stack).mean(axis=1)
                out[:, index[disagreement_output(o)]] = np.clip(mi, 0.0, 1.0)
        return out
