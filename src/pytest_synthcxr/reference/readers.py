"""Reference sets: real (or phantom) images with known findings and demographics, to compare
synthetic images against.

Sources, picked from the value of ``--synthcxr-reference`` / ``reference`` in the spec:

- ``phantom`` or ``phantom:N``: N images (default 240) drawn by the faithful phantom generator,
  balanced over findings (and normal studies) x sex x race, labelled with what was drawn;
- a generic manifest CSV (columns ``image``, ``findings``, ``sex``, ``race``, ``age``; image paths
  relative to the CSV's folder; findings separated by ``;`` or ``|``, empty or ``none`` for a
  normal study), or a folder holding ``manifest.csv``;
- a MIMIC-CXR-JPG folder: ``mimic-cxr-2.0.0-metadata.csv`` and ``mimic-cxr-2.0.0-chexpert.csv``
  (optionally .gz), images under ``files/pXX/pSUBJECT/sSTUDY/DICOM.jpg``, and MIMIC-IV's
  ``patients.csv`` / ``admissions.csv`` (optionally .gz) for sex, age and race;
- a CheXpert-style label CSV (``Path``, ``Sex``, ``Age``, ``Frontal/Lateral`` and one column per
  label: 1 positive, 0 or blank negative, -1 uncertain), or a folder holding ``train.csv`` /
  ``valid.csv``.

Labels: ``y:<finding>`` columns hold 1.0, 0.0, or NaN (uncertain: left out of that finding's
rates). Unknown sex or race is the empty string. Reading a manifest imports pandas but no torch;
images are read only when an audit needs them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..spec.vocabulary import FINDINGS, RACES, SEXES

#: images in a phantom reference set unless ``phantom:N`` says otherwise
PHANTOM_DEFAULT = 240
#: side of the square images a reference set is read at (torchxrayvision's input size)
IMAGE_SIZE = 224

ERR_MISSING = "synthcxr: reference {path}: no such file or folder (give a manifest CSV, a folder, 'phantom' or 'phantom:N')"
ERR_FOLDER = (
    "synthcxr: reference {path}: folder holds none of manifest.csv, mimic-cxr-2.0.0-metadata.csv(.gz), train.csv, valid.csv"
)
ERR_PHANTOM = "synthcxr: reference {value!r}: phantom size must be an integer of at least 8 (e.g. 'phantom:240')"
ERR_COLUMNS = "synthcxr: reference {path}: missing column(s) {missing}; a {kind} needs {needed}"
ERR_VALUE = "synthcxr: reference {path}: line {line}: column {column!r}: {value!r} is not allowed (allowed: {allowed})"
ERR_EMPTY = "synthcxr: reference {path}: no usable images ({why})"
ERR_IMAGE = "synthcxr: reference {path}: image {image}: cannot read it ({error})"
ERR_CSV = "synthcxr: reference {path}: cannot read it as CSV ({error})"
#: an image with more pixels is refused on its header, before it is decoded
MAX_PIXELS = 64 * 2**20

#: CheXpert / MIMIC-CXR label column -> audit finding
CHEXPERT_LABELS: dict[str, str] = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Pleural Effusion": "Effusion",
    "Pneumothorax": "Pneumothorax",
}
SEX_VALUES: dict[str, str] = {"female": "female", "f": "female", "male": "male", "m": "male", "": "", "unknown": ""}
#: MIMIC-IV race strings start with these words
MIMIC_RACES: tuple[tuple[str, str], ...] = (
    ("WHITE", "White"),
    ("BLACK", "Black"),
    ("ASIAN", "Asian"),
    ("HISPANIC", "Hispanic"),
    ("SOUTH AMERICAN", "Hispanic"),
    ("PORTUGUESE", "White"),
)


class ReferenceError(Exception):
    """A reference set that cannot be used; str() is the one line shown to the user."""


def label_column(finding: str) -> str:
    """Column of the records table holding a finding's label (1, 0, NaN)."""
    return f"y:{finding}"


