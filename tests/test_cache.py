"""Sample cache: content addressing, atomic writes, corruption, sharing between processes, resume
after SIGKILL. Stand-in generator and judge (no torch), so every test here is fast."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_synthcxr.sampling.cache import SampleCache, image_sha, is_8bit, sample_key
from pytest_synthcxr.sampling.cells import Cell
from pytest_synthcxr.sampling.pool import SamplePool

CELLS = [Cell(f, (("sex", s),), n) for f in ("Effusion", None) for s in ("female", "male") for n in (False, True)]


class CountingGenerator:
    """Image i depends only on (prompt i, seed i); every seed % 11 == 0 is blacked out (invalid).
    `eight_bit` quantizes like the diffusers generator; `delay` slows generation per image."""

    name = "counting"
    settings = {"size": 24}

    def __init__(self, eight_bit: bool = True, delay: float = 0.0, tag: str = "a") -> None:
        self.eight_bit, self.delay, self.calls = eight_bit, delay, 0
        self.fingerprint = f"counting-{tag}-{eight_bit}"

    def generate(self, prompts, seeds):
        self.calls += len(prompts)
        out = []
        for prompt, seed in zip(prompts, seeds):
            rng = np.random.default_rng([int(seed), len(prompt)])
            img = rng.random((24, 24), dtype=np.float32)
            if self.eight_bit:
                img = (np.round(img * 255) / 255).astype(np.float32)
            out.append(np.zeros((24, 24), np.float32) if seed % 11 == 0 else img)
            if self.delay:
                time.sleep(self.delay)
        return np.stack(out)


class MeanJudge:
    outputs = ("Effusion", "COVID-19")

    def __init__(self, fingerprint: str = "judge-1") -> None:
        self.fingerprint, self.calls = fingerprint, 0

    def predict(self, images):
        self.calls += len(images)
        m = images.reshape(len(images), -1).mean(axis=1)
        return np.stack([m, (m * 10) % 1], axis=1).astype(float)


def pool(cache=None, batch_size=7, generator=None, judge=None, store=True, thumbnails=2):
    return SamplePool(generator or CountingGenerator(), judge or MeanJudge(), 5, batch_size=batch_size, thumbnails=thumbnails, cache=cache, store_images=store)


def frame(p, n=9):
    return p.table(CELLS, n).reset_index(drop=True)


def test_image_files_are_lossless_png_for_8bit_images_and_npy_otherwise(tmp_path):
    cache = SampleCache(tmp_path)
    rng = np.random.default_rng(0)
    eight = (np.round(rng.random((8, 8)) * 255) / 255).astype(np.float32)
    free = rng.random((8, 8)).astype(np.float32)
    assert is_8bit(eight) and not is_8bit(free) and not is_8bit(np.full((2, 2), np.nan, np.float32))
    entries = cache.put_samples("g", [("k1", "p", 1), ("k2", "p", 2)], np.stack([eight, free]), [True, True], store=True)
    assert [Path(e.file).suffix for e in entries] == [".png", ".npy"]
    for entry, image in zip(cache.lookup(["k1", "k2"]).values(), (eight, free)):
        assert np.array_equal(cache.load_image(entry), image)
        assert entry.image_sha == image_sha(image)
    assert cache.verify() == []


def test_keys_depend_on_fingerprint_prompt_and_seed_not_on_anything_else():
    base = sample_key("fp", "Effusion", 3)
    assert base == sample_key("fp", "Effusion", 3)
    assert len({base, sample_key("fp2", "Effusion", 3), sample_key("fp", "Edema", 3), sample_key("fp", "Effusion", 4)}) == 4


def test_warm_pool_generates_and_judges_nothing_and_serves_identical_scores(tmp_path):
    cold = pool(SampleCache(tmp_path))
    first = frame(cold)
    assert cold.stats.generated == len(first) and cold.stats.cached == 0
    g, j = CountingGenerator(), MeanJudge()
    warm = pool(SampleCache(tmp_path), batch_size=3, generator=g, judge=j)  # other batch size
    second = frame(warm)
    pd.testing.assert_frame_equal(first, second)
    assert warm.stats.generated == 0 and warm.stats.cached == len(first)
    # thumbnails came from the stored PNGs; the judge re-scored only the seeded verification sample
    assert g.calls == 0 and j.calls == warm.verify_per_cell * len(CELLS)
    assert [t.tobytes() for c in CELLS for t in warm.thumbnails_of(c)] == [t.tobytes() for c in CELLS for t in cold.thumbnails_of(c)]
    pd.testing.assert_frame_equal(frame(pool(None)), first)  # and the same as without a cache


def test_unstored_images_are_drawn_again_only_for_thumbnails(tmp_path):
    frame(pool(SampleCache(tmp_path), store=False))
    g = CountingGenerator()
    warm = pool(SampleCache(tmp_path), generator=g, store=False)
    frame(warm)
    # thumbnails of samples 0 and 1, and the seeded verification samples (unstored: drawn again)
    assert warm.stats.generated == 0 and g.calls == warm.stats.redrawn
    assert 2 * len(CELLS) < g.calls <= (2 + warm.verify_per_cell) * len(CELLS)
    assert SampleCache(tmp_path).counts()["images"] == 0


def test_a_new_judge_scores_cached_images_without_generating_them(tmp_path):
    frame(pool(SampleCache(tmp_path)))
    g, j = CountingGenerator(), MeanJudge("judge-2")
    second = pool(SampleCache(tmp_path), generator=g, judge=j)
    frame(second)
    valid = int(second.table(CELLS, 9)["valid"].sum())
    assert g.calls == 0 and j.calls == valid and second.stats.generated == 0


def test_a_different_generator_fingerprint_misses(tmp_path):
    frame(pool(SampleCache(tmp_path)))
    other = pool(SampleCache(tmp_path), generator=CountingGenerator(tag="retrained"))
    frame(other)
    assert other.stats.cached == 0 and other.stats.generated == 9 * len(CELLS)


def test_corrupt_and_missing_files_are_detected_and_regenerated(tmp_path):
    first = frame(pool(SampleCache(tmp_path)))
    cache = SampleCache(tmp_path)
    files = sorted((tmp_path / "images").rglob("*.png"))
    files[0].write_bytes(files[0].read_bytes()[:40])  # truncated
    files[1].unlink()
    assert len(cache.verify()) == 2
    again = pool(cache, thumbnails=9)  # needs every image's pixels
    pd.testing.assert_frame_equal(frame(again), first)
    assert again.stats.corrupt == 2 and again.stats.generated == 2
    assert cache.verify() == []


def test_two_processes_share_the_work_and_never_draw_a_sample_twice(tmp_path):
    script = tmp_path / "fill.py"
    script.write_text(
        f"import sys, json\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_cache import *\n"
        "import os, pathlib, time\n"
        "gate = pathlib.Path(sys.argv[2])\n"
        "(gate / str(os.getpid())).touch()\n"
        "while len(list(gate.iterdir())) < 2:  # start together, however long imports took\n"
        "    time.sleep(0.01)\n"
        "p = pool(SampleCache(sys.argv[1]), batch_size=4, generator=CountingGenerator(delay=0.01))\n"
        "p.ensure(CELLS, 20)\n"
        "print(json.dumps({'generated': p.stats.generated, 'cached': p.stats.cached}))\n"
    )
    (tmp_path / "gate").mkdir()
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "c"), str(tmp_path / "gate")], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    total = 20 * len(CELLS)
    assert sum(o["generated"] for o in outs) == total  # each sample drawn exactly once
    assert all(o["generated"] > 0 for o in outs)  # and both did some of the work
    assert all(o["generated"] + o["cached"] == total for o in outs)
    assert SampleCache(tmp_path / "c").counts()["samples"] == total


def test_a_claim_of_a_dead_process_is_taken_over(tmp_path):
    cache = SampleCache(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    host = cache.owner.rpartition(":")[0]
    with cache._transaction():
        cache._db.execute("INSERT INTO claims VALUES (?, ?, ?)", ("k", f"{host}:{dead}", time.time()))
        cache._db.execute("INSERT INTO claims VALUES (?, ?, ?)", ("alive", f"{host}:1", time.time()))  # pid 1 lives
    assert cache.claim(["k", "alive", "free"]) == ["k", "free"]


def test_sigkill_mid_generation_loses_nothing_finished_and_leaves_nothing_corrupt(tmp_path):
    script = tmp_path / "fill.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_cache import *\n"
        "p = pool(SampleCache(sys.argv[1]), batch_size=3, generator=CountingGenerator(eight_bit=sys.argv[2] == '8'))\n"
        "p.ensure(CELLS, 400)\n"
    )
    folder = tmp_path / "c"
    rng = np.random.default_rng(0)
    counts = []
    for attempt in range(5):
        before = counts[-1] if counts else 0
        proc = subprocess.Popen([sys.executable, str(script), str(folder), "8" if attempt % 2 else "f"])
        # no fixed sleep (a loaded machine may still be importing): kill once this run has added
        # samples, at a random moment after that
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if folder.joinpath("index.sqlite").exists():
                probe = SampleCache(folder)
                grown = probe.counts()["samples"] > before
                probe.close()
                if grown:
                    break
            time.sleep(0.05)
        time.sleep(rng.random() * 0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        cache = SampleCache(folder)
        assert cache.verify() == []  # every row's file is whole and matches its hash
        counts.append(cache.counts()["samples"])
        cache.close()
    # finished work is never lost and accumulates (a fast machine may finish a fingerprint's samples)
    assert 0 < counts[0] < counts[-1] and counts == sorted(counts)
    # finishing from the cache gives exactly what an uncached run gives
    for bits in ("f", "8"):
        resumed = pool(SampleCache(folder), batch_size=3, generator=CountingGenerator(eight_bit=bits == "8"))
        fresh = pool(None, batch_size=50, generator=CountingGenerator(eight_bit=bits == "8"))
        pd.testing.assert_frame_equal(resumed.table(CELLS, 400), fresh.table(CELLS, 400))


def test_audit_reruns_from_the_cache_and_no_cache_bypasses_it(pytester):
    pytester.makefile(".toml", synthcxr=(Path(__file__).parent.parent / "fixtures/specs/small.toml").read_text())
    args = ["-p", "no:randomly", "--synthcxr-model=phantom", "--synthcxr-spec=synthcxr.toml", "--synthcxr-json=out.json"]
    cold = pytester.runpytest(*args)
    cold_json = (pytester.path / "out.json").read_bytes()
    cold.stdout.fnmatch_lines(["sample cache: 0 hits, * misses*"])
    warm = pytester.runpytest(*args)
    warm.stdout.fnmatch_lines(["0 images generated*", "sample cache: * hits, 0 misses*"])
    assert (pytester.path / "out.json").read_bytes() == cold_json  # the same numbers and verdicts
    bypass = pytester.runpytest(*args, "--synthcxr-no-cache")
    assert "sample cache:" not in bypass.stdout.str()
    assert (pytester.path / "out.json").read_bytes() == cold_json
    shared = pytester.path / "shared-cache"
    pytester.runpytest(*args, f"--synthcxr-cache-dir={shared}")
    assert (shared / "index.sqlite").is_file()


def test_an_unusable_cache_dir_is_one_line(pytester):
    blocker = pytester.path / "file"
    blocker.write_text("not a folder")
    result = pytester.runpytest("--synthcxr-model=phantom", f"--synthcxr-cache-dir={blocker}/sub")
    result.stdout.no_fnmatch_line("*Traceback*")
    assert "is not usable" in result.stdout.str() + result.stderr.str()


def test_xdist_workers_share_one_cache_and_agree_with_a_single_process(pytester):
    pytester.makefile(".toml", synthcxr=(Path(__file__).parent.parent / "fixtures/specs/small.toml").read_text())
    args = ["-p", "no:randomly", "--synthcxr-model=phantom", "--synthcxr-spec=synthcxr.toml"]
    pytester.runpytest(*args, "--synthcxr-no-cache", "--synthcxr-json=single.json")
    shared = pytester.path / "shared"
    result = pytester.runpytest_subprocess(*args, "-n", "2", f"--synthcxr-cache-dir={shared}", "--synthcxr-json=xdist.json")
    assert result.ret in (0, 1) and "Traceback" not in result.stdout.str()
    assert (pytester.path / "xdist.json").read_bytes() == (pytester.path / "single.json").read_bytes()
    single = json.loads((pytester.path / "single.json").read_text())
    assert SampleCache(shared).counts()["samples"] == single["samples"]["total"]
