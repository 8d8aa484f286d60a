"""``python -m pytest_synthcxr.prompts --spec S [--model M] [--seed N] [--output F]``: the exact
manifest template (image, prompt, seed, cell, index, of) an audit of a ``folder:`` model will ask
for, so the images can be generated elsewhere (Cheff, LLM-CXR, a cluster without pytest).

Fill the ``image`` column with each generated file's path (relative to the manifest) and the file
is the manifest: every row's prompt and seed are what the audit requests, so the audit reproduces
exactly. ``of`` is how many images the cell needs at most (its largest sample budget).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_synthcxr.prompts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=None, help="audit spec TOML (default: found in the current folder, else built-in)")
    parser.add_argument("--model", default=None, help="the model the images are for (checked against the spec's model tables)")
    parser.add_argument("--seed", type=int, default=None, help="base seed (default: the spec's; must match the audit's --synthcxr-seed)")
    parser.add_argument("--output", type=Path, default=None, help="write the template here (default: standard output)")
    args = parser.parse_args(argv)
    from ..checks import build_checks
    from ..sampling.manifest import requests, template
    from ..spec.locate import find_spec_file
    from ..spec.schema import SpecError, load_spec

    try:
        path = args.spec if args.spec is not None else find_spec_file(Path.cwd())
        if args.spec is not None and not args.spec.is_file():
            raise SpecError(f"synthcxr: spec not found: {args.spec}")
        loaded = load_spec(path)
    except SpecError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.seed is not None and args.seed < 0:
        print("synthcxr prompts: --seed must be a non-negative integer", file=sys.stderr)
        return 2
    if args.model is not None:
        from ..models.aliases import ModelError
        from ..models.registry import resolve_model

        try:
            resolve_model(args.model, "--model", loaded)
        except ModelError as exc:
            print(str(exc), file=sys.stderr)
            return 2
    seed = loaded.spec.seed if args.seed is None else args.seed
    rows = requests(build_checks(loaded.spec), seed)
    text = template(rows)
    if args.output is None:
        sys.stdout.write(text)
    else:
        from ..report.writers import OutputError, _atomic_write

        try:
            _atomic_write(args.output, text.encode("utf-8"))
        except (OSError, OutputError) as exc:
            print(f"synthcxr prompts: cannot write {args.output}: {exc}", file=sys.stderr)
            return 2
        cells = len({cell.key for cell, _, _ in rows})
        print(f"synthcxr prompts: {len(rows)} images for {cells} cells written to {args.output}", file=sys.stderr)
    return 0
