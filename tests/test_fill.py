"""Sharded cache fill (python -m pytest_synthcxr.fill) with several CPU processes, then an audit
that reads everything from the cache."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pytest_synthcxr.sampling.cache import SampleCache
from pytest_synthcxr.checks import build_checks
from pytest_synthcxr.plugin.fill import samples_to_fill, shard
from pytest_synthcxr.spec.schema import load_spec

SMALL = Path(__file__).parent.parent / "fixtures" / "specs" / "small.toml"


def test_shards_cover_every_sample_exactly_once_and_mix_cells():
    samples = samples_to_fill(build_checks(load_spec(SMALL).spec))
    assert samples == samples_to_fill(build_checks(load_spec(SMALL).spec))  # same on every rank
    parts = [shard(samples, r, 3) for r in range(3)]
    key = lambda s: (s[0].key, s[1])  # noqa: E731
    assert sorted((x for part in parts for x in part), key=key) == sorted(samples, key=key)
    assert sum(len(p) for p in parts) == len(samples) and max(map(len, parts)) - min(map(len, parts)) <= 1
    assert all(len({cell for cell, _ in part[:10]}) > 1 for part in parts)
    capped = samples_to_fill(build_checks(load_spec(SMALL).spec), per_cell=5)
    assert {i for _, i in capped} == set(range(5))


def _fill(folder: Path, cache: Path, rank: int, world: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world)}
    cmd = [sys.executable, "-m", "pytest_synthcxr.fill", "--model=phantom", f"--spec={SMALL}", f"--cache-dir={cache}", *extra]
    return subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_three_ranks_fill_the_cache_and_the_audit_then_generates_nothing(pytester):
    cache = pytester.path / "cache"
    procs = [_fill(pytester.path, cache, r, 3) for r in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    generated = [int(re.search(r"(\d+) generated", out).group(1)) for out, _ in outs]
    total = len(samples_to_fill(build_checks(load_spec(SMALL).spec)))
    assert sum(generated) == total and min(generated) >= total // 3 - 1
    assert SampleCache(cache).counts()["samples"] == total
    # a second fill finds everything done
    again = _fill(pytester.path, cache, 0, 1)
    out, _ = again.communicate(timeout=300)
    assert "0 generated" in out
    result = pytester.runpytest("-p", "no:randomly", "--synthcxr-model=phantom", f"--synthcxr-spec={SMALL}", f"--synthcxr-cache-dir={cache}")
    result.stdout.fnmatch_lines(["0 images generated*", "sample cache: * hits, 0 misses*"])


def test_bad_rank_and_bad_spec_are_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pytest_synthcxr.fill", "--model=phantom", f"--spec={SMALL}", "--rank=4", "--world-size=2", f"--cache-dir={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert out.returncode == 2 and out.stderr.strip() == "synthcxr fill: rank 4 is not in 0..1"
    out = subprocess.run(
        [sys.executable, "-m", "pytest_synthcxr.fill", "--model=phantom", f"--spec={tmp_path / 'none.toml'}", f"--cache-dir={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert out.returncode == 2 and "spec file not found" in out.stderr and "Traceback" not in out.stderr
