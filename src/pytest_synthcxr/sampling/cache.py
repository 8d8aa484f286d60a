"""Content-addressed sample cache: no image is generated twice, and no finished one is lost.

Layout under the cache folder::

    index.sqlite          samples, scores and claims (SQLite in WAL mode: crash-safe, multi-process)
    images/ab/abcdef.png  8-bit images as PNG, anything else as .npy (both lossless)

- A **sample** is keyed by sha256(generator fingerprint, prompt, seed). The generator's fingerprint
  hashes its weight and config files and every setting that shapes images, never its path, so a
  moved checkpoint still hits and a retrained one misses.
- **Scores** are keyed by (judge fingerprint, image hash): a new judge re-scores cached images
  without regenerating them.
- Writes are atomic: an image file is written to a temporary name and renamed, then its row is
  committed. A run killed at any point leaves either no row (the sample is generated again) or a
  row whose file is complete. A file that no longer matches its hash is detected on read, dropped
  and regenerated.
- **Shards** (distributed audits, issue 19): rank r > 0 of a `torchrun` audit writes its own
  cache under ``shards/<name>/`` (same layout: its own index and images), so no SQLite database is
  ever written by two hosts. The cache opened at the top folder also *reads* every shard found
  there when it opens (a rerun resumes from all of them); ``python -m pytest_synthcxr.cache merge``
  folds shards or whole caches into one, checking every image against its hash.
- Several processes (pytest-xdist workers, ranks of a distributed fill) share one cache through
  **claims**: a process claims the samples it is about to generate; others skip them and pick them
  up from the cache when they are written. A claim whose owner died (same host) or that is older
  than the lease is taken over, so a killed worker never blocks the rest.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY,          -- sha256(generator fingerprint, prompt, seed)
    generator TEXT NOT NULL,
    prompt TEXT NOT NULL,
    seed INTEGER NOT NULL,
    image_sha TEXT NOT NULL,       -- sha256 of the image array (shape + float32 bytes)
    valid INTEGER NOT NULL,
    file TEXT,                     -- relative path of the stored image, or NULL when not stored
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS scores (
    judge TEXT NOT NULL,
    image_sha TEXT NOT NULL,
    outputs TEXT NOT NULL,         -- the judge's output names, tab-separated
    scores BLOB NOT NULL,          -- float64, one per output
    PRIMARY KEY (judge, image_sha)
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,           -- host:pid
    since REAL NOT NULL
);
"""
_CHUNK = 500  # keys per SQL "IN (...)" query, below SQLite's parameter limit


@dataclass(frozen=True)
class Entry:
    """A cached sample's index row."""

    key: str
    image_sha: str
    valid: bool
    file: str | None


def sample_key(generator_fingerprint: str, prompt: str, seed: int) -> str:
    return hashlib.sha256(f"{generator_fingerprint}\x1f{prompt}\x1f{int(seed)}".encode()).hexdigest()


def image_sha(image: np.ndarray) -> str:
    """Content hash of an image: its shape and float32 bytes (NaN patterns included)."""
    arr = np.ascontiguousarray(image, dtype=np.float32)
    digest = hashlib.sha256(repr(arr.shape).encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


def is_8bit(image: np.ndarray) -> bool:
    """True when the image is exactly representable as an 8-bit PNG (values k/255)."""
    if not np.isfinite(image).all():
        return False
    q = np.round(image * 255.0)
    return bool((q >= 0).all() and (q <= 255).all() and np.array_equal((q / 255.0).astype(np.float32), image))


def _encode(image: np.ndarray) -> tuple[bytes, str]:
    image = np.asarray(image, dtype=np.float32)
    buffer = io.BytesIO()
    if image.ndim == 2 and is_8bit(image):
        from PIL import Image

        Image.fromarray(np.round(image * 255.0).astype(np.uint8)).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue(), ".png"
    np.save(buffer, image, allow_pickle=False)
    return buffer.getvalue(), ".npy"


def _decode(data: bytes, suffix: str) -> np.ndarray:
    if suffix == ".png":
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return (np.asarray(im, dtype=np.uint8) / 255.0).astype(np.float32)
    return np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32, copy=False)


