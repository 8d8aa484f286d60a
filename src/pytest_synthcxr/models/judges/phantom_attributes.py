"""The phantom attribute judge: sex and age read from rendered phantoms, for demographic-fidelity
items in the phantom world (the role torchxrayvision's sex and age models play for real images).

Outputs: ``sex:male``, ``sex:female`` (probabilities, summing to 1) and ``age`` (years). The
phantom draws no race, so there is no race output. Trained by scripts/train_phantom_attributes.py
on phantoms aged 25 to 85; the file's metadata records its validation accuracy and age error.

Importing this module does not import torch; the network is built on first use.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .base import as_images
from .phantom import PhantomNetFile, PhantomWeightsError, run_padded

WEIGHTS_NAME = "phantom_attributes.safetensors"
FORMAT = "pytest-synthcxr phantom attribute judge v1"
OUTPUTS: tuple[str, ...] = ("sex:male", "sex:female", "age")
#: the network's age output is (age - AGE_CENTER) / AGE_SCALE
AGE_CENTER, AGE_SCALE = 55.0, 20.0


def default_weights() -> Path:
    return Path(str(resources.files(__package__) / WEIGHTS_NAME))


class PhantomAttributeJudge(PhantomNetFile):
    name: str = "phantom-attributes"
    outputs: tuple[str, ...] = OUTPUTS
    net_outputs = 2  # logit of female, (age - AGE_CENTER) / AGE_SCALE

    def __init__(self, weights: str | os.PathLike[str] | None = None, device: str = "cpu", *, name: str | None = None) -> None:
        self.name = name or self.name
        super().__init__(weights, device, default_weights())

    def _read(self, f: Any) -> None:
        if self.metadata.get("format") != FORMAT or tuple(json.loads(self.metadata.get("outputs", "[]"))) != OUTPUTS:
            raise PhantomWeightsError(f"synthcxr: judge {self.name!r}: {self.weights_path} is not a phantom attribute judge ({FORMAT})")

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "kind": "phantom-attributes",
            "weights": str(self.weights_path),
            "sha256": self.fingerprint,
            "outputs": list(OUTPUTS),
            "preprocessing": "average-pooled to 112 x 112 (2 x 2 blocks for 224 x 224), values in [0, 1]",
            "device": self.device,
            **self._metadata_settings(("seed", "age", "validation")),
        }

    def predict(self, images: np.ndarray) -> np.ndarray:
        """float64 (N, 3): P(male), P(female), age in years."""
        raw = run_padded(self._load(), as_images(images), self.device, 2, lambda y: y)
        female = 1.0 / (1.0 + np.exp(-raw[:, 0]))
        return np.column_stack([1.0 - female, female, AGE_CENTER + AGE_SCALE * raw[:, 1]])


__all__ = ["AGE_CENTER", "AGE_SCALE", "FORMAT", "OUTPUTS", "PhantomAttributeJudge", "default_weights"]
