"""``python -m pytest_synthcxr.cache merge A B ... --into C``: fold caches or cache shards into one.

A distributed audit leaves one shard per rank (``shards/<name>/`` under the cache folder, or a
folder per node where the nodes share no file system). Merging copies every sample row and its
image file into the target, checking each stored image against its content hash (a corrupt file
is left out and counted, so its sample is generated again), and every judge score. A key already
in the target with a different image is a conflict: the target's copy is kept, and the command
says so and exits 1 (same key means same generator fingerprint, prompt and seed, so a
different image means a generator that is not deterministic or an edited cache).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from .cache import CacheError, SampleCache, open_read_only


@dataclass
class MergeStats:
    copied: int = 0
    present: int = 0
    corrupt: int = 0
    conflicts: int = 0
    scores: int = 0


def merge(sources: list[Path], into: Path) -> MergeStats:
    """Copy every sample, image and score of `sources` (each a cache folder; its shards too)
    into the cache at `into`."""
    for source in sources:  # a damaged source is refused, never "repaired" (opening it read-write would move it aside)
        problem = _unreadable(source / "index.sqlite")
        if problem:
            raise CacheError(f"synthcxr: {source}: its index is not readable ({problem}); nothing merged")
    target = SampleCache(into)
    if target.rebuilt:
        target.close()
        raise CacheError(f"{target.rebuilt}; nothing merged, check {into} first")
    stats = MergeStats()
    try:
        for source in sources:
            cache = SampleCache(source)
            try:
                _merge_one(cache, target, stats)
            finally:
                cache.close()
    finally:
        target.close()
    return stats


def _unreadable(index: Path) -> str | None:
    """Why the index cannot be read as a cache index (read-only check), or None."""
    try:
        db = open_read_only(index)
        try:
            check = db.execute("PRAGMA quick_check").fetchone()
            db.execute("SELECT key FROM samples LIMIT 1").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None if check and check[0] == "ok" else str(check[0] if check else "quick_check failed")[:120]


def _merge_one(cache: SampleCache, target: SampleCache, stats: MergeStats) -> None:
    db = target._db
    for key, generator, prompt, seed, sha, valid, rel, created in cache.rows():
        have = db.execute("SELECT image_sha, file FROM samples WHERE key = ?", (key,)).fetchone()
        if have is not None:
            if have[0] != sha:
                stats.conflicts += 1
                continue
            stats.present += 1
            if have[1] is None and rel is not None:  # the target knew the sample but had no file: add it
                copied = _copy_image(cache, target, rel, sha)
                if copied is not None:
                    with target._transaction():
                        db.execute("UPDATE samples SET file = ? WHERE key = ?", (copied, key))
            continue
        new_rel = None if rel is None else _copy_image(cache, target, rel, sha)
        if rel is not None and new_rel is None:
            stats.corrupt += 1
            continue
        with target._transaction():
            db.execute("INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (key, generator, prompt, seed, sha, valid, new_rel, created))
        stats.copied += 1
    rows = list(cache.score_rows())
    with target._transaction():
        before = db.total_changes
        db.executemany("INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?)", rows)
        stats.scores += db.total_changes - before


def _copy_image(cache: SampleCache, target: SampleCache, rel: str, sha: str) -> str | None:
    """The image file `rel` of `cache` written into `target` (its new relative path), or None when
    the file does not match its hash."""
    image = cache._intact(rel, sha)
    return None if image is None else target._write_image(sha, image)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_synthcxr.cache", description="Sample cache tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("merge", help="merge caches or cache shards into one cache, checking every image's hash")
    m.add_argument("sources", nargs="+", type=Path, help="cache folders (or shards/<name>/ folders) to read")
    m.add_argument("--into", required=True, type=Path, help="the cache folder to write (created if missing)")
    args = parser.parse_args(argv)
    missing = [s for s in args.sources if not (s / "index.sqlite").is_file()]
    if missing:
        print(f"synthcxr: {missing[0]} is not a sample cache (no index.sqlite there)", file=sys.stderr)
        return 2
    if any(s.resolve() == args.into.resolve() for s in args.sources):
        print(f"synthcxr: {args.into} is both a source and the target", file=sys.stderr)
        return 2
    try:
        stats = merge(args.sources, args.into)
    except CacheError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(
        f"synthcxr: merged into {args.into}: {stats.copied} samples copied, {stats.present} already there, "
        f"{stats.scores} scores, {stats.corrupt} corrupt images left out, {stats.conflicts} conflicts"
    )
    if stats.conflicts:
        print(f"synthcxr: {stats.conflicts} keys hold a different image in {args.into} than in a source: the target's copy was kept", file=sys.stderr)
        return 1
    return 0
