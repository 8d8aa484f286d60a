"""The procedural chest-radiograph phantom: the embedded default world of the audit.

`render(Scene(...), rng)` draws a crude but recognisable PA chest radiograph (numpy only) with
the requested findings; the phantom generator and the phantom judge are built on it.

Stage 3b, may import: spec.
"""

from .render import NAMES, RENDERER_VERSION, Scene, random_scene, render, resolve_laterality

__all__ = ["NAMES", "RENDERER_VERSION", "Scene", "random_scene", "render", "resolve_laterality"]
