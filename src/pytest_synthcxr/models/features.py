"""Image features and pixel similarity for the fidelity, diversity and memorization checks.

- Judge features: torchxrayvision DenseNet's pooled 1024-d ``features2`` (what RoentGen's FID
  used; ResNet: its pooled ``features``), with the judge's own preprocessing; the phantom judge's
  penultimate layer (the input of its linear head: pooled channels and the coarse layout map).
  A judge panel uses its first member that has features.
- MS-SSIM between image pairs: ``pytorch_msssim`` (5 scales, 11-pixel Gaussian window,
  data range 1), which needs images larger than 160 pixels a side.

Importing this module imports nothing heavy; torch is imported by the functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

ERR_NO_FEATURES = (
    "synthcxr: judge {judge!r} has no feature extractor; fidelity and memorization checks need a phantom or "
    "torchxrayvision judge (alone or in a panel)"
)
ERR_MSSSIM = "synthcxr: diversity checks need pytorch-msssim: pip install pytorch-msssim"
ERR_SMALL = "synthcxr: diversity: MS-SSIM (5 scales) needs images larger than 160 pixels a side, got {h} x {w}"
#: images per forward pass
CHUNK = 32


class FeatureError(Exception):
    """Features cannot be computed; str() is the one line shown to the user."""


def feature_extractor(judge: Any) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """(description, function images -> float64 (N, d) features) for a judge; FeatureError if none."""
    from .judges.ensemble import JudgePanel
    from .judges.phantom import PhantomJudge
    from .judges.xrv import XRVJudge

    if isinstance(judge, JudgePanel):
        for member in judge.members:
            try:
                return feature_extractor(member)
            except FeatureError:
                continue
    elif isinstance(judge, PhantomJudge):
        return "phantom judge penultimate layer", lambda images: _phantom_features(judge, images)
    elif isinstance(judge, XRVJudge):
        what = "torchxrayvision " + ("ResNet pooled 2048-d" if judge.weights.startswith("resnet") else "DenseNet features2 1024-d")
        return f"{what} ({judge.weights})", lambda images: _xrv_features(judge, images)
    raise FeatureError(ERR_NO_FEATURES.format(judge=getattr(judge, "name", type(judge).__name__)))


def _phantom_features(judge: Any, images: np.ndarray) -> np.ndarray:
    import torch
    from torch.nn import functional as F

    from .judges.base import as_images
    from .judges.phantom_net import WORK_SIZE

    net = judge._load()
    images = as_images(images)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), CHUNK):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + CHUNK])).unsqueeze(1).to(judge.device)
            if x.shape[-1] != WORK_SIZE or x.shape[-2] != WORK_SIZE:
                x = F.adaptive_avg_pool2d(x, WORK_SIZE)
            f = net.features(x)
            if f.shape[-1] != 7 or f.shape[-2] != 7:
                f = F.adaptive_avg_pool2d(f, 7)
            feats = torch.cat([f.mean(dim=(2, 3)), net.layout(f).flatten(1)], dim=1)
            out.append(feats.to("cpu", torch.float64).numpy())
    return np.concatenate(out) if out else np.empty((0, 0))


def _xrv_features(judge: Any, images: np.ndarray) -> np.ndarray:
    import torch

    from .judges.base import as_images
    from .judges.xrv import run_chunks

    def head(model: Any, x: Any) -> Any:
        if hasattr(model, "features2"):
            return model.features2(x)
        return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(model.features(x), 1), 1)  # ResNet: pooled backbone

    parts = run_chunks(judge._load(), as_images(images), judge.resolution, judge.device, head, chunk=CHUNK)
    return np.concatenate(parts) if parts else np.empty((0, 0))


def ms_ssim_pairs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """MS-SSIM of each pair (first[k], second[k]) of float (N, H, W) images in [0, 1]."""
    try:
        from pytorch_msssim import ms_ssim
    except ImportError as exc:
        raise FeatureError(ERR_MSSSIM) from exc
    import torch

    a = np.nan_to_num(np.asarray(first, dtype=np.float32))
    b = np.nan_to_num(np.asarray(second, dtype=np.float32))
    if len(a) == 0:
        return np.empty(0)
    h, w = a.shape[1:]
    if min(h, w) <= 160:
        raise FeatureError(ERR_SMALL.format(h=h, w=w))
    out = []
    with torch.inference_mode():
        for start in range(0, len(a), CHUNK):
            x = torch.from_numpy(np.ascontiguousarray(a[start : start + CHUNK])).unsqueeze(1)
            y = torch.from_numpy(np.ascontiguousarray(b[start : start + CHUNK])).unsqueeze(1)
            out.append(ms_ssim(x, y, data_range=1.0, size_average=False).to(torch.float64).numpy())
    return np.clip(np.concatenate(out), 0.0, 1.0)
