"""Fill the sample cache from many processes or GPUs, then audit from the cache.

    torchrun --nproc-per-node=8 -m pytest_synthcxr.fill --model roentgen --cache-dir /shared/cache
    pytest --synthcxr-model=roentgen --synthcxr-cache-dir=/shared/cache

Every rank lists the same samples (every cell of every check in the spec, samples 0..n-1, in a
fixed order) and takes every WORLD_SIZE-th one from RANK on: no communication is needed, and the
shards cover the list exactly once. RANK / WORLD_SIZE / LOCAL_RANK are read from the environment
that torchrun, `accelerate launch`, SLURM wrappers and mpirun-style launchers set; with
`--device auto` rank r uses cuda:LOCAL_RANK. Samples another process has claimed or finished
(a second node, a pytest run already going) are skipped by the cache's claims, so running the
fill twice, or with a different world size, never generates a sample twice.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..sampling.cells import Cell


def samples_to_fill(checks: Sequence, per_cell: int | None = None) -> list[tuple[Cell, int]]:
    """(cell, index) of every sample the checks can ask for (their full budgets, or at most
    `per_cell` per cell), in an order every rank computes identically."""
    from ..sampling.plan import cell_budgets

    need = cell_budgets(checks)
    ordered = sorted(need, key=lambda c: c.key)
    top = max((min(need[c], per_cell or need[c]) for c in ordered), default=0)
    # index-major: every cell's early samples (the sequential checks' first rounds) come first
    return [(cell, i) for i in range(top) for cell in ordered if i < min(need[cell], per_cell or need[cell])]


def shard(samples: Sequence[tuple[Cell, int]], rank: int, world_size: int) -> list[tuple[Cell, int]]:
    """This rank's share: every world_size-th sample from `rank` on (cells interleave, so each
    rank's batches mix cells and the shares have equal cost)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    return list(samples[rank::world_size])


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        raise SystemExit(f"synthcxr fill: environment variable {name}={value!r} is not an integer") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_synthcxr.fill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model alias or path (as --synthcxr-model)")
    parser.add_argument("--spec", type=Path, default=None, help="audit spec TOML (default: found in the current folder, else built-in)")
    parser.add_argument("--cache-dir", type=Path, default=Path(".pytest_cache/d/synthcxr"), help="the cache the pytest run will read (default: pytest's, in the current folder)")
    parser.add_argument("--seed", type=int, default=None, help="base seed (default: the spec's)")
    parser.add_argument("--per-cell", type=int, default=None, help="samples per cell at most (default: each check's full budget)")
    parser.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK where there is CUDA), cpu, mps, cuda[:N]")
    parser.add_argument("--allow-pickle", action="store_true", help="allow pickle weight files")
    parser.add_argument("--rank", type=int, default=None, help="default: $RANK, else 0")
    parser.add_argument("--world-size", type=int, default=None, help="default: $WORLD_SIZE, else 1")
    args = parser.parse_args(argv)

    from ..checks import build_checks
    from .session import AuditSession, RunOptions
    from ..spec.schema import SpecError, find_spec_file, load_spec

    rank = args.rank if args.rank is not None else _env_int("RANK", 0)
    world = args.world_size if args.world_size is not None else _env_int("WORLD_SIZE", 1)
    device = args.device
    if device == "auto" and "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{_env_int('LOCAL_RANK', 0) % torch.cuda.device_count()}"
    try:
        loaded = load_spec(args.spec if args.spec is not None else find_spec_file(Path.cwd()))
        samples = shard(samples_to_fill(build_checks(loaded.spec), args.per_cell), rank, world)
    except (SpecError, ValueError) as exc:
        print(f"synthcxr fill: {exc}", file=sys.stderr)
        return 2
    seed = loaded.spec.seed if args.seed is None else args.seed
    options = RunOptions(model=args.model, seed=seed, device=device, allow_pickle=args.allow_pickle, cache_dir=args.cache_dir.absolute(), fill_only=True)
    session = AuditSession(loaded, options, log=lambda line: print(f"[rank {rank}] {line}", flush=True))
    start = time.perf_counter()
    try:
        pool = session.pool
        pool.fill(samples)
    except BaseException as exc:  # pytest.exit (unusable model or cache) carries one line
        from ..models.generators.diffusers import GeneratorError

        if type(exc).__name__ == "Exit" or isinstance(exc, GeneratorError):  # a pipeline loads on first use
            print(getattr(exc, "msg", str(exc)), file=sys.stderr)
            return 2
        raise
    s = pool.stats
    print(
        f"[rank {rank}/{world}] {len(samples)} samples: {s.generated} generated, {s.cached} already cached, "
        f"{s.waited_seconds:.0f}s waiting for other processes, {time.perf_counter() - start:.1f}s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
