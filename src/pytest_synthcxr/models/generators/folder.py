"""Audit images generated elsewhere (Cheff, LLM-CXR, anything not diffusers) from a manifest CSV.

    --synthcxr-model=folder:path/to/manifest.csv     (or a folder holding manifest.csv)

Manifest columns: ``image`` (path relative to the manifest's folder; required), ``prompt``
(required), ``seed`` (optional), and any cell attributes (finding, sex, race, ...; kept for
reference). Which row serves which request is decided once, before any image is read, from the
manifest and the audit's requests alone (:meth:`FolderGenerator.assign`, fed by
``sampling.manifest.requests``): a row with exactly the requested prompt and seed serves it
(images generated from ``python -m pytest_synthcxr.prompts`` reproduce the audit exactly); the
other rows of a prompt serve its other requests in the canonical request order, manifest order.
So the cache, the process, the xdist worker and the order of the items never change the result,
and no image is scored twice.

Each image is resized to one fixed size (the judges' input size) on its own, after a header check
(a decompression-bomb guard: more than MAX_PIXELS pixels is an unreadable image, one line); its
original size is recorded for the CSV.

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
#: the decompression-bomb guard: an image with more pixels is refused before it is decoded
MAX_PIXELS = 64 * 2**20
#: the size images are resized to when neither the model table nor the judges give one
DEFAULT_SIZE = 256


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
        #: (prompt, seed) -> manifest row, decided by assign(); None: first come, first served
        self.assigned: dict[tuple[str, int], int] | None = None
        self.size = (height, width) if height and width else (DEFAULT_SIZE, DEFAULT_SIZE)
        #: original (width, height) of each image read, by path
        self.original_sizes: dict[str, tuple[int, int]] = {}
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
                if missing:  # the header is described, never printed: the file may be anything
                    raise GeneratorError(
                        f"{where}: missing column(s) {', '.join(missing)}: its first line has {len(columns)} column(s); "
                        f"a manifest needs {', '.join(REQUIRED)} (optional: seed and cell attributes)"
                    )
                raw = list(reader)
        except UnicodeDecodeError as exc:
            raise GeneratorError(f"{where}: not UTF-8 text (byte {exc.start}); a manifest is a UTF-8 CSV") from None
        except csv.Error as exc:
            raise GeneratorError(f"{where}: not a readable CSV ({str(exc).splitlines()[0][:120] if str(exc) else 'csv error'})") from None
        except OSError as exc:
            raise GeneratorError(f"{where}: cannot read the manifest: {exc.strerror or type(exc).__name__}") from None
        if not raw:
            raise GeneratorError(f"{where}: the manifest lists no images")
        rows = []
        for line, record in enumerate(raw, start=2):
            image = (record.get("image") or "").strip()
            prompt = (record.get("prompt") or "").strip()
            if not image or not prompt:
                raise GeneratorError(f"{where}: line {line}: empty image or prompt")
            if any(ord(ch) < 32 or ord(ch) == 127 for ch in image):
                raise GeneratorError(f"{where}: line {line}: the image path holds a NUL or control character; paths are plain text relative to the manifest")
            try:
                path = (self.root / image).resolve()
            except (OSError, ValueError) as exc:
                raise GeneratorError(f"{where}: line {line}: unusable image path ({type(exc).__name__})") from None
            if not path.is_relative_to(self.root):
                raise GeneratorError(f"{where}: line {line}: image {image[:200]!r} is outside the manifest's folder {self.root}")
            if not path.is_file():
                raise GeneratorError(f"{where}: line {line}: image not found: {path}")
            seed_text = (record.get("seed") or "").strip()
            try:
                seed = int(seed_text) if seed_text else None
            except ValueError:
                raise GeneratorError(f"{where}: line {line}: seed must be an integer, got {seed_text[:40]!r}") from None
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
            digest.update(repr(tuple(self.size)).encode())  # images are resized to it
            for row in self.rows:
                digest.update(row["image"].read_bytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def assign(self, requests: Sequence[tuple[str, int]]) -> None:
        """Decide which row serves each (prompt, seed), a pure function of the manifest and the
        requests in canonical order (see the module docstring). Requests left without a row are
        counted in ``shortage``."""
        assigned: dict[tuple[str, int], int] = {}
        taken: set[int] = set()
        for prompt, seed in requests:  # exact prompt and seed first
            j = self.by_key.get((prompt, int(seed)))
            if j is not None and j not in taken and (prompt, int(seed)) not in assigned:
                assigned[(prompt, int(seed))] = j
                taken.add(j)
        free = {p: [j for j in rows if j not in taken] for p, rows in self.by_prompt.items()}
        self.shortage = {}
        for prompt, seed in requests:
            key = (prompt, int(seed))
            if key in assigned:
                continue
            rows = free.get(prompt)
            if rows:
                assigned[key] = rows.pop(0)
            else:
                self.shortage[prompt] = self.shortage.get(prompt, 0) + 1
        self.assigned = assigned

    def _pick(self, prompt: str, seed: int) -> int | None:
        if self.assigned is not None:
            return self.assigned.get((prompt, int(seed)))
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
        """The image at `path` as float32 in [0, 1], resized on its own to ``self.size``; None
        (recorded in ``unreadable``) when it cannot be read or is a decompression bomb."""
        from PIL import Image, UnidentifiedImageError

        height, width = self.size
        try:
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:  # checked on the header, before any pixel is decoded
                    self.unreadable[str(path)] = f"decompression-bomb guard: {w} x {h} pixels, more than {MAX_PIXELS}"
                    return None
                self.original_sizes[str(path)] = (w, h)
                if im.format == "JPEG":
                    im.draft("L", (width, height))  # decode at a reduced scale: memory bounded by the target
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = np.asarray(im, dtype=np.float32)
                    arr = arr / (65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0)
                elif im.mode == "F":
                    arr = np.asarray(im, dtype=np.float32)
                else:
                    arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            self.unreadable[str(path)] = (str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            return None
        if arr.ndim != 2:
            self.unreadable[str(path)] = f"unexpected image shape {arr.shape}"
            return None
        if arr.shape != (height, width):
            arr = np.asarray(Image.fromarray(arr, mode="F").resize((width, height), Image.BILINEAR), dtype=np.float32)
        return arr

    def original_size(self, prompt: str, seed: int) -> str:
        """'WxH' of the image that served (prompt, seed), read from its header; '' when none did."""
        j = self._pick_readonly(prompt, seed)
        if j is None:
            return ""
        path = self.rows[j]["image"]
        size = self.original_sizes.get(str(path))
        if size is None:
            try:
                from PIL import Image

                with Image.open(path) as im:
                    size = im.size
            except Exception:  # noqa: BLE001 - an unreadable image has no size to show
                return ""
        return f"{size[0]}x{size[1]}"

    def seed_matched(self, prompt: str, seed: int) -> bool:
        """Whether the image serving (prompt, seed) was made with that very seed (its manifest
        row names it): only such images pair with other prompts' images on the same seed."""
        j = self._pick_readonly(prompt, seed)
        return j is not None and self.rows[j]["seed"] == int(seed)

    def _pick_readonly(self, prompt: str, seed: int) -> int | None:
        if self.assigned is not None:
            return self.assigned.get((prompt, int(seed)))
        return self.by_key.get((prompt, int(seed)))

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        picked = [self._pick(p, s) for p, s in zip(prompts, seeds)]
        loaded = [None if j is None else self._load(self.rows[j]["image"]) for j in picked]
        out = np.full((len(prompts), *self.size), np.nan, dtype=np.float32)
        for i, arr in enumerate(loaded):
            if arr is not None:
                out[i] = arr
        return out
