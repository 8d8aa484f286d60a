"""One audit over several processes (issue 19): ``torchrun -m pytest`` with gloo on CPU.

The ranks are started as torchrun starts them (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT in the environment, the same command line on every rank). Rank 0's JSON must be
byte-identical to a single-process run of the same spec and seed, with and without a cache; every
other rank writes its own cache shard, which a later single-process run reads (it resumes: nothing
is generated again); a killed rank ends the run with one line; shards merge into one cache.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SPEC = """
seed = 1
samples_per_cell = 60
findings = ["Effusion"]

[subgroups]
sex = ["female", "male"]
race = ["White"]
reference = {{ sex = "female", race = "White" }}

[[bias]]
metric = "tpr"
statistic = "gap"
max = {gap_max}
samples = {gap_samples}

[validity]
min_sensitivity = 0.3

[hallucination]
max_rate = 0.5
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(folder: Path, json_name: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--rootdir", str(folder),
        "--synthcxr-model=phantom-biased", f"--synthcxr-json={json_name}", *extra,
    ]  # fmt: skip


def _env(folder: Path, **ranks: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_"))}
    env.update(HOME=str(folder), OMP_NUM_THREADS="1", **ranks)
    return env


def _ranks(folder: Path, world: int, json_name: str, *extra: str) -> list[subprocess.Popen]:
    port = str(_free_port())
    procs = []
    for rank in range(world):
        env = _env(folder, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        name = json_name if rank == 0 else f"rank{rank}-{json_name}"
        procs.append(subprocess.Popen(_command(folder, name, *extra), cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return procs


def _single(folder: Path, json_name: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(folder, json_name, *extra), cwd=folder, env=_env(folder), capture_output=True, text=True, timeout=600)


@pytest.fixture
def audit_dir(tmp_path: Path) -> Path:
    (tmp_path / "synthcxr.toml").write_text(SPEC.format(gap_max=0.3, gap_samples=200))
    return tmp_path


@pytest.mark.parametrize("cache", ["shards", "no-cache"])
def test_two_gloo_ranks_write_the_single_process_json_byte_for_byte(audit_dir, cache):
    extra = ("--synthcxr-cache-dir=cache",) if cache == "shards" else ("--synthcxr-no-cache",)
    single = _single(audit_dir, "single.json", *(("--synthcxr-cache-dir=solo",) if cache == "shards" else extra))
    procs = _ranks(audit_dir, 2, "dist.json", *extra)
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert procs[0].returncode == single.returncode, outs[0]
    assert procs[1].returncode == 0, outs[1]
    assert (audit_dir / "dist.json").read_bytes() == (audit_dir / "single.json").read_bytes()
    assert not (audit_dir / "rank1-dist.json").exists()  # only rank 0 writes the report
    if cache == "no-cache":
        return
    shard = audit_dir / "cache" / "shards" / "rank-1" / "index.sqlite"
    with sqlite3.connect(shard) as db:
        in_shard = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    with sqlite3.connect(audit_dir / "cache" / "index.sqlite") as db:
        in_root = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    assert in_shard > 0 and in_root > 0 and abs(in_shard - in_root) <= max(8, 0.1 * in_root)  # round robin: about half each
    # a later single-process run reads rank 0's index and rank 1's shard: nothing generated again
    again = _single(audit_dir, "again.json", "--synthcxr-cache-dir=cache")
    assert "\n0 images generated" in again.stdout, again.stdout
    assert (audit_dir / "again.json").read_bytes() == (audit_dir / "single.json").read_bytes()


def test_a_killed_rank_stops_the_run_with_one_line_and_a_rerun_resumes(tmp_path):
    (tmp_path / "synthcxr.toml").write_text(SPEC.format(gap_max=0.05, gap_samples=20000))
    procs = _ranks(tmp_path, 2, "dist.json", "--synthcxr-cache-dir=cache")
    shard = tmp_path / "cache" / "shards" / "rank-1" / "index.sqlite"
    deadline = time.monotonic() + 120
    while not shard.exists() and time.monotonic() < deadline and procs[0].poll() is None:
        time.sleep(0.1)
    assert shard.exists(), procs[0].communicate()[0]
    time.sleep(1.0)
    procs[1].send_signal(signal.SIGKILL)
    out = procs[0].communicate(timeout=300)[0]
    procs[1].communicate()
    assert procs[0].returncode not in (0, 1), out
    lines = [l for l in out.splitlines() if "another rank of the distributed audit stopped" in l]
    assert len(lines) == 1 and "rerun to resume" in lines[0], out
    assert "Traceback" not in out
    with sqlite3.connect(shard) as db:  # what rank 1 finished before it died stays in its shard
        assert db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] > 0


def test_shards_merge_into_one_cache_checking_hashes(audit_dir):
    procs = _ranks(audit_dir, 2, "dist.json", "--synthcxr-cache-dir=cache")
    for p in procs:
        p.communicate(timeout=600)
    root, shard = audit_dir / "cache", audit_dir / "cache" / "shards" / "rank-1"
    merge = [sys.executable, "-m", "pytest_synthcxr.cache", "merge"]
    # one image of the shard corrupted on disk: left out and counted, the rest copied
    with sqlite3.connect(shard / "index.sqlite") as db:
        total_shard = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        rel = db.execute("SELECT file FROM samples WHERE file IS NOT NULL LIMIT 1").fetchone()
    with sqlite3.connect(root / "index.sqlite") as db:
        total_root = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    if rel is not None:
        path = shard / rel[0]
        path.write_bytes(path.read_bytes()[:-7] + b"garbage")
    done = subprocess.run([*merge, str(root), "--into", str(audit_dir / "merged")], capture_output=True, text=True, env=_env(audit_dir))
    assert done.returncode == 0, done.stderr
    corrupt = 1 if rel is not None else 0
    assert f"{total_root + total_shard - corrupt} samples copied" in done.stdout and f"{corrupt} corrupt" in done.stdout
    assert not (audit_dir / "merged" / "shards").exists()
    again = subprocess.run([*merge, str(shard), "--into", str(audit_dir / "merged")], capture_output=True, text=True, env=_env(audit_dir))
    assert again.returncode == 0 and f"{total_shard - corrupt} already there" in again.stdout, again.stdout
    # the merged cache serves a single-process run: only the corrupted sample is drawn again
    run = _single(audit_dir, "merged.json", "--synthcxr-cache-dir=merged")
    assert f"\n{corrupt} images generated" in run.stdout, run.stdout
    assert (audit_dir / "merged.json").read_bytes() == (audit_dir / "dist.json").read_bytes()
    bad = subprocess.run([*merge, str(audit_dir / "nowhere"), "--into", str(audit_dir / "m2")], capture_output=True, text=True, env=_env(audit_dir))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "is not a sample cache" in bad.stderr


def test_a_merge_conflict_keeps_the_target_and_says_so(tmp_path):
    import numpy as np

    from pytest_synthcxr.sampling.cache import SampleCache
    from pytest_synthcxr.sampling.merge import merge

    a, b = SampleCache(tmp_path / "a"), SampleCache(tmp_path / "b")
    image = np.zeros((8, 8), dtype=np.uint8)
    a.put_samples("g", [("k", "p", 1)], image[None], [True], store=True)
    b.put_samples("g", [("k", "p", 1)], (image + 1)[None], [True], store=True)
    b.put_samples("g", [("k2", "p", 2)], (image + 2)[None], [True], store=True)
    a.close(), b.close()
    stats = merge([tmp_path / "a"], tmp_path / "c")
    assert (stats.copied, stats.conflicts) == (1, 0)
    stats = merge([tmp_path / "b"], tmp_path / "c")
    assert (stats.copied, stats.conflicts, stats.present) == (1, 1, 0)
    c = SampleCache(tmp_path / "c")
    kept = c.lookup(["k"])["k"]
    assert (c.load_image(kept) == 0).all()  # the target's copy


def test_a_corrupt_shard_image_becomes_a_miss_once_dropped(tmp_path):
    """A shard is read-only to the top cache: a shard entry whose file fails its hash check is
    dropped for the rest of the run (lookup and claim no longer see it), so the sample is drawn
    again into the top index instead of being found, failing and found again forever."""
    import numpy as np

    from pytest_synthcxr.sampling.cache import SampleCache

    shard = SampleCache(tmp_path / "cache", shard="rank-1")
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    (entry,) = shard.put_samples("g", [("k", "p", 1)], image[None], [True], store=True)
    shard.close()
    (tmp_path / "cache" / "shards" / "rank-1" / entry.file).write_bytes(b"not a png")
    top = SampleCache(tmp_path / "cache")
    assert top.shards == ["rank-1"]
    found = top.lookup(["k"])["k"]
    assert found.file.startswith("shards/rank-1/") and top.verify() == ["k"]
    assert top.load_image(found) is None  # corrupt: dropped
    assert top.lookup(["k"]) == {} and top.claim(["k"]) == ["k"]
    top.put_samples("g", [("k", "p", 1)], image[None], [True], store=True)  # drawn again, into the top index
    again = top.lookup(["k"])["k"]
    assert not again.file.startswith("shards/") and (top.load_image(again) == image).all()


def test_merge_refuses_a_damaged_source_without_touching_it_and_fills_missing_files(tmp_path):
    import numpy as np

    from pytest_synthcxr.sampling.cache import CacheError, SampleCache
    from pytest_synthcxr.sampling.merge import merge

    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    a = SampleCache(tmp_path / "a")
    a.put_samples("g", [("k", "p", 1)], image[None], [True], store=True)
    a.close()
    c = SampleCache(tmp_path / "c")  # the target knows the sample but kept no file
    c.put_samples("g", [("k", "p", 1)], image[None], [True], store=False)
    c.close()
    stats = merge([tmp_path / "a"], tmp_path / "c")
    assert (stats.present, stats.copied) == (1, 0)
    c = SampleCache(tmp_path / "c")
    assert (c.load_image(c.lookup(["k"])["k"]) == image).all()
    c.close()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "index.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(CacheError, match="index is not readable"):
        merge([bad], tmp_path / "c")
    assert (bad / "index.sqlite").read_bytes() == b"this is not a database" * 100  # untouched
    assert not list(bad.glob("index.sqlite.damaged-*"))


def test_the_real_torchrun_launcher_runs_the_audit(audit_dir):
    """`torchrun --standalone --nproc-per-node=2 -m pytest ...` as the docs say (torch's own
    launcher, elastic agent included): rank 0's JSON equals a single-process run's, and the run's
    exit code is the gate's (torchrun passes on rank 0's)."""
    single = _single(audit_dir, "single.json", "--synthcxr-no-cache")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *_command(audit_dir, "dist.json", "--synthcxr-no-cache")[1:]]
    done = subprocess.run(command, cwd=audit_dir, env=_env(audit_dir), capture_output=True, text=True, timeout=600)
    assert (audit_dir / "dist.json").read_bytes() == (audit_dir / "single.json").read_bytes(), done.stdout[-2000:] + done.stderr[-2000:]
    assert done.returncode == single.returncode
