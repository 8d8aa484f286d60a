"""The phantom judge's network: a small CNN that reads 224 x 224 phantoms on a CPU.

Importing this module imports torch; :mod:`pytest_synthcxr.models.judges.phantom` imports it lazily.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Side of the images the network is trained on; larger inputs are average-pooled to it first.
INPUT_SIZE = 224
#: Side after the fixed first average pooling (what the convolutions see).
WORK_SIZE = 112


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class PhantomNet(nn.Module):
    """Multi-label classifier: (N, 1, H, W) images in [0, 1] -> (N, n_outputs) logits.

    The input is average-pooled to 112 x 112, then five convolution stages bring it to a 7 x 7 map.
    The head sees both a global average (what is there) and a coarse 7 x 7 layout of a few
    channels (where it is: bases, periphery, hila, heart border).
    """

    def __init__(self, n_outputs: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.n_outputs = n_outputs
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 5, stride=2, padding=2, bias=False),  # 112 -> 56
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            *_block(w, 2 * w),
            nn.MaxPool2d(2),  # 28
            *_block(2 * w, 3 * w),
            nn.MaxPool2d(2),  # 14
            *_block(3 * w, 4 * w),
            nn.MaxPool2d(2),  # 7
            *_block(4 * w, 4 * w),
        )
        self.layout = nn.Sequential(nn.Conv2d(4 * w, 8, 1), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(4 * w + 8 * 49, n_outputs))

    def forward_work(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for inputs already at WORK_SIZE (what training feeds, to skip the pooling)."""
        f = self.features(x)
        if f.shape[-1] != 7 or f.shape[-2] != 7:
            f = F.adaptive_avg_pool2d(f, 7)
        pooled = f.mean(dim=(2, 3))
        layout = self.layout(f).flatten(1)
        return self.head(torch.cat([pooled, layout], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.shape[-1] != WORK_SIZE or x.shape[-2] != WORK_SIZE:
            x = F.adaptive_avg_pool2d(x, WORK_SIZE)  # exactly a 2 x 2 average for 224 inputs
        return self.forward_work(x)
