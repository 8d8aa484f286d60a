"""The front door to models: list, check and load generators and judges by name.

The two built-in phantom models load here without the registry (cheap); every other name goes
through :mod:`.registry` (spec tables, diffusers folders, hub ids, entry points).
"""

from __future__ import annotations

from typing import Any

from .aliases import BUILTIN_MODELS, ModelError


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
