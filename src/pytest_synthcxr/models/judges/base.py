"""The judge protocol and what every judge shares: operating-point rescaling, file hashes, input
preprocessing.

A judge scores float32 (N, H, W) images in [0, 1] and returns float64 (N, len(outputs))
probabilities rescaled so that each output's calibrated operating point sits at exactly 0.5
(torchxrayvision's ``op_norm``): "score > 0.5" is "the judge calls it positive".
Importing this module does not import torch.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Judge(Protocol):
    name: str
    outputs: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        """Identifies the weights and preprocessing: equal fingerprints, equal scores."""
        ...

    @property
    def settings(self) -> dict[str, Any]:
        """What the report shows about this judge (weight files and their SHA-256, preprocessing)."""
        ...

    def predict(self, images: np.ndarray) -> np.ndarray:
        """float64 (N, len(outputs)) in [0, 1]; > 0.5 means positive at the operating point."""
        ...


class JudgeError(Exception):
    """A judge that cannot be built or run; str() is the one line shown to the user."""


def op_norm(p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Rescale probabilities so each output's threshold maps to 0.5 (piecewise linear, monotone)."""
    p = np.asarray(p, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    low = 0.5 * p / t
    high = 0.5 + 0.5 * (p - t) / (1.0 - t)
    return np.clip(np.where(p <= t, low, high), 0.0, 1.0)


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def as_images(images: Any) -> np.ndarray:
    """Check and convert a judge's input: float32 (N, H, W)."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
    return images


def center_crop(images: np.ndarray) -> np.ndarray:
    """Crop the longer side to the shorter one, centred (torchxrayvision's XRayCenterCrop)."""
    _, h, w = images.shape
    side = min(h, w)
    top, left = h // 2 - side // 2, w // 2 - side // 2
    return images[:, top : top + side, left : left + side]


def preprocess(images: np.ndarray, size: int, normalize: str, channels: int) -> Any:
    """(N, H, W) in [0, 1] -> float32 torch tensor (N, channels, size, size): center crop, bilinear
    (antialiased) resize, then scaling: unit [0, 1], symmetric [-1, 1], xrv [-1024, 1024], or
    imagenet (per-channel mean and standard deviation)."""
    import torch
    from torch.nn import functional as F

    x = torch.from_numpy(np.ascontiguousarray(center_crop(as_images(images)))).unsqueeze(1)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if normalize == "symmetric":
        x = 2.0 * x - 1.0
    elif normalize == "xrv":
        x = 2048.0 * x - 1024.0
    x = x.repeat(1, channels, 1, 1) if channels != 1 else x
    if normalize == "imagenet":
        mean = torch.tensor([0.485, 0.456, 0.406][:channels]).view(1, channels, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225][:channels]).view(1, channels, 1, 1)
        x = (x - mean) / std
    return x.contiguous()
