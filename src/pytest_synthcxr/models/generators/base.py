"""The generator protocol: prompts and per-image seeds in, grayscale images out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Generator(Protocol):
    name: str

    @property
    def fingerprint(self) -> str:
        """Identifies the weights/configuration (not the path): equal fingerprints, equal images."""
        ...

    @property
    def settings(self) -> dict[str, Any]:
        """Every generation setting used, for the report header."""
        ...

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        """float32 (N, H, W) in [0, 1]; image i depends only on (prompts[i], seeds[i])."""
        ...
