"""The fixtures users' own @given tests get: phantom by default, paired seeds shared by prompts."""

import subprocess
import sys
from pathlib import Path

import pytest

import pytest_synthcxr.strategies  # noqa: F401  (hypothesis loaded once: pytester's inner runs forget modules they import)



def test_fixtures_default_to_the_phantom_and_share_seeds(pytester):
    pytester.makepyfile(
        """
        import numpy as np
        from hypothesis import given, settings
        from pytest_synthcxr import strategies as cxr

        def test_defaults(synthcxr_generator, synthcxr_judge, synthcxr_pool):
            assert synthcxr_generator.name == "phantom" and synthcxr_judge.name == "phantom"
            assert synthcxr_pool.base_seed == 0
            a = synthcxr_pool.scores("White female. Pleural effusion.", 3)
            b = synthcxr_pool.scores("Black female. Pleural effusion.", 3)
            assert a.shape == (3, len(synthcxr_judge.outputs))
            assert np.array_equal(a, b)  # race is not drawn by the phantom: same seeds, same images
            before = synthcxr_pool.generated
            synthcxr_pool.scores("White female. Pleural effusion.", 2)
            assert synthcxr_pool.generated == before  # memoised

        @settings(max_examples=3, deadline=None, database=None)
        @given(pair=cxr.counterfactual_pairs(attributes=("race",), demographics="always", min_findings=1, layout=False))
        def test_race_swap_is_invariant_on_the_faithful_phantom(synthcxr_pool, pair):
            finding = pair.base.requested[0]
            c = synthcxr_pool.compare(pair.base.text, pair.changed.text, finding, 2)
            assert c.difference.value == 0.0
        """
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_seed_option_reaches_the_pool(pytester):
    pytester.makepyfile("def test_seed(synthcxr_pool):\n    assert synthcxr_pool.base_seed == 7\n")
    pytester.runpytest_inprocess("--synthcxr-seed=7", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_fixtures_module_imports_nothing_heavy():
    code = (
        "import sys, pytest_synthcxr.plugin.fixtures\n"
        "print([m for m in ('torch', 'hypothesis', 'pandas', 'numpy', 'scipy', 'statsmodels') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_docs_fuzzing_example_runs(pytester):
    readme = (Path(__file__).parent.parent / "docs" / "fuzzing.md").read_text()
    section = readme.split("# Fuzzing prompts with hypothesis", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    pytester.makepyfile(code.replace("max_examples=20", "max_examples=3"))
    pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider").assert_outcomes(passed=1)


DOC_PAGES = [Path(__file__).parent.parent / "README.md", *sorted((Path(__file__).parent.parent / "docs").glob("*.md"))]


def _spec_blocks(page: Path) -> list[dict]:
    """The page's TOML blocks that hold an audit spec: a [tool.synthcxr] table, or (a
    *.synthcxr.toml file) top-level spec keys. Every TOML block must parse."""
    import re
    import tomllib

    specs = []
    for block in re.findall(r"```toml\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
        data = tomllib.loads(block)
        if "synthcxr" in data.get("tool", {}):
            specs.append(data["tool"]["synthcxr"])
        elif data and not set(data) & {"tool", "project"}:  # a *.synthcxr.toml: a misspelt key must fail
            specs.append(data)
    return specs


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.name)
def test_every_spec_in_the_readme_and_docs_is_valid(page):
    """The TOML examples of README and docs/*.md that hold a spec validate and expand to items."""
    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.spec.schema import AuditSpec

    for data in _spec_blocks(page):
        assert build_checks(AuditSpec.model_validate(data)) is not None


def test_the_docs_show_specs_of_every_kind():
    """The pages above hold the examples users copy: at least the README's own-checkpoint spec
    (top level of a *.synthcxr.toml), the full spec, real models and reference sets."""
    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.spec.schema import AuditSpec

    specs = {page.name: _spec_blocks(page) for page in DOC_PAGES}
    readme = specs["README.md"]
    assert len(readme) == 1 and readme[0]["models"][readme[0]["model"]]["path"]
    assert sum(len(v) for v in specs.values()) >= 6
    assert specs["spec.md"] and specs["real-models.md"] and specs["reference-sets.md"]
    ages = [d for v in specs.values() for d in v if d.get("subgroups", {}).get("age")]
    assert ages and {c.attribute for c in build_checks(AuditSpec.model_validate(ages[0])) if c.family == "demographic"} == {"sex", "race", "age"}


def test_docs_spec_names_every_spec_key():
    """docs/spec.md lists every key of every spec section (so a new key cannot go undocumented)."""
    import re

    from pytest_synthcxr.spec.schema import AuditSpec

    text = (Path(__file__).parent.parent / "docs" / "spec.md").read_text(encoding="utf-8")
    missing, seen, todo = [], set(), [AuditSpec]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            key = field.alias or name
            if not re.search(rf"`{re.escape(key)}[`\s=]|\[{re.escape(key)}[\].]", text):  # `key`, `key = ...`, [key] or [key.name]
                missing.append(f"{model.__name__}.{key}")
            for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
                for inner in (arg, *getattr(arg, "__args__", ())):
                    if isinstance(inner, type) and hasattr(inner, "model_fields"):
                        todo.append(inner)
    assert missing == []
