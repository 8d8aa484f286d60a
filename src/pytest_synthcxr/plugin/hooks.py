"""pytest hooks only: options, collecting audit spec files, and starting the run's audits.

This module is the pytest11 entry point, loaded by every pytest run in the environment, so it
imports nothing heavy: the spec schema, statistics, torch and the report are imported only once
an audit is requested (an audit file is collected, or --synthcxr-model is given).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from .collect import SpecFile, is_spec_file
from .items import FAMILY_MARKERS, RUN_KEY
from .options import device_option, rate_option, seed_option
from .run import AuditRun, selected_from_args

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("synthcxr", "synthetic chest X-ray generator audit")
    options = [
        ("model", None, "model alias or path to audit; given alone, audits the spec below (default: 'model' in each audit file)"),
        ("spec", None, "audit spec TOML for --synthcxr-model (default: [tool.synthcxr] in pyproject.toml, else synthcxr.toml in the rootdir, else the built-in spec)"),
        ("report", None, "write the self-contained HTML audit report here (default: none)"),
        ("json", None, "write the audit results as JSON here (default: none)"),
        ("csv", None, "write every sample's judge scores as CSV here (default: none)"),
        ("baseline", None, "a previous run's --synthcxr-json to compare with: deltas with intervals, regressions flagged (default: none)"),
        ("baseline-model", None, "the released model to compare the candidate with on the same prompts and seeds: compare[...] items for every spec section with max_regression / max_decline (default: none)"),
        ("seed", seed_option, "base seed of every generated sample (default: 'seed' in the spec, else 0)"),
        ("device", device_option, "torch device for generator and judges: auto, cpu, mps, cuda[:N] (default: auto)"),
        ("cache-dir", None, "sample cache folder, shareable between runs, workers and CI jobs (default: synthcxr/ under pytest's cache dir)"),
        ("reference", None, "reference images to compare with: a manifest CSV, a MIMIC-CXR-JPG or CheXpert folder or CSV, or phantom[:N] (default: 'reference' in the spec; none: no comparison)"),
    ]
    for name, kind, help_text in options:
        dest = f"synthcxr_{name.replace('-', '_')}"
        group.addoption(f"--synthcxr-{name}", dest=dest, default=None, type=kind, help=help_text)
        parser.addini(dest, f"ini equivalent of --synthcxr-{name}", default=None)
    group.addoption(
        "--synthcxr-no-cache",
        dest="synthcxr_no_cache",
        action="store_true",
        default=False,
        help="neither read nor write the sample cache (every image is generated and judged afresh)",
    )
    group.addoption(
        "--synthcxr-plan",
        dest="synthcxr_plan",
        action="store_true",
        default=False,
        help="print every item's cells and sample budget, and the most images the audit can need; generate nothing",
    )
    group.addoption(
        "--synthcxr-allow-pickle",
        dest="synthcxr_allow_pickle",
        action="store_true",
        default=None,
        help="allow loading pickle weight files (.bin, .pt, .ckpt), which can run code (default: safetensors only)",
    )
    parser.addini("synthcxr_allow_pickle", "ini equivalent of --synthcxr-allow-pickle", type="bool", default=False)
    group.addoption(
        "--synthcxr-plan-rate",
        dest="synthcxr_plan_rate",
        type=rate_option,
        default=None,
        help="with --synthcxr-plan: images per second generated and judged, for the time estimate (default: time a few images now)",
    )
    group.addoption(
        "--synthcxr-progress-interval",
        dest="synthcxr_progress_interval",
        type=rate_option,
        default=None,
        help="seconds between progress lines when the output is not a terminal, e.g. a CI log (default: 30)",
    )
    # set from pasted synthcxr::<item> ids (see pytest_load_initial_conftests); not for direct use
    group.addoption("--synthcxr-select", dest="synthcxr_select", action="append", default=None, help=argparse.SUPPRESS)



@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    # a pasted synthcxr::<item> id names no file: take it off the command line, keep it as a selection
    picked = selected_from_args(args)
    if picked:
        args.extend(f"--synthcxr-select={p}" for p in picked)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "synthcxr: an item of the synthetic CXR generator audit")
    config.pluginmanager.import_plugin("pytest_synthcxr.plugin.fixtures")  # cheap: fixtures load models when used
    for family, text in FAMILY_MARKERS.items():
        config.addinivalue_line("markers", f"{family}: synthcxr {text}")
    if config.option.help or getattr(config.option, "version", False):
        return
    from .guards import check_explicit_spec

    check_explicit_spec(config)  # even without a model: a mistyped --synthcxr-spec is an error
    model_only = bool(getattr(config.option, "synthcxr_model", None))
    selected = list(getattr(config.option, "synthcxr_select", None) or [])
    if selected and not model_only:
        raise pytest.UsageError(f"synthcxr: {selected[0]} is an item of the --synthcxr-model audit: pass --synthcxr-model too")
    run = AuditRun(config, model_only=model_only, selected_ids=selected)
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(run, "synthcxr-run")
    from ..sampling.ranks import world_size

    if world_size() > 1:  # launched by torchrun / accelerate: one audit over all ranks
        from .ranks import RankPlugin

        config.pluginmanager.register(RankPlugin(run), "synthcxr-ranks")
    if model_only:
        run.open_model_only()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    config = parent.config
    if RUN_KEY not in config.stash or file_path.suffix != ".toml":
        return None
    if _named(config, file_path) or (is_spec_file(file_path) and config.args_source != pytest.Config.ArgsSource.INVOCATION_DIR):
        return SpecFile.from_parent(parent, path=file_path)
    return None


def _named(config: pytest.Config, path: Path) -> bool:
    """The file itself is on the command line (any .toml holding a spec, e.g. pyproject.toml)."""
    here = config.invocation_params.dir
    return any((here / a.split("::", 1)[0]).resolve() == path.resolve() for a in config.args if not a.startswith("-"))
