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


def device_problem(device: str) -> str | None:
    """None when torch can use `device` here; otherwise the one line saying why not (checked when
    an audit starts, so a missing GPU is not a traceback in the first item)."""
    if device in ("auto", "cpu"):
        return None
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return f"synthcxr: --synthcxr-device={device}: no CUDA device is available here (use auto or cpu)"
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            return f"synthcxr: --synthcxr-device={device}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})"
        return None
    if device == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            return "synthcxr: --synthcxr-device=mps: no Apple MPS device is available here (use auto or cpu)"
        return None
    return f"synthcxr: --synthcxr-device={device}: unknown device (allowed: auto, cpu, mps, cuda, cuda:N)"
