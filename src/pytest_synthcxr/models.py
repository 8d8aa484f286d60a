"""Model aliases: names a user passes to --synthcxr-model, resolved to generators and judges.

Resolution is cheap (no heavy imports) so a bad alias is a usage error before any test runs.
"""

from __future__ import annotations

from typing import Any

ERR_UNKNOWN_MODEL = "synthcxr: unknown model {name!r} (from {source}); known models: {known}"

#: alias -> (generator kind, preset, default judge)
BUILTIN_MODELS: dict[str, tuple[str, str, str]] = {
    "phantom": ("phantom", "phantom", "phantom"),
    "phantom-biased": ("phantom", "phantom-biased", "phantom"),
}


class ModelError(Exception):
    """An unusable model name; str() is the one line shown to the user."""


def known_models() -> list[str]:
    from .registry import known_models as known

    return known()


def check_model(name: str, source: str, loaded: Any = None, *, allow_pickle: bool = False) -> None:
    """Resolve the model and its judges cheaply (see registry.check); raises ModelError."""
    from .registry import check

    check(name, source, loaded, allow_pickle=allow_pickle)


def load_generator(name: str, loaded: Any = None, *, device: str = "auto", allow_pickle: bool = False) -> Any:
    if name not in BUILTIN_MODELS or (loaded is not None and name in loaded.spec.models):
        from .registry import load_generator as load

        return load(name, loaded, device=device, allow_pickle=allow_pickle)
    kind, preset, _ = BUILTIN_MODELS[name]
    if kind == "phantom":
        from .generators.phantom import PhantomGenerator

        return PhantomGenerator(preset)
    raise ModelError(f"synthcxr: no loader for model kind {kind!r}")  # pragma: no cover


def load_judge(name: str, device: str = "auto") -> Any:
    if name == "phantom":
        from .judges.phantom import PhantomJudge

        return PhantomJudge(device=device)  # resolves "auto" when it first scores
    raise ModelError(f"synthcxr: unknown judge {name!r}; known judges: phantom")


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
