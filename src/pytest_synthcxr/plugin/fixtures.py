"""Fixtures for users' own hypothesis tests: ``synthcxr_generator``, ``synthcxr_judge``,
``synthcxr_pool`` (a :class:`~pytest_synthcxr.fuzz.sampler.PairedSampler`: same seeds for every prompt).

The model is ``--synthcxr-model`` (or ``synthcxr_model`` in the ini file), else the
``phantom`` model; the base seed ``--synthcxr-seed``, else 0. When an audit runs, its generator
and judge are reused. Registered by the plugin; importing this module imports only pytest
(everything heavy loads inside the fixtures, on first use).
"""

from __future__ import annotations

from typing import Any

import pytest

DEFAULT_MODEL = "phantom"


def _model(config: pytest.Config) -> str:
    return getattr(config.option, "synthcxr_model", None) or config.getini("synthcxr_model") or DEFAULT_MODEL


def _seed(config: pytest.Config) -> int:
    value = getattr(config.option, "synthcxr_seed", None)
    if value is None:
        value = config.getini("synthcxr_seed") or 0
    return int(value)


def _audit(config: pytest.Config) -> Any:
    from .items import AUDIT_KEY

    return config.stash.get(AUDIT_KEY, None)


@pytest.fixture(scope="session")
def synthcxr_generator(pytestconfig: pytest.Config) -> Any:
    """The generator under test (``generate(prompts, seeds)`` -> float32 (N, H, W) in [0, 1])."""
    audit = _audit(pytestconfig)
    if audit is not None:
        return audit.pool.generator
    from ..models.aliases import ModelError
    from ..models.loading import load_generator

    try:
        return load_generator(_model(pytestconfig), device=getattr(pytestconfig.option, "synthcxr_device", None) or "auto")
    except (ModelError, KeyError) as exc:
        pytest.fail(f"synthcxr: cannot load model {_model(pytestconfig)!r}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def synthcxr_judge(pytestconfig: pytest.Config) -> Any:
    """The model's judge (``predict(images)`` -> (N, len(outputs)); > 0.5: positive)."""
    audit = _audit(pytestconfig)
    if audit is not None:
        return audit.pool.judge
    from ..models.aliases import ModelError
    from ..models.registry import load_judge

    try:
        return load_judge(_model(pytestconfig), None, device=getattr(pytestconfig.option, "synthcxr_device", None) or "auto")
    except ModelError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def synthcxr_pool(synthcxr_generator: Any, synthcxr_judge: Any, pytestconfig: pytest.Config) -> Any:
    """Judge scores of any prompt on seeds shared by all prompts (paired, memoised)."""
    from ..fuzz.sampler import PairedSampler

    return PairedSampler(synthcxr_generator, synthcxr_judge, _seed(pytestconfig))