@dataclass
class ReferenceSet:
    """A labelled reference set: one row per image in ``records`` (columns ``image``, ``y:<finding>``,
    ``sex``, ``race``, ``age``); pixels are read by :meth:`images`."""

    kind: str  # "phantom" | "manifest" | "mimic" | "chexpert"
    source: str  # what the user gave, for the report
    records: Any  # pandas DataFrame
    phantom_prompts: tuple[tuple[str, int], ...] = ()  # (prompt, seed) per row, for kind == "phantom"
    skipped: int = 0  # rows left out (missing image files, lateral views, subsampling)
    _images: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def fingerprint(self) -> str:
        """Identifies the set's rows (paths and labels), not the pixels."""
        blob = self.records.to_csv(index=False).encode() + self.kind.encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def content_fingerprint(self) -> str:
        """The rows plus what the pixels depend on: each image file's size and modification time
        (phantom sets: the renderer's fingerprint and every prompt and seed)."""
        digest = hashlib.sha256(self.fingerprint.encode())
        if self.kind == "phantom":
            from ..models.generators.phantom import PhantomGenerator

            digest.update(PhantomGenerator("phantom").fingerprint.encode())
            digest.update(repr(self.phantom_prompts).encode())
        else:
            for name in self.records["image"]:
                try:
                    st = Path(name).stat()
                    digest.update(f"{name}\x1f{st.st_size}\x1f{st.st_mtime_ns}\n".encode())
                except OSError:
                    digest.update(f"{name}\x1fmissing\n".encode())
        return digest.hexdigest()

    def labels(self, finding: str) -> np.ndarray:
        """1.0 / 0.0 / NaN per row for one finding (NaN: uncertain or not labelled)."""
        column = label_column(finding)
        if column not in self.records:
            return np.full(len(self.records), np.nan)
        return self.records[column].to_numpy(dtype=float)

    def images(self, size: int = IMAGE_SIZE) -> np.ndarray:
        """float32 (N, size, size) in [0, 1], in row order (read once, then kept)."""
        if self._images is None or self._images.shape[1:] != (size, size):
            if self.kind == "phantom":
                from ..models.generators.phantom import PhantomGenerator

                generator = PhantomGenerator("phantom", size=size)
                prompts, seeds = zip(*self.phantom_prompts) if self.phantom_prompts else ((), ())
                self._images = generator.generate(list(prompts), list(seeds))
            else:
                self._images = np.stack([read_image(Path(p), size, self.source) for p in self.records["image"]])
        return self._images

    def summary(self) -> dict[str, Any]:
        """Counts for the report: images, positives per finding, per sex and race."""
        rec = self.records
        return {
            "kind": self.kind,
            "source": self.source,
            "images": int(len(rec)),
            "skipped": int(self.skipped),
            "positives": {f: int(np.nansum(self.labels(f) == 1.0)) for f in FINDINGS},
            "sex": {k: int(v) for k, v in rec["sex"].replace("", "unknown").value_counts().sort_index().items()},
            "race": {k: int(v) for k, v in rec["race"].replace("", "unknown").value_counts().sort_index().items()},
        }


