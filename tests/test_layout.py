"""The package reads as a pipeline: one package per stage, imports only downward, no cycles.

Every import is counted, including imports inside functions and under TYPE_CHECKING: a lazy
import that runs upward is still an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_synthcxr

ROOT = Path(pytest_synthcxr.__file__).parent
PACKAGE = "pytest_synthcxr"
#: stages from the bottom of the pipeline to the pytest layer on top (package docstrings say the same)
STAGES = ("spec", "stats", "sampling", "phantom", "checks", "models", "fuzz", "reference", "report", "reader", "plugin")
#: top-level modules: the package itself and thin re-exports of documented public paths
TOP = ("", "strategies", "fill", "prompts", "cache")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Modules of the package that `name` imports (the deepest existing module of each target)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            while target and target not in mods:
                target = target.rsplit(".", 1)[0] if "." in target else ""
            if target and target != name:
                found.add(target)
    return found


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES) else ""


def _rank(module: str) -> int:
    if module == PACKAGE:
        return -1  # the package root holds only __version__: below everything
    stage = _stage(module)
    return STAGES.index(stage) if stage in STAGES else len(STAGES)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def test_every_module_lives_in_a_stage_package(graph):
    loose = sorted(m for m in graph if _stage(m) not in STAGES and m.split(".", 1)[-1] not in TOP and m != PACKAGE)
    assert not loose, f"modules outside the stage packages: {loose}"
    assert set(STAGES) <= {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}


def test_imports_point_down_the_pipeline(graph):
    upward = sorted(
        f"{src} -> {dst}" for src, dsts in graph.items() for dst in dsts if _rank(dst) > _rank(src) and _stage(src) in STAGES
    )
    assert not upward, "imports that run up the pipeline:\n" + "\n".join(upward)


def test_no_import_cycles(graph):
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_each_stage_says_what_it_owns_and_may_import():
    for stage in STAGES:
        doc = ast.get_docstring(ast.parse((ROOT / stage / "__init__.py").read_text(encoding="utf-8"))) or ""
        assert "May import" in doc or "may import" in doc, f"{stage}/__init__.py does not say what it may import"


def test_the_checker_sees_an_upward_import(tmp_path):
    """The walker itself: a lazy upward import and a two-file cycle are both found."""
    mods = {
        f"{PACKAGE}.stats.a": tmp_path / "a.py",
        f"{PACKAGE}.plugin.b": tmp_path / "b.py",
    }
    (tmp_path / "a.py").write_text("def f():\n    from ..plugin.b import g\n")
    (tmp_path / "b.py").write_text("from ..stats.a import f\n")
    found = _imports(f"{PACKAGE}.stats.a", mods[f"{PACKAGE}.stats.a"], mods)
    assert found == {f"{PACKAGE}.plugin.b"} and _rank(f"{PACKAGE}.plugin.b") > _rank(f"{PACKAGE}.stats.a")
    assert _imports(f"{PACKAGE}.plugin.b", mods[f"{PACKAGE}.plugin.b"], mods) == {f"{PACKAGE}.stats.a"}


def test_public_paths_still_import():
    from pytest_synthcxr import fill, strategies

    assert callable(fill.main)
    assert callable(strategies.counterfactual_pairs) and "prompt_specs" in strategies.__all__
