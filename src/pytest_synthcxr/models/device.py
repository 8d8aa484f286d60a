"""Which torch device 'auto' means on this machine."""

from __future__ import annotations


def resolve_device(device: str) -> str:
    """'auto' picks cuda, then mps, then cpu; anything else is passed through to torch."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
