"""Audit images generated elsewhere (Cheff, LLM-CXR, anything not diffusers) from a manifest CSV.

    --synthcxr-model=folder:path/to/manifest.csv     (or a folder holding manifest.csv)

Manifest columns: ``image`` (path relative to the manifest's folder; required), ``prompt``
(required), ``seed`` (optional), and any cell attributes (finding, sex, race, ...; kept for
reference). A request for (prompt, seed) is served by the row with exactly that prompt and seed
when there is one (images generated from the audit's own seeds reproduce the audit exactly);
otherwise by the next unused row with that prompt, in manifest order (first come, first served),
so no image is scored twice.

Paths that leave the manifest's folder are refused; a listed image that does not exist is an
error before any test runs; an image that exists but cannot be read, and a request for which the
manifest has no image left, become invalid samples (NaN), counted and reported, not fatal.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .diffusers import GeneratorError

MANIFEST_NAME = "manifest.csv"
REQUIRED = ("image", "prompt")


def find_manifest(path: Path) -> Path:
    return path / MANIFEST_NAME if path.is_dir() else path


class FolderGenerator:
    cache_images = False  # the images are files already
    def __init__(self, manifest: str | Path, *, name: str | None = None, height: int | None = None, width: int | None = None) -> None:
        self.manifest = find_manifest(Path(manifest)).absolute()
        self.name = name or f"folder:{self.manifest}"
        if not self.manifest.is_file():
            raise GeneratorError(f"synthcxr: model {self.name!r}: manifest not found: {self.manifest}")
        self.root = self.manifest.parent.resolve()
        self.rows = self._read()
        self.by_key: dict[tuple[str, int], int] = {}
        self.by_prompt: dict[str, list[int]] = {}
        for j, row in enumerate(self.rows):
            if row["seed"] is not None:
                self.by_key.setdefault((row["prompt"], row["seed"]), j)
            self.by_prompt.setdefault(row["prompt"], []).append(j)
        self.used: set[int] = set()
        self._cursor: dict[str, int] = {}
        self.size = (height, width) if height and width else None
        self.unreadable: dict[str, str] = {}
        self.shortage: dict[str, int] = {}
        self._fingerprint: str | None = None

    def _read(self) -> list[dict[str, Any]]:
        where = f"synthcxr: model {self.name!r}: {self.manifest}"
        try:
            with open(self.manifest, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                columns = reader.fieldnames or []
                missing = [c for c in REQUIRED if c not in columns]
                if missing:
                    raise GeneratorError(f"{where}: missing column(s) {', '.join(missing)} (has: {', '.join(columns) or 'none'})")
                raw = list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise GeneratorError(f"{where}: cannot read the manifest: {exc}") from exc
        if not raw:
            raise GeneratorError(f"{where}: the manifest lists no images")
        rows = []
        for line, record in enumerate(raw, start=2):
            image = (record.get("image") or "").strip()
            prompt = (record.get("prompt") or "").strip()
            if not image or not prompt:
                raise GeneratorError(f"{where}: line {line}: empty image or prompt")
            path = (self.root / image).resolve()
            if not path.is_relative_to(self.root):
                raise GeneratorError(f"{where}: line {line}: image {image!r} is outside the manifest's folder {self.root}")
            if not path.is_file():
                raise GeneratorError(f"{where}: line {line}: image not found: {path}")
            seed_text = (record.get("seed") or "").strip()
            try:
                seed = int(seed_text) if seed_text else None
            except ValueError:
                raise GeneratorError(f"{where}: line {line}: seed must be an integer, got {seed_text!r}") from None
            rows.append({"image": path, "prompt": prompt, "seed": seed})
        return rows

    def prompts(self) -> set[str]:
        return set(self.by_prompt)

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "kind": "folder",
            "manifest": str(self.manifest),
            "images": len(self.rows),
            "prompts": len(self.by_prompt),
            "size": list(self.size) if self.size else None,
            "unreadable": dict(self.unreadable),
            "requests_without_an_image": dict(self.shortage),
        }

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            digest = hashlib.sha256(self.manifest.read_bytes())
            for row in self.rows:
                digest.update(row["image"].read_bytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def _pick(self, prompt: str, seed: int) -> int | None:
        j = self.by_key.get((prompt, int(seed)))
        if j is not None and j not in self.used:
            self.used.add(j)
            return j
        candidates = self.by_prompt.get(prompt, [])
        k = self._cursor.get(prompt, 0)
        while k < len(candidates) and candidates[k] in self.used:
            k += 1
        self._cursor[prompt] = k
        if k >= len(candidates):
            self.shortage[prompt] = self.shortage.get(prompt, 0) + 1
            return None
        self.used.add(candidates[k])
        return candidates[k]

    def _load(self, path: Path) -> np.ndarray | None:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im.load()
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = np.asarray(im, dtype=np.float32)
                    arr = arr / (65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0)
                elif im.mode == "F":
                    arr = np.asarray(im, dtype=np.float32)
                else:
                    arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            self.unreadable[str(path)] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return None
        if self.size is None:
            self.size = arr.shape  # the first image read fixes the size of the rest
        if arr.shape != self.size:
            arr = np.asarray(Image.fromarray(arr, mode="F").resize((self.size[1], self.size[0]), Image.BILINEAR), dtype=np.float32)
        return arr

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        picked = [self._pick(p, s) for p, s in zip(prompts, seeds)]
        loaded = [None if j is None else self._load(self.rows[j]["image"]) for j in picked]
        if self.size is None:
            first = next((self._load(r["image"]) for r in self.rows), None)
            self.size = first.shape if first is not None else (8, 8)
        out = np.full((len(prompts), *self.size), np.nan, dtype=np.float32)
        for i, arr in enumerate(loaded):
            if arr is not None:
                out[i] = arr
        return out
