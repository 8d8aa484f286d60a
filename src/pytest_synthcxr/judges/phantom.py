"""The phantom judge: a small CNN trained on rendered phantoms, scoring FINDINGS + PROBES.

Outputs are probabilities rescaled like torchxrayvision's ``op_norm``: each output's calibrated
operating point (chosen on held-out phantoms, maximising Youden's J) sits at exactly 0.5, so
"score > 0.5" means "the judge calls it positive" for every output.

Importing this module does not import torch; the network is built on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..vocabulary import FINDINGS, PROBES

#: Images per forward pass. Every pass has exactly this many images (the last one is padded), so a
#: score never depends on how the caller split its images into batches.
CHUNK = 32
WEIGHTS_NAME = "phantom_judge.safetensors"


def default_weights() -> Path:
    """Path of the weights file shipped inside the package."""
    ref = resources.files(__package__) / WEIGHTS_NAME
    return Path(str(ref))


def op_norm(p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Rescale probabilities so each output's threshold maps to 0.5 (piecewise linear, monotone)."""
    p = np.asarray(p, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    low = 0.5 * p / t
    high = 0.5 + 0.5 * (p - t) / (1.0 - t)
    return np.clip(np.where(p <= t, low, high), 0.0, 1.0)


class PhantomJudge:
    """Scores phantom images for FINDINGS + PROBES (see module docstring)."""

    name: str = "phantom"

    def __init__(self, weights: str | os.PathLike[str] | None = None, device: str = "cpu") -> None:
        self.weights_path = Path(weights) if weights is not None else default_weights()
        if not self.weights_path.is_file():
            raise FileNotFoundError(f"phantom judge weights not found: {self.weights_path}")
        self.device = device
        from safetensors import safe_open

        with safe_open(str(self.weights_path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
            self._thresholds = np.asarray(f.get_tensor("op_threshs"), dtype=np.float64)
        self.metadata: dict[str, str] = meta
        outputs = tuple(json.loads(meta.get("outputs", "[]")))
        expected = FINDINGS + PROBES
        if outputs != expected:
            raise ValueError(f"{self.weights_path}: outputs {outputs} differ from the vocabulary {expected}")
        if self._thresholds.shape != (len(outputs),) or not np.all((self._thresholds > 0) & (self._thresholds < 1)):
            raise ValueError(f"{self.weights_path}: op_threshs must be {len(outputs)} values in (0, 1)")
        self.outputs: tuple[str, ...] = outputs
        self._fingerprint: str | None = None
        self._net: Any = None

    # -- identity -------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) of the weights file: equal fingerprints, equal scores."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            with open(self.weights_path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    @property
    def thresholds(self) -> np.ndarray:
        """Calibrated operating points on the raw (sigmoid) probabilities, one per output."""
        return self._thresholds.copy()

    @property
    def settings(self) -> dict[str, Any]:
        """What the report shows about this judge."""
        out: dict[str, Any] = {"weights": str(self.weights_path), "device": self.device, "chunk": CHUNK}
        for key in ("seed", "training", "validation"):
            if key in self.metadata:
                try:
                    out[key] = json.loads(self.metadata[key])
                except ValueError:
                    out[key] = self.metadata[key]
        return out

    # -- scoring --------------------------------------------------------------------------------

    def _load(self) -> Any:
        if self._net is None:
            from safetensors.torch import load_file

            from .phantom_net import PhantomNet

            tensors = load_file(str(self.weights_path))
            tensors.pop("op_threshs")
            width = int(json.loads(self.metadata.get("architecture", "{}")).get("width", 16))
            net = PhantomNet(len(self.outputs), width=width)
            net.load_state_dict(tensors, strict=True)
            net.eval()
            self._net = net.to(self.device)
        return self._net

    def predict_raw(self, images: np.ndarray) -> np.ndarray:
        """Sigmoid probabilities before the operating-point rescaling, float64 (N, len(outputs))."""
        import torch

        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 3:
            raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
        net = self._load()
        n = len(images)
        out = np.empty((n, len(self.outputs)), dtype=np.float64)
        if n == 0:
            return out
        chunk = np.zeros((CHUNK, 1) + images.shape[1:], dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, n, CHUNK):
                part = images[start : start + CHUNK]
                chunk[: len(part), 0] = part
                chunk[len(part) :] = 0.0
                x = torch.from_numpy(chunk).to(self.device)
                probs = torch.sigmoid(net(x)).to("cpu", torch.float64).numpy()
                out[start : start + len(part)] = probs[: len(part)]
        return out

    def predict(self, images: np.ndarray) -> np.ndarray:
        """float64 (N, len(outputs)) scores in [0, 1]; > 0.5 means positive at the operating point."""
        return op_norm(self.predict_raw(images), self._thresholds)
