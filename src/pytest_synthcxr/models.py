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
    return sorted(BUILTIN_MODELS)


def check_model(name: str, source: str) -> None:
    if name not in BUILTIN_MODELS:
        raise ModelError(ERR_UNKNOWN_MODEL.format(name=name, source=source, known=", ".join(known_models())))


def load_generator(name: str) -> Any:
    kind, preset, _ = BUILTIN_MODELS[name]
    if kind == "phantom":
        from .generators.phantom import PhantomGenerator

        return PhantomGenerator(preset)
    raise ModelError(f"synthcxr: no loader for model kind {kind!r}")  # pragma: no cover


def load_judge(name: str, device: str = "auto") -> Any:
    if name == "phantom":
        from .judges.phantom import PhantomJudge

        return PhantomJudge(device=resolve_device(device))
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
