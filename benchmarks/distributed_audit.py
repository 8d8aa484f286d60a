"""Distributed audit (issue 19) on CPU with gloo: one process vs N ranks on the same spec, and
the images a sequential distributed audit generates vs the full-budget fill.

    .venv/bin/python benchmarks/distributed_audit.py [--model phantom-fair] [--spec FILE] [--ranks 2]

1. `--synthcxr-plan` gives the most images the audit can need: what `pytest_synthcxr.fill`
   generates when it fills every item's full budget.
2. The audit in one process (no cache), wall time and images generated (terminal summary).
3. The same audit under torchrun-style environment variables with N ranks (rank 0 runs pytest,
   every rank generates a share of each round), wall time; its JSON must equal the single run's
   byte for byte (same verdicts by construction).

Each run is a fresh process (imports, model loading included). Results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _pytest(folder: Path, model: str, spec: Path | None, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--rootdir", str(folder),
           f"--synthcxr-model={model}", "--synthcxr-no-cache", *extra]  # fmt: skip
    return cmd + ([f"--synthcxr-spec={spec}"] if spec else [])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_"))}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def _generated(text: str) -> int:
    found = re.search(r"^(\d+) images generated", text, re.M)
    return int(found.group(1)) if found else -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="phantom-fair")
    parser.add_argument("--spec", type=Path, default=None, help="audit spec (default: the built-in spec)")
    parser.add_argument("--ranks", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="synthcxr-dist-"))
    spec = args.spec.resolve() if args.spec else None
    plan = subprocess.run(_pytest(folder, args.model, spec, "--synthcxr-plan"), cwd=folder, env=_env(), capture_output=True, text=True)
    most = re.search(r"at most (\d+) distinct images", plan.stdout)
    t0 = time.perf_counter()
    single = subprocess.run(_pytest(folder, args.model, spec, "--synthcxr-json=single.json"), cwd=folder, env=_env(), capture_output=True, text=True)
    t_single = time.perf_counter() - t0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            _pytest(folder, args.model, spec, f"--synthcxr-json={'dist' if r == 0 else f'rank{r}'}.json"), cwd=folder, text=True,
            env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(args.ranks), MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        for r in range(args.ranks)
    ]  # fmt: skip
    outs = [p.communicate()[0] for p in procs]
    t_dist = time.perf_counter() - t0
    same = (folder / "single.json").read_bytes() == (folder / "dist.json").read_bytes()
    generated = _generated(single.stdout)
    print(f"model {args.model}, spec {args.spec or 'built-in'}, {os.cpu_count()} CPUs")
    print(f"full-budget fill: {most.group(1) if most else '?'} images; sequential audit: {generated} images generated")
    print(f"1 process: {t_single:.1f} s; {args.ranks} ranks: {t_dist:.1f} s (speed-up {t_single / t_dist:.2f}x); JSON identical: {same}")
    print(f"rank 0 summary: {_generated(outs[0])} images generated over all ranks")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
