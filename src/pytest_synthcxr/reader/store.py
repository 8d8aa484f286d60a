"""The labels store: one SQLite file beside the cache, one row per reader x image x question.

- WAL mode, synchronous=FULL, one short transaction per answer (committed before the page hears
  back): a killed server loses nothing that a reader saw acknowledged.
- Each request opens its own connection, so several readers (threads or processes) write at once;
  SQLite serialises the short writes (busy timeout 30 s).
- ``images`` records what each study image is (kind, cell, seed, prompt, subgroup), so labels can
  be joined to the audit's score table on (cell, seed) without the server ever being asked a path.
- A reader answering a question again replaces the earlier answer (latest wins, time updated).
"""

from __future__ import annotations

import csv
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    image_sha TEXT PRIMARY KEY,    -- content hash (sampling.cache.image_sha)
    kind TEXT NOT NULL,            -- 'generated' or 'reference'
    cell TEXT NOT NULL DEFAULT '', -- the audit cell key of a generated image
    seed INTEGER,                  -- its sample seed
    prompt TEXT NOT NULL DEFAULT '',
    subgroup TEXT NOT NULL DEFAULT '',
    finding TEXT NOT NULL DEFAULT ''  -- the finding the prompt asked for ('' = normal study)
);
CREATE TABLE IF NOT EXISTS labels (
    reader TEXT NOT NULL,
    image_sha TEXT NOT NULL,
    task TEXT NOT NULL,            -- 'findings' or 'real-synthetic'
    question TEXT NOT NULL,        -- a finding name, 'usable', or 'synthetic'
    answer TEXT NOT NULL,          -- present/absent/unsure; yes/no; synthetic/real
    confidence INTEGER,            -- 1-5 (real-synthetic)
    time REAL NOT NULL,            -- unix time of the answer
    PRIMARY KEY (reader, image_sha, task, question)
);
"""

#: columns of the CSV export (and what checks.reader.read_labels accepts)
COLUMNS = ("reader", "image_sha", "kind", "cell", "seed", "prompt", "subgroup", "finding", "task", "question", "answer", "confidence", "time")
TASKS = ("findings", "real-synthetic")
FINDING_ANSWERS = ("present", "absent", "unsure")


@dataclass(frozen=True)
class StudyImage:
    """One image of a study: its hash and what it is (never shown to a blinded reader)."""

    image_sha: str
    kind: str  # generated | reference
    cell: str = ""
    seed: int | None = None
    prompt: str = ""
    subgroup: str = ""
    finding: str = ""


class LabelStore:
    """The labels database at `path` (created on first use)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")  # an acknowledged answer survives a power cut too
        db.execute("PRAGMA busy_timeout=30000")
        return _Closing(db)  # type: ignore[return-value]

    def register(self, images: Iterable[StudyImage]) -> None:
        rows = [(i.image_sha, i.kind, i.cell, i.seed, i.prompt, i.subgroup, i.finding) for i in images]
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")

    def answer(self, reader: str, image_sha: str, task: str, answers: dict[str, str], confidence: int | None = None) -> None:
        """Store one image's answers (question -> answer) in one transaction."""
        now = time.time()
        rows = [(reader, image_sha, task, q, a, confidence, now) for q, a in answers.items()]
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")

    def answered(self, reader: str, task: str) -> set[str]:
        """Images this reader has finished in this task."""
        with self._connect() as db:
            rows = db.execute("SELECT DISTINCT image_sha FROM labels WHERE reader = ? AND task = ?", (reader, task)).fetchall()
        return {r[0] for r in rows}

    def rows(self) -> list[dict[str, Any]]:
        """Every label joined with its image's record, in COLUMNS order."""
        query = (
            "SELECT l.reader, l.image_sha, COALESCE(i.kind, ''), COALESCE(i.cell, ''), i.seed, COALESCE(i.prompt, ''), "
            "COALESCE(i.subgroup, ''), COALESCE(i.finding, ''), l.task, l.question, l.answer, l.confidence, l.time "
            "FROM labels l LEFT JOIN images i ON i.image_sha = l.image_sha ORDER BY l.time, l.reader, l.image_sha, l.question"
        )
        with self._connect() as db:
            return [dict(zip(COLUMNS, r)) for r in db.execute(query).fetchall()]

    def export_csv(self, out: Path | str) -> int:
        """Write every label as CSV; returns the number of rows."""
        rows = self.rows()
        with open(out, "w", newline="", encoding="utf-8") as fh:
            write_csv(fh, rows)
        return len(rows)


def write_csv(fh: Any, rows: Sequence[dict[str, Any]]) -> None:
    writer = csv.DictWriter(fh, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)


class _Closing:
    """A connection used as `with store._connect() as db:` that closes on exit (sqlite3's own
    context manager commits but never closes)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None and self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.db.close()
