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


DTYPES = ("float32", "float16", "bfloat16")


def resolve_dtype(dtype: str, device: str) -> str:
    """'auto' is float16 on cuda (what GPU users of Stable Diffusion run) and float32 elsewhere."""
    if dtype != "auto":
        return dtype
    return "float16" if device.startswith("cuda") else "float32"


def dtype_problem(dtype: str, device: str) -> str | None:
    """None when `dtype` can run on `device`; otherwise the one line saying why not. float16 and
    bfloat16 run on a CPU with torch 2.x (slowly for float16; ops a build lacks fail at the first
    image with their own line); bfloat16 on cuda needs an Ampere or newer GPU."""
    if dtype not in DTYPES + ("auto",):
        return f"dtype must be one of auto, {', '.join(DTYPES)}, got {dtype!r}"
    if resolve_dtype(dtype, device) == "bfloat16" and device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            index = int(device.partition(":")[2] or 0)
            major, _ = torch.cuda.get_device_capability(index)
            if major < 8:  # bfloat16 tensor cores start with Ampere (sm_80); older GPUs emulate it slowly or not at all
                return f"dtype bfloat16 needs a GPU of compute capability 8.0 or newer; {device} is {torch.cuda.get_device_name(index)} ({major}.x): use float16 or float32"
    return None
