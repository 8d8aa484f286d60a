"""Reading the run's settings: command-line options, ini keys and the spec's own keys, each
parsed and checked before any test runs (a bad value is a usage error)."""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")



def seed_option(value: str) -> int:
    try:
        seed = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {value!r}") from None
    if seed < 0:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {value!r}")
    return seed


def device_option(value: str) -> str:
    if not _DEVICE.match(value):
        raise argparse.ArgumentTypeError(f"device must be auto, cpu, mps, cuda or cuda:N, got {value!r}")
    return value


def rate_option(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value!r}") from None
    if not rate > 0 or rate == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value!r}")
    return rate


def setting(config: pytest.Config, name: str, parse: Any = None) -> Any:
    value = getattr(config.option, f"synthcxr_{name}", None)
    if value is None:
        value = config.getini(f"synthcxr_{name}") or None
        if value is not None and parse is not None:
            try:
                value = parse(value)
            except argparse.ArgumentTypeError as exc:
                raise pytest.UsageError(f"synthcxr: ini key synthcxr_{name}: {exc}") from None
    return value


def path_option(config: pytest.Config, name: str) -> Path | None:
    if getattr(config.option, f"synthcxr_{name}", None):
        return Path(getattr(config.option, f"synthcxr_{name}")).absolute()
    ini = config.getini(f"synthcxr_{name}")
    return (config.rootpath / ini) if ini else None


def cache_dir(config: pytest.Config) -> Path | None:
    """The sample cache folder (also home of the fuzzing database); None with --synthcxr-no-cache."""
    if config.option.synthcxr_no_cache:
        return None
    given = path_option(config, "cache_dir")
    if given is not None:
        return given
    cache = getattr(config, "cache", None)
    if cache is not None:
        return cache.mkdir("synthcxr")
    # -p no:cacheprovider turns pytest's cache off, not the sample cache: the same folder
    try:
        folder = config.getini("cache_dir") or ".pytest_cache"
    except ValueError:  # the ini key belongs to the disabled plugin
        folder = ".pytest_cache"
    return config.rootpath / folder / "d" / "synthcxr"


def baseline_option(config: pytest.Config) -> Path | None:
    """The baseline JSON's path. The audit session reads and validates it once when it starts
    (plugin.guards.load_baseline: a missing, foreign or malformed file is one line before any
    image) and keeps that copy for the report."""
    return path_option(config, "baseline")


def reference_option(config: pytest.Config, loaded: Any) -> Any:
    """The reference set's manifest, read now (a bad file is a usage error before any test runs):
    --synthcxr-reference (relative to the working folder), else the ini key, else the spec's."""
    from ..reference.readers import ReferenceError, check_coverage, load_reference, needs_reference

    value, base = config.option.synthcxr_reference, config.invocation_params.dir
    if value is None and config.getini("synthcxr_reference"):
        value, base = config.getini("synthcxr_reference"), config.rootpath
    if value is None and loaded.spec.reference is not None:
        value, base = loaded.spec.reference, loaded.path.parent if loaded.path else config.rootpath
    try:
        if value is None:
            needs_reference(loaded.spec)
            return None
        ref = load_reference(value, base, seed=loaded.spec.seed, max_images=loaded.spec.reference_samples, findings=loaded.spec.findings)
        check_coverage(loaded.spec, ref)
        return ref
    except ReferenceError as exc:
        raise pytest.UsageError(str(exc)) from None


def spec_location(config: pytest.Config) -> Path | None:
    given = path_option(config, "spec")
    if given is not None:
        return given
    from ..spec.locate import find_spec_file

    return find_spec_file(config.rootpath)


def model_in_spec(path: Path | None) -> str | None:
    """'model' from the spec file, read cheaply (full validation happens only if an audit runs)."""
    if path is None or not path.is_file():
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise pytest.UsageError(f"synthcxr: {path}: invalid TOML: {exc}") from None
    table = data.get("tool", {}).get("synthcxr", data if path.name != "pyproject.toml" else {})
    model = table.get("model") if isinstance(table, dict) else None
    return model if isinstance(model, str) else None