def read_image(path: Path, size: int, source: str = "") -> np.ndarray:
    """A grayscale image file as float32 (size, size) in [0, 1]: centre crop to a square, then an
    antialiased resize (what torchxrayvision's XRayCenterCrop and XRayResizer do)."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            w, h = picture.size
            if w * h > MAX_PIXELS:  # the decompression-bomb guard, on the header before any decode
                raise ReferenceError(ERR_IMAGE.format(path=source or path, image=path, error=f"{w} x {h} pixels, more than {MAX_PIXELS}: a decompression bomb?"))
            if picture.format == "JPEG":
                picture.draft("L", (size, size))  # decode at a reduced scale: memory bounded by the target
            picture.load()
            if picture.mode in ("I;16", "I;16B", "I", "F"):
                array = np.asarray(picture, dtype=np.float64)
                top = 65535.0 if picture.mode.startswith("I;16") or array.max() > 255 else 255.0
                picture = Image.fromarray((np.clip(array / top, 0, 1) * 255).astype(np.uint8))
            picture = picture.convert("L")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ReferenceError(ERR_IMAGE.format(path=source or path, image=path, error=str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)) from None
    w, h = picture.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    picture = picture.crop((left, top, left + side, top + side))
    if side != size:
        picture = picture.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(picture, dtype=np.float32) / 255.0


# ---------------------------------------------------------------------------------------- loading


def load_reference(
    value: str, base: Path | None = None, *, seed: int = 0, max_images: int | None = None, findings: Sequence[str] = FINDINGS
) -> ReferenceSet:
    """Read a reference set's manifest (not its pixels); raises ReferenceError with one line.
    `findings`: what a phantom reference draws (the audited findings, and normal studies)."""
    value = value.strip()
    if value == "phantom" or value.startswith("phantom:"):
        return phantom_reference(_phantom_size(value), seed=seed, source=value, findings=findings)
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.exists():
        raise ReferenceError(ERR_MISSING.format(path=path))
    if path.is_dir():
        ref = _from_folder(path)
    elif "mimic-cxr" in path.name and "metadata" in path.name:
        ref = read_mimic(path.parent)
    else:
        ref = _from_csv(path)
    return _subsample(ref, max_images, seed)


def _phantom_size(value: str) -> int:
    if value == "phantom":
        return PHANTOM_DEFAULT
    text = value.split(":", 1)[1]
    if not text.isdigit() or int(text) < 8:
        raise ReferenceError(ERR_PHANTOM.format(value=value))
    return int(text)


def _from_folder(path: Path) -> ReferenceSet:
    if (path / "manifest.csv").is_file():
        return read_manifest(path / "manifest.csv")
    if _first(path, "mimic-cxr-2.0.0-metadata.csv") is not None:
        return read_mimic(path)
    for name in ("train.csv", "valid.csv"):
        if (path / name).is_file():
            return read_chexpert(path / name)
    raise ReferenceError(ERR_FOLDER.format(path=path))


def _from_csv(path: Path) -> ReferenceSet:
    header = _read_csv(path, nrows=0).columns
    if "Path" in header:
        return read_chexpert(path)
    return read_manifest(path)


def _read_csv(path: Path, **kwargs: Any) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ReferenceError(ERR_CSV.format(path=path, error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)) from exc


def _first(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _require(frame: Any, path: Path, needed: Sequence[str], kind: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ReferenceError(ERR_COLUMNS.format(path=path, missing=", ".join(missing), kind=kind, needed=", ".join(needed)))


def _records(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    columns = ["image", *(label_column(f) for f in FINDINGS), "sex", "race", "age"]
    frame = pd.DataFrame(rows, columns=columns)
    for f in FINDINGS:
        frame[label_column(f)] = frame[label_column(f)].astype(float)
    frame["age"] = frame["age"].astype(float)
    return frame.reset_index(drop=True)


def _sex(raw: str, path: Path, line: int, column: str = "sex") -> str:
    value = SEX_VALUES.get(raw.strip().lower())
    if value is None:
        raise ReferenceError(ERR_VALUE.format(path=path, line=line, column=column, value=raw, allowed="female, male, F, M, or empty"))
    return value


def _age(raw: str, path: Path, line: int, column: str = "age") -> float:
    text = raw.strip()
    if not text:
        return float("nan")
    try:
        age = float(text)
    except ValueError:
        age = -1.0
    if not 0 <= age <= 130:
        raise ReferenceError(ERR_VALUE.format(path=path, line=line, column=column, value=raw, allowed="years from 0 to 130, or empty"))
    return age


def _image(raw: str, folders: Sequence[Path], path: Path, line: int, column: str) -> Path | None:
    """The image file (tried relative to each folder); None when it does not exist."""
    if not raw.strip():
        raise ReferenceError(ERR_VALUE.format(path=path, line=line, column=column, value=raw, allowed="an image path"))
    candidate = Path(raw.strip())
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for folder in folders:
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def read_manifest(path: Path) -> ReferenceSet:
    """The generic manifest: image, findings, sex, race, age (every image must exist)."""
    frame = _read_csv(path)
    _require(frame, path, ("image", "findings", "sex", "race", "age"), "manifest")
    names = {f.lower(): f for f in FINDINGS}
    races = {r.lower(): r for r in RACES}
    rows = []
    for k, row in enumerate(frame.itertuples(index=False), start=2):  # line 1 is the header
        image = _image(row.image, [path.parent], path, k, "image")
        if image is None:
            raise ReferenceError(f"synthcxr: reference {path}: line {k}: image {row.image!r}: no such file (paths are relative to {path.parent})")
        labels = {label_column(f): 0.0 for f in FINDINGS}
        for word in re.split(r"[;|]", row.findings):
            word = word.strip()
            if not word or word.lower() in ("none", "normal", "no finding"):
                continue
            if word.lower() not in names:
                allowed = ", ".join(FINDINGS) + " (separated by ';' or '|'), or empty/none"
                raise ReferenceError(ERR_VALUE.format(path=path, line=k, column="findings", value=word, allowed=allowed))
            labels[label_column(names[word.lower()])] = 1.0
        race = row.race.strip()
        if race and race.lower() not in races:
            raise ReferenceError(ERR_VALUE.format(path=path, line=k, column="race", value=row.race, allowed=", ".join(RACES) + ", or empty"))
        rows.append({"image": str(image), **labels, "sex": _sex(row.sex, path, k), "race": races.get(race.lower(), ""), "age": _age(row.age, path, k)})
    if not rows:
        raise ReferenceError(ERR_EMPTY.format(path=path, why="the manifest has no rows"))
    return ReferenceSet("manifest", str(path), _records(rows))


def _chexpert_label(raw: str, path: Path, line: int, column: str) -> float:
    text = raw.strip()
    if text in ("", "0", "0.0"):
        return 0.0
    if text in ("1", "1.0"):
        return 1.0
    if text in ("-1", "-1.0"):
        return float("nan")  # uncertain: left out of that finding's rates
    raise ReferenceError(ERR_VALUE.format(path=path, line=line, column=column, value=raw, allowed="1, 0, -1 or empty"))


def read_chexpert(path: Path) -> ReferenceSet:
    """A CheXpert-style label CSV (frontal views only; images missing on disk are skipped)."""
    frame = _read_csv(path)
    _require(frame, path, ("Path", "Sex"), "CheXpert-style label CSV")
    labels_present = [c for c in CHEXPERT_LABELS if c in frame.columns]
    if not labels_present:
        raise ReferenceError(ERR_COLUMNS.format(path=path, missing="any label column", kind="CheXpert-style label CSV", needed=", ".join(CHEXPERT_LABELS)))
    race_column = next((c for c in ("Race", "race", "PRIMARY_RACE") if c in frame.columns), None)
    races = {r.lower(): r for r in RACES}
    folders = [path.parent, path.parent.parent]  # CheXpert paths start with the dataset folder's name
    rows, skipped = [], 0
    for k, row in enumerate(frame.to_dict("records"), start=2):
        if row.get("Frontal/Lateral", "Frontal").strip() not in ("Frontal", ""):
            skipped += 1
            continue
        image = _image(row["Path"], folders, path, k, "Path")
        if image is None:
            skipped += 1
            continue
        labels = {label_column(f): float("nan") for f in FINDINGS}
        for column in labels_present:
            labels[label_column(CHEXPERT_LABELS[column])] = _chexpert_label(row[column], path, k, column)
        race = ""
        if race_column:
            raw = row[race_column].strip()
            race = races.get(raw.lower(), _mimic_race(raw))
        rows.append({"image": str(image), **labels, "sex": _sex(row["Sex"], path, k, "Sex"), "race": race, "age": _age(row.get("Age", ""), path, k, "Age")})
    if not rows:
        raise ReferenceError(ERR_EMPTY.format(path=path, why=f"none of its {len(frame)} rows is a frontal view whose image exists"))
    return ReferenceSet("chexpert", str(path), _records(rows), skipped=skipped)


def _mimic_race(raw: str) -> str:
    upper = raw.strip().upper()
    for prefix, race in MIMIC_RACES:
        if upper.startswith(prefix):
            return race
    return ""


def read_mimic(folder: Path) -> ReferenceSet:
    """MIMIC-CXR-JPG: metadata + CheXpert labels per study, frontal views (PA, AP) whose JPG exists;
    sex and age from MIMIC-IV patients, race (most frequent over admissions) from admissions."""
    meta_path = _first(folder, "mimic-cxr-2.0.0-metadata.csv")
    labels_path = _first(folder, "mimic-cxr-2.0.0-chexpert.csv")
    if meta_path is None or labels_path is None:
        missing = "mimic-cxr-2.0.0-metadata.csv" if meta_path is None else "mimic-cxr-2.0.0-chexpert.csv"
        raise ReferenceError(f"synthcxr: reference {folder}: MIMIC-CXR-JPG folder lacks {missing}(.gz)")
    meta = _read_csv(meta_path)
    _require(meta, meta_path, ("dicom_id", "subject_id", "study_id", "ViewPosition"), "MIMIC-CXR-JPG metadata file")
    labels = _read_csv(labels_path)
    _require(labels, labels_path, ("subject_id", "study_id"), "MIMIC-CXR-JPG CheXpert label file")
    by_study = {str(r["study_id"]): r for r in labels.to_dict("records")}
    sex, age, race = _mimic_demographics(folder)
    rows, skipped = [], 0
    for k, row in enumerate(meta.to_dict("records"), start=2):
        if row["ViewPosition"].strip() not in ("PA", "AP"):
            skipped += 1
            continue
        subject, study = row["subject_id"].strip(), row["study_id"].strip()
        image = folder / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{row['dicom_id'].strip()}.jpg"
        label_row = by_study.get(study)
        if label_row is None or not image.is_file():
            skipped += 1
            continue
        values = {label_column(f): float("nan") for f in FINDINGS}
        for column, finding in CHEXPERT_LABELS.items():
            if column in label_row:
                values[label_column(finding)] = _chexpert_label(label_row[column], labels_path, k, column)
        rows.append({"image": str(image), **values, "sex": sex.get(subject, ""), "race": race.get(subject, ""), "age": age.get(subject, float("nan"))})
    if not rows:
        raise ReferenceError(ERR_EMPTY.format(path=folder, why=f"none of {len(meta)} metadata rows is a PA/AP view with a label row and a JPG under files/"))
    return ReferenceSet("mimic", str(folder), _records(rows), skipped=skipped)


def _mimic_demographics(folder: Path) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    sex: dict[str, str] = {}
    age: dict[str, float] = {}
    race: dict[str, str] = {}
    patients = _first(folder, "patients.csv")
    if patients is not None:
        frame = _read_csv(patients)
        _require(frame, patients, ("subject_id", "gender"), "MIMIC-IV patients table")
        for k, row in enumerate(frame.to_dict("records"), start=2):
            subject = row["subject_id"].strip()
            sex[subject] = _sex(row["gender"], patients, k, "gender")
            if "anchor_age" in row:
                age[subject] = _age(row["anchor_age"], patients, k, "anchor_age")
    admissions = _first(folder, "admissions.csv")
    if admissions is not None:
        frame = _read_csv(admissions)
        column = "race" if "race" in frame.columns else "ethnicity"
        _require(frame, admissions, ("subject_id", column), "MIMIC-IV admissions table")
        mapped = frame.assign(_race=frame[column].map(_mimic_race))
        mapped = mapped[mapped["_race"] != ""]
        for subject, values in mapped.groupby("subject_id")["_race"]:
            race[str(subject).strip()] = values.value_counts().index[0]
    return sex, age, race


def phantom_reference(n: int, *, seed: int = 0, source: str = "phantom", findings: Sequence[str] = FINDINGS) -> ReferenceSet:
    """n images from the faithful phantom, cycling over (findings + normal) x sex x race with
    demographics named, labelled with what was drawn."""
    from ..sampling.cells import derive_seed
    from ..models.generators.phantom import PhantomGenerator
    from ..sampling.prompts import build_prompt

    generator = PhantomGenerator("phantom")
    conditions = [(f, s, r) for s in SEXES for r in RACES for f in (*findings, None)]
    rows, prompts = [], []
    for i in range(n):
        finding, sex, race = conditions[i % len(conditions)]
        prompt = build_prompt(finding, {"sex": sex, "race": race})
        image_seed = derive_seed(seed, "reference|phantom", i)
        _, drawn, _ = generator.plan(prompt, image_seed)
        labels = {label_column(f): float(f in drawn.findings) for f in FINDINGS}
        rows.append({"image": f"phantom:{i}", **labels, "sex": drawn.sex, "race": race, "age": float(drawn.age)})
        prompts.append((prompt, image_seed))
    return ReferenceSet("phantom", source, _records(rows), phantom_prompts=tuple(prompts))


def _subsample(ref: ReferenceSet, max_images: int | None, seed: int) -> ReferenceSet:
    """At most max_images rows, a seeded random subset kept in file order."""
    if max_images is None or len(ref) <= max_images or ref.kind == "phantom":
        return ref
    rng = np.random.default_rng([seed, 7])
    keep = np.sort(rng.choice(len(ref), size=max_images, replace=False))
    return ReferenceSet(ref.kind, ref.source, ref.records.iloc[keep].reset_index(drop=True), skipped=ref.skipped + len(ref) - max_images)


ERR_NEEDS = (
    "synthcxr: spec: [{section}] compares with a reference set, but none is given "
    "(use --synthcxr-reference, the ini key synthcxr_reference, or 'reference' in the spec)"
)


def needs_reference(spec: Any) -> None:
    """Raise ReferenceError when the spec has sections that need a reference set (none is given)."""
    from ..spec.reference_tables import NEEDS_REFERENCE

    for section in NEEDS_REFERENCE:
        if getattr(spec, section, None):
            raise ReferenceError(ERR_NEEDS.format(section=section))


ERR_COVERAGE = "synthcxr: reference {source}: {what} needs at least {least} reference image(s) {which}; it has {have}"


def check_coverage(spec: Any, ref: ReferenceSet) -> None:
    """Raise ReferenceError (one line) when the spec's comparisons need reference images the set
    lacks: labelled positives per finding (and per sex x race for tpr-gap), images per subgroup."""
    rec = ref.records
    subgroups = [(s, r) for s in spec.subgroups.sex for r in spec.subgroups.race]

    def need(what: str, least: int, which: str, have: int) -> None:
        if have < least:
            raise ReferenceError(ERR_COVERAGE.format(source=ref.source, what=what, least=least, which=which, have=have))

    for v in spec.versus_real:
        if v.metric not in ("tpr-drop", "tpr-gap"):
            continue
        for finding in v.findings or spec.findings:
            positive = rec[label_column(finding)] == 1.0
            need(f"versus_real {v.metric} for {finding}", 1, f"labelled {finding}", int(positive.sum()))
            if v.metric == "tpr-gap":
                for sex, race in subgroups:
                    mask = positive & (rec["sex"] == sex) & (rec["race"] == race)
                    need(f"versus_real tpr-gap for {finding}", 1, f"labelled {finding} of {race} {sex}", int(mask.sum()))
    for f in spec.fidelity:
        if "finding" in f.by:
            for finding in f.findings or spec.findings:
                need(f"fidelity by finding ({finding})", 2, f"labelled {finding}", int((rec[label_column(finding)] == 1.0).sum()))
        if "subgroup" in f.by:
            for sex, race in subgroups:
                need("fidelity by subgroup", 2, f"of {race} {sex}", int(((rec["sex"] == sex) & (rec["race"] == race)).sum()))
    if spec.fidelity or spec.memorization:
        need("fidelity and memorization", 2, "in all", len(rec))
