"""Reference sets: generic manifest, MIMIC-CXR-JPG, CheXpert-style CSVs and the phantom reference,
built from tiny files in tmp_path (nothing downloads)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_synthcxr.reference.readers import ReferenceError, label_column, load_reference, read_image
from pytest_synthcxr.spec.vocabulary import FINDINGS


def _png(path: Path, value: int = 128, size: tuple[int, int] = (40, 30), mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    if mode == "I;16":
        array = rng.integers(0, 65535, size=(size[1], size[0]), dtype=np.uint16)
    else:
        array = rng.integers(0, 255, size=(size[1], size[0]), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


def _manifest(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text("image,findings,sex,race,age\n" + "\n".join(lines) + "\n")
    return path


def test_generic_manifest(tmp_path: Path) -> None:
    _png(tmp_path / "img" / "a.png", 1)
    _png(tmp_path / "img" / "b.png", 2, mode="I;16")
    path = _manifest(tmp_path, ["img/a.png,Effusion; cardiomegaly,F,White,61", "img/b.png,none,male,,"])
    ref = load_reference(str(path))
    assert ref.kind == "manifest" and len(ref) == 2
    assert ref.labels("Effusion").tolist() == [1.0, 0.0]
    assert ref.labels("Cardiomegaly").tolist() == [1.0, 0.0]
    assert ref.labels("Edema").tolist() == [0.0, 0.0]
    assert ref.records["sex"].tolist() == ["female", "male"]
    assert ref.records["race"].tolist() == ["White", ""]
    assert ref.records["age"].iloc[0] == 61 and math.isnan(ref.records["age"].iloc[1])
    images = ref.images(size=24)
    assert images.shape == (2, 24, 24) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.std() > 0.05
    # a folder with manifest.csv reads the same, and a relative path resolves against the base
    assert load_reference(".", base=tmp_path).records.equals(ref.records)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("img/a.png,Effusion,X,White,61", "line 2: column 'sex': 'X' is not allowed (allowed: female, male, F, M, or empty)"),
        ("img/a.png,Efusion,F,White,61", "line 2: column 'findings': 'Efusion' is not allowed (allowed: Atelectasis"),
        ("img/a.png,,F,Martian,61", "line 2: column 'race': 'Martian' is not allowed (allowed: White, Black, Asian, Hispanic, or empty)"),
        ("img/a.png,,F,White,old", "line 2: column 'age': 'old' is not allowed"),
        ("img/zzz.png,,F,White,61", "line 2: image 'img/zzz.png': no such file"),
    ],
)
def test_manifest_errors_are_one_line(tmp_path: Path, line: str, expected: str) -> None:
    _png(tmp_path / "img" / "a.png")
    path = _manifest(tmp_path, [line])
    with pytest.raises(ReferenceError) as info:
        load_reference(str(path))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"synthcxr: reference {path}: ")
    assert expected in message


def test_missing_column_and_missing_source(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("image,sex\na.png,F\n")
    with pytest.raises(ReferenceError, match=r"missing column\(s\) findings, race, age; a manifest needs image, findings, sex, race, age"):
        load_reference(str(path))
    with pytest.raises(ReferenceError, match="no such file or folder"):
        load_reference(str(tmp_path / "nope.csv"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReferenceError, match="folder holds none of manifest.csv"):
        load_reference(str(tmp_path / "empty"))
    for bad in ("phantom:3", "phantom:x"):
        with pytest.raises(ReferenceError, match="phantom size must be an integer of at least 8"):
            load_reference(bad)


def test_chexpert_style_csv(tmp_path: Path) -> None:
    root = tmp_path / "CheXpert-v1.0-small"
    _png(root / "train" / "patient1" / "study1" / "view1_frontal.jpg", 3)
    _png(root / "train" / "patient2" / "study1" / "view1_frontal.jpg", 4)
    _png(root / "train" / "patient2" / "study1" / "view2_lateral.jpg", 5)
    (root / "train.csv").write_text(
        "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Cardiomegaly,Pleural Effusion,Edema\n"
        "CheXpert-v1.0-small/train/patient1/study1/view1_frontal.jpg,Female,68,Frontal,AP,,1.0,-1.0,\n"
        "CheXpert-v1.0-small/train/patient2/study1/view1_frontal.jpg,Male,41,Frontal,PA,1.0,0.0,,\n"
        "CheXpert-v1.0-small/train/patient2/study1/view2_lateral.jpg,Male,41,Lateral,,1.0,0.0,,\n"
        "CheXpert-v1.0-small/train/patient3/study1/view1_frontal.jpg,Male,50,Frontal,PA,1.0,0.0,,\n"
    )
    ref = load_reference(str(root))  # the folder: finds train.csv
    assert ref.kind == "chexpert" and len(ref) == 2 and ref.skipped == 2  # a lateral view, a missing image
    assert ref.labels("Cardiomegaly").tolist() == [1.0, 0.0]
    effusion = ref.labels("Effusion")
    assert math.isnan(effusion[0]) and effusion[1] == 0.0  # -1 (uncertain) is left out
    assert np.isnan(ref.labels("Atelectasis")).all()  # no column: not labelled
    assert ref.records["sex"].tolist() == ["female", "male"] and ref.records["race"].tolist() == ["", ""]
    (root / "bad.csv").write_text("Path,Sex,Cardiomegaly\nCheXpert-v1.0-small/train/patient1/study1/view1_frontal.jpg,Female,2\n")
    with pytest.raises(ReferenceError, match=r"line 2: column 'Cardiomegaly': '2' is not allowed \(allowed: 1, 0, -1 or empty\)"):
        load_reference(str(root / "bad.csv"))


def _gz(path: Path, text: str) -> None:
    with gzip.open(path, "wt") as fh:
        fh.write(text)


def test_mimic_cxr_jpg_folder(tmp_path: Path) -> None:
    for subject, study, dicom in (("10000032", "50414267", "d1"), ("10000764", "57375967", "d2"), ("10000764", "57375967", "d3")):
        _png(tmp_path / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg", int(dicom[1]))
    _gz(
        tmp_path / "mimic-cxr-2.0.0-metadata.csv.gz",
        "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition\n"
        "d1,10000032,50414267,CHEST (PA AND LAT),PA\n"
        "d2,10000764,57375967,CHEST (PORTABLE AP),AP\n"
        "d3,10000764,57375967,CHEST (PA AND LAT),LATERAL\n"
        "d4,10000980,50985099,CHEST (PA AND LAT),PA\n",
    )
    (tmp_path / "mimic-cxr-2.0.0-chexpert.csv").write_text(
        "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion,Pneumothorax\n"
        "10000032,50414267,,,,,1.0,\n"
        "10000764,57375967,-1.0,1.0,0.0,,,0.0\n"
        "10000980,50985099,,,,,,\n"
    )
    (tmp_path / "patients.csv").write_text("subject_id,gender,anchor_age,anchor_year\n10000032,F,52,2180\n10000764,M,86,2132\n")
    (tmp_path / "admissions.csv").write_text(
        "subject_id,hadm_id,race\n10000032,1,WHITE\n10000032,2,WHITE - OTHER EUROPEAN\n10000032,3,UNKNOWN\n10000764,4,HISPANIC/LATINO - PUERTO RICAN\n"
    )
    ref = load_reference(str(tmp_path))
    assert ref.kind == "mimic" and len(ref) == 2 and ref.skipped == 2  # a lateral view, an image not on disk
    assert ref.records["sex"].tolist() == ["female", "male"]
    assert ref.records["race"].tolist() == ["White", "Hispanic"]
    assert ref.records["age"].tolist() == [52.0, 86.0]
    assert ref.labels("Effusion").tolist() == [1.0, 0.0]
    assert ref.labels("Cardiomegaly").tolist() == [0.0, 1.0]
    assert math.isnan(ref.labels("Atelectasis")[1])
    assert ref.images(size=16).shape == (2, 16, 16)
    # the metadata file itself may be given as the reference
    assert len(load_reference(str(tmp_path / "mimic-cxr-2.0.0-metadata.csv.gz"))) == 2


def test_mimic_without_labels_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "mimic-cxr-2.0.0-metadata.csv").write_text("dicom_id,subject_id,study_id,ViewPosition\n")
    with pytest.raises(ReferenceError, match="MIMIC-CXR-JPG folder lacks mimic-cxr-2.0.0-chexpert.csv"):
        load_reference(str(tmp_path))


def test_phantom_reference_is_balanced_and_labelled() -> None:
    ref = load_reference("phantom:56", seed=3)
    assert ref.kind == "phantom" and len(ref) == 56
    # 7 conditions (6 findings + normal) x 8 subgroups: each finding is positive in 8 images
    for finding in FINDINGS:
        assert int(ref.labels(finding).sum()) == 8
    assert sorted(ref.records["sex"].value_counts().tolist()) == [28, 28]
    assert set(ref.records["race"]) == {"White", "Black", "Asian", "Hispanic"}
    images = ref.images()
    assert images.shape == (56, 224, 224)
    again = load_reference("phantom:56", seed=3).images()
    assert np.array_equal(images, again)  # deterministic
    assert not np.array_equal(images, load_reference("phantom:56", seed=4).images())
    assert ref.fingerprint == load_reference("phantom:56", seed=3).fingerprint


def test_subsampling_is_seeded(tmp_path: Path) -> None:
    lines = []
    for i in range(12):
        _png(tmp_path / f"{i}.png", i)
        lines.append(f"{i}.png,,F,White,{30 + i}")
    path = _manifest(tmp_path, lines)
    a = load_reference(str(path), max_images=5, seed=1)
    b = load_reference(str(path), max_images=5, seed=1)
    assert len(a) == 5 and a.skipped == 7 and a.records.equals(b.records)
    assert a.records["age"].is_monotonic_increasing  # file order kept


def test_read_image_crops_and_scales(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    array = np.zeros((20, 40), dtype=np.uint8)
    array[:, 10:30] = 255  # the centre square is all white
    Image.fromarray(array).save(path)
    image = read_image(path, 20)
    assert image.shape == (20, 20) and image.min() == 1.0
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ReferenceError, match="cannot read it"):
        read_image(tmp_path / "bad.png", 20)


def test_label_column_names() -> None:
    assert label_column("Effusion") == "y:Effusion"
