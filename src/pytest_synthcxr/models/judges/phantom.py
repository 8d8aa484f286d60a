"""The phantom judge: a small CNN trained on rendered phantoms, scoring FINDINGS + PROBES.

Outputs are probabilities rescaled like torchxrayvision's ``op_norm``: each output's calibrated
operating point (chosen on held-out phantoms, maximising Youden's J) sits at exactly 0.5, so
"score > 0.5" means "the judge calls it positive" for every output.

Importing this module does not import torch; the network is built on first use.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ...spec.vocabulary import FINDINGS, PROBES
from .base import JudgeError, as_images, file_sha256, op_norm

__all__ = ["CHUNK", "PhantomJudge", "PhantomNetFile", "PhantomWeightsError", "default_weights", "op_norm", "run_padded"]

#: Images per forward pass. Every pass has exactly this many images (the last one is padded), so a
#: score never depends on how the caller split its images into batches.
CHUNK = 32
WEIGHTS_NAME = "phantom_judge.safetensors"


def run_padded(net: Any, images: np.ndarray, device: str, width: int, head: Any) -> np.ndarray:
    """`head(net(x))` for every image, float64 (N, width), in passes of exactly CHUNK images (the
    last one padded with blank images), so a score never depends on how images were batched."""
    import torch

    n = len(images)
    out = np.empty((n, width), dtype=np.float64)
    if n == 0:
        return out
    chunk = np.zeros((CHUNK, 1) + images.shape[1:], dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, n, CHUNK):
            part = images[start : start + CHUNK]
            chunk[: len(part), 0] = part
            chunk[len(part) :] = 0.0
            y = head(net(torch.from_numpy(chunk).to(device))).to("cpu", torch.float64).numpy()
            out[start : start + len(part)] = y[: len(part)]
    return out


class PhantomWeightsError(JudgeError, ValueError):
    """The weights file does not fit the phantom judge (outputs, thresholds)."""


class PhantomWeightsMissing(JudgeError, FileNotFoundError):
    """The weights file does not exist."""


def default_weights() -> Path:
    """Path of the weights file shipped inside the package."""
    ref = resources.files(__package__) / WEIGHTS_NAME
    return Path(str(ref))


class PhantomNetFile:
    """A PhantomNet weights file (safetensors with JSON metadata): what the phantom judges share:
    where the file is, its fingerprint, the network it holds (built on first use) and the
    metadata the report shows. Subclasses check what the file holds in `_read`."""

    name: str = "phantom"

    def __init__(self, weights: str | os.PathLike[str] | None, device: str, default: Path) -> None:
        self.weights_path = Path(weights) if weights is not None else default
        if not self.weights_path.is_file():
            raise PhantomWeightsMissing(f"synthcxr: judge {self.name!r}: weights file not found: {self.weights_path}")
        self.device = device
        from safetensors import safe_open

        with safe_open(str(self.weights_path), framework="numpy") as f:
            self.metadata: dict[str, str] = dict(f.metadata() or {})
            self._read(f)
        self._fingerprint: str | None = None
        self._net: Any = None

    def _read(self, f: Any) -> None:
        """Check the open file's metadata and tensors; raise PhantomWeightsError if it does not fit."""

    @property
    def net_outputs(self) -> int:
        """Width of the network's last layer."""
        raise NotImplementedError

    # -- identity -------------------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) of the weights file: equal fingerprints, equal scores."""
        if self._fingerprint is None:
            self._fingerprint = file_sha256(self.weights_path)
        return self._fingerprint

    def _metadata_settings(self, keys: tuple[str, ...]) -> dict[str, Any]:
        """The metadata entries `keys` (JSON where they parse), for the report."""
        out: dict[str, Any] = {}
        for key in keys:
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

            if self.device == "auto":  # resolved only now: a run served by the cache never imports torch
                from ..device import resolve_device

                self.device = resolve_device("auto")

            from .phantom_net import PhantomNet

            tensors = load_file(str(self.weights_path))
            tensors.pop("op_threshs", None)  # the disease judge's operating points: not a layer
            width = int(json.loads(self.metadata.get("architecture", "{}")).get("width", 16))
            net = PhantomNet(self.net_outputs, width=width)
            net.load_state_dict(tensors, strict=True)
            net.eval()
            self._net = net.to(self.device)
        return self._net


class PhantomJudge(PhantomNetFile):
    """Scores phantom images for FINDINGS + PROBES (see module docstring)."""

    name: str = "phantom"

    def __init__(self, weights: str | os.PathLike[str] | None = None, device: str = "cpu") -> None:
        super().__init__(weights, device, default_weights())

    def _read(self, f: Any) -> None:
        self._thresholds = np.asarray(f.get_tensor("op_threshs"), dtype=np.float64)
        outputs = tuple(json.loads(self.metadata.get("outputs", "[]")))
        expected = FINDINGS + PROBES
        if outputs != expected:
            raise PhantomWeightsError(
                f"synthcxr: judge 'phantom': {self.weights_path}: outputs {list(outputs)} differ from {list(expected)}"
            )
        if self._thresholds.shape != (len(outputs),) or not np.all((self._thresholds > 0) & (self._thresholds < 1)):
            raise PhantomWeightsError(
                f"synthcxr: judge 'phantom': {self.weights_path}: op_threshs must be {len(outputs)} values in (0, 1)"
            )
        self.outputs: tuple[str, ...] = outputs

    @property
    def net_outputs(self) -> int:
        return len(self.outputs)

    @property
    def thresholds(self) -> np.ndarray:
        """Calibrated operating points on the raw (sigmoid) probabilities, one per output."""
        return self._thresholds.copy()

    @property
    def settings(self) -> dict[str, Any]:
        """What the report shows about this judge."""
        return {
            "weights": str(self.weights_path),
            "sha256": self.fingerprint,
            "preprocessing": "average-pooled to 112 x 112 (2 x 2 blocks for 224 x 224), values in [0, 1]",
            "threshold": self._thresholds.tolist(),
            "device": self.device,
            "chunk": CHUNK,
            **self._metadata_settings(("seed", "training", "validation")),
        }

    def predict_raw(self, images: np.ndarray) -> np.ndarray:
        """Sigmoid probabilities before the operating-point rescaling, float64 (N, len(outputs))."""
        import torch

        return run_padded(self._load(), as_images(images), self.device, len(self.outputs), torch.sigmoid)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """float64 (N, len(outputs)) scores in [0, 1]; > 0.5 means positive at the operating point."""
        return op_norm(self.predict_raw(images), self._thresholds)