class SampleCache:
    """One cache folder; safe to share between processes on one machine or a shared file system."""

    def __init__(
        self, root: Path | str, *, lease_seconds: float = 900.0, lock_timeout: float = 10.0, warn: Any = None, shard: str | None = None,
    ) -> None:
        #: the folder this process writes: the cache folder itself, or its shards/<shard>/
        self.top = Path(root)
        self.root = self.top if shard is None else self.top / "shards" / shard
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.warn = warn  # callable(str) told once when the cache is turned off mid-run, or None
        self.disabled: str | None = None  # the one line saying why the cache stopped being used
        #: set when a damaged index was moved aside and a new, empty one started
        self.rebuilt: str | None = None
        try:
            (self.root / "images").mkdir(parents=True, exist_ok=True)
            try:
                self._open(lock_timeout)
            except sqlite3.DatabaseError as exc:
                if _locked(exc):
                    raise
                self.rebuilt = self._move_aside(exc)
                self._open(lock_timeout)
        except sqlite3.OperationalError as exc:
            why = "its index is locked by another process" if _locked(exc) else str(exc)
            raise CacheError(f"synthcxr: cache folder {self.root} is not usable: {why} (use --synthcxr-cache-dir or --synthcxr-no-cache)") from None
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(f"synthcxr: cache folder {self.root} is not usable: {exc} (use --synthcxr-cache-dir or --synthcxr-no-cache)") from None
        #: keys of shard rows whose file was found corrupt this run (shards are not written)
        self._dropped: set[str] = set()
        #: (file prefix, read-only index) of every other shard: read, never written
        self._shards: list[tuple[str, sqlite3.Connection]] = self._open_shards() if shard is None else []

    def _open_shards(self) -> list[tuple[str, sqlite3.Connection]]:
        shards = []
        for index in sorted((self.top / "shards").glob("*/index.sqlite")):
            try:
                db = open_read_only(index)
                db.execute("SELECT 1 FROM samples LIMIT 1").fetchall()
            except sqlite3.Error as exc:  # a broken shard is left out with one line; the rest is read
                if self.warn is not None:
                    self.warn(f"synthcxr: cache shard {index.parent} is not readable ({exc}); left out")
                continue
            shards.append((f"shards/{index.parent.name}/", db))
        return shards

    @property
    def shards(self) -> list[str]:
        """Names of the shards this cache reads besides its own index."""
        return [prefix.split("/")[1] for prefix, _ in self._shards]

    def _indexes(self) -> list[tuple[str, sqlite3.Connection]]:
        """(file prefix, index) of this cache's own index, then of every shard it reads."""
        return [("", self._db), *self._shards]

    def _open(self, lock_timeout: float) -> None:
        db = sqlite3.connect(self.root / "index.sqlite", timeout=lock_timeout, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            check = db.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {str(check[0] if check else '')[:120]}")
            db.execute("BEGIN IMMEDIATE")  # a write lock held for longer than lock_timeout: one line now, not per item
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        db.execute(f"PRAGMA busy_timeout = {int(120_000)}")  # later writers wait for each other's short transactions
        self._db = db

    def _move_aside(self, exc: BaseException) -> str:
        """A damaged index is kept for inspection under another name and a new one is started; the
        image files stay (content-addressed), the samples they hold are generated or matched again."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            path = self.root / f"index.sqlite{suffix}"
            if path.exists():
                os.replace(path, self.root / f"index.sqlite{suffix}.damaged-{stamp}")
        return f"synthcxr: cache {self.root}: the index was damaged ({str(exc).splitlines()[0][:120]}); moved aside as index.sqlite.damaged-{stamp}, starting a new one"

    def _off(self, exc: BaseException) -> None:
        """Stop using the cache for the rest of the run (one line, once): the audit goes on without it."""
        if self.disabled is None:
            self.disabled = f"synthcxr: cache {self.root}: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}; continuing without the cache"
            if self.warn is not None:
                self.warn(self.disabled)

    def checkpoint(self) -> None:
        """Fold the write-ahead log into index.sqlite, so the index file alone is complete (after a
        normal run: a CI job that saves only index.sqlite loses nothing)."""
        if self.disabled is None:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                self._off(exc)

    def close(self) -> None:
        self.checkpoint()
        self._db.close()
        for _, db in self._shards:
            db.close()

    # -- samples -------------------------------------------------------------------------------

    def lookup(self, keys: Sequence[str]) -> dict[str, Entry]:
        """Cached entries of these keys: this index first, then the shards' (their files named
        relative to this folder, so load_image reads them where they are)."""
        found: dict[str, Entry] = {}
        for prefix, db in self._indexes():
            # a shard row dropped this run (its file was corrupt) is read-only: skip it, so the
            # sample is a miss and is drawn again into this index
            wanted = [k for k in keys if k not in found and not (prefix and k in self._dropped)]
            for chunk in _chunks(wanted):
                rows = db.execute(
                    f"SELECT key, image_sha, valid, file FROM samples WHERE key IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                found.update((r[0], Entry(r[0], r[1], bool(r[2]), None if r[3] is None else prefix + r[3])) for r in rows)
        return found

    def put_samples(
        self,
        generator: str,
        rows: Sequence[tuple[str, str, int]],
        images: np.ndarray,
        valid: Sequence[bool],
        *,
        store: bool,
    ) -> list[Entry]:
        """Record samples (key, prompt, seed) with their images; files first, rows after."""
        entries, records = [], []
        now = time.time()
        for (key, prompt, seed), image, ok in zip(rows, images, valid):
            sha = image_sha(image)
            rel = self._write_image(sha, image) if store else None
            entries.append(Entry(key, sha, bool(ok), rel))
            records.append((key, generator, prompt, int(seed), sha, int(bool(ok)), rel, now))
        with self._transaction():
            # a sample written meanwhile by another process is identical (same key, same image): keep the first
            self._db.executemany("INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)", records)
            self.release([r[0] for r in records])  # joins this transaction
        return entries

    def _write_image(self, sha: str, image: np.ndarray) -> str:
        data, suffix = _encode(image)
        rel = f"images/{sha[:2]}/{sha}{suffix}"
        path = self.root / rel
        if path.is_file() and path.stat().st_size == len(data):
            return rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic: readers see the old state or the whole file
        return rel

    def load_image(self, entry: Entry) -> np.ndarray | None:
        """The stored image, or None when it is not stored, missing or corrupt (a corrupt entry is
        dropped, so the sample is generated again)."""
        if entry.file is None:
            return None
        image = self._intact(entry.file, entry.image_sha)
        if image is None:
            self.drop(entry)
        return image

    def _intact(self, rel: str, sha: str) -> np.ndarray | None:
        """The image in file `rel` if it decodes and matches its hash, else None."""
        path = self.root / rel
        try:
            image = _decode(path.read_bytes(), path.suffix)
        except Exception:  # noqa: BLE001 - unreadable or missing file: same as corrupt
            return None
        return image if image_sha(image) == sha else None

    def drop(self, entry: Entry) -> None:
        if entry.file is not None and entry.file.startswith("shards/"):
            self._dropped.add(entry.key)
        with self._transaction():
            self._db.execute("DELETE FROM samples WHERE key = ?", (entry.key,))
        if entry.file is not None:
            try:
                (self.root / entry.file).unlink()
            except OSError:
                pass

    # -- scores --------------------------------------------------------------------------------

    def scores(self, judge: str, outputs: Sequence[str], shas: Iterable[str]) -> dict[str, np.ndarray]:
        names = "\t".join(outputs)
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(shas))
        for _, db in self._indexes():
            for chunk in _chunks([s for s in wanted if s not in found]):
                rows = db.execute(
                    f"SELECT image_sha, outputs, scores FROM scores WHERE judge = ? AND image_sha IN ({','.join('?' * len(chunk))})",
                    [judge, *chunk],
                ).fetchall()
                for sha, stored_names, blob in rows:
                    values = np.frombuffer(blob, dtype=np.float64)
                    if stored_names == names and len(values) == len(outputs):
                        found[sha] = values.copy()
        return found

    def put_scores(self, judge: str, outputs: Sequence[str], shas: Sequence[str], scores: np.ndarray) -> None:
        names = "\t".join(outputs)
        records = [(judge, sha, names, np.asarray(row, dtype=np.float64).tobytes()) for sha, row in zip(shas, scores)]
        with self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)", records)

    # -- claims (sharing the work between processes) ------------------------------------------

    def claim(self, keys: Sequence[str]) -> list[str]:
        """Claim the keys that are neither cached nor claimed by a live owner; returns them."""
        now = time.time()
        mine: list[str] = []
        with self._transaction():
            done = self.lookup(keys)
            claims: dict[str, tuple[str, float]] = {}
            for chunk in _chunks([k for k in keys if k not in done]):
                query = f"SELECT key, owner, since FROM claims WHERE key IN ({','.join('?' * len(chunk))})"
                claims.update((r[0], (r[1], r[2])) for r in self._db.execute(query, chunk))
            for key in keys:
                if key in done:
                    continue
                held = claims.get(key)
                if held is None or held[0] == self.owner or not self._alive(*held, now=now):
                    mine.append(key)
            self._db.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", [(k, self.owner, now) for k in mine])
        return mine

    def release(self, keys: Sequence[str]) -> None:
        with self._transaction():
            self._db.executemany("DELETE FROM claims WHERE key = ? AND owner = ?", [(k, self.owner) for k in keys])

    def _alive(self, owner: str, since: float, *, now: float) -> bool:
        if now - since > self.lease_seconds:
            return False
        host, _, pid = owner.rpartition(":")
        if host == socket.gethostname() and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True

    # -- housekeeping --------------------------------------------------------------------------

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)

    def size_bytes(self) -> int:
        total = 0
        for path in self.root.rglob("*"):
            try:
                if path.is_file():
                    total += path.stat().st_size
            except OSError:
                pass
        return total

    def counts(self) -> dict[str, int]:
        """Rows of this index and of the shards it reads (a sample in two shards counts twice)."""
        out = {"samples": 0, "images": 0, "scores": 0}
        for _, db in self._indexes():
            samples = db.execute("SELECT COUNT(*), COUNT(file) FROM samples").fetchone()
            out["samples"] += samples[0]
            out["images"] += samples[1]
            out["scores"] += db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        return out

    def rows(self) -> Iterable[tuple[Any, ...]]:
        """Every sample row of this index and of its shards (files relative to this folder)."""
        for prefix, db in self._indexes():
            for key, generator, prompt, seed, sha, valid, rel, created in db.execute("SELECT * FROM samples"):
                yield key, generator, prompt, seed, sha, valid, None if rel is None else prefix + rel, created

    def score_rows(self) -> Iterable[tuple[Any, ...]]:
        """Every score row of this index and of its shards."""
        for _, db in self._indexes():
            yield from db.execute("SELECT judge, image_sha, outputs, scores FROM scores")

    def verify(self) -> list[str]:
        """Keys of entries whose stored image is missing or does not match its hash (none are
        dropped: this is the read-only check a test or a user runs)."""
        rows = [(key, sha, rel) for key, _, _, _, sha, _, rel, _ in self.rows() if rel is not None]
        return [key for key, sha, rel in rows if self._intact(rel, sha) is None]


class CacheError(Exception):
    """A cache folder that cannot be used; str() is the one line shown to the user."""


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): one writer at a time, no lost updates."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.outermost = False

    def __enter__(self) -> None:
        if not self.db.in_transaction:  # nested use joins the outer transaction
            self.db.execute("BEGIN IMMEDIATE")
            self.outermost = True

    def __exit__(self, kind: object, *_: object) -> None:
        if self.outermost:
            self.db.execute("ROLLBACK" if kind is not None else "COMMIT")


def open_read_only(index: Path) -> sqlite3.Connection:
    """An index opened for reading only (a shard, a merge source): never written, never rebuilt."""
    return sqlite3.connect(f"{index.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0, isolation_level=None)


def _locked(exc: BaseException) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _guard(default: Any) -> Any:
    """Wrap a cache method: a database error turns the cache off for the run (one line, once) and
    the method answers `default()` (no hits, nothing stored), so items never fail on the cache."""
    import functools

    def wrap(method: Any) -> Any:
        @functools.wraps(method)
        def guarded(self: "SampleCache", *args: Any, **kwargs: Any) -> Any:
            if self.disabled is not None:
                return default(self, *args)
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                self._off(exc)
                return default(self, *args)

        return guarded

    return wrap


for _name, _default in {
    "lookup": lambda self, *a: {},
    "put_samples": None,  # below: entries without stored files
    "drop": lambda self, *a: None,
    "scores": lambda self, *a: {},
    "put_scores": lambda self, *a: None,
    "claim": lambda self, keys, *a: list(keys),
    "release": lambda self, *a: None,
    "counts": lambda self, *a: {"samples": 0, "images": 0, "scores": 0},
}.items():
    if _default is not None:
        setattr(SampleCache, _name, _guard(_default)(getattr(SampleCache, _name)))


def _unstored(self: SampleCache, generator: str, rows: Sequence[tuple[str, str, int]], images: np.ndarray, valid: Sequence[bool], *_: Any) -> list[Entry]:
    return [Entry(key, image_sha(image), bool(ok), None) for (key, _p, _s), image, ok in zip(rows, images, valid)]


SampleCache.put_samples = _guard(_unstored)(SampleCache.put_samples)  # type: ignore[method-assign]


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
