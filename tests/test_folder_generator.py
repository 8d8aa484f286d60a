"""The folder generator: pre-generated images and a manifest CSV."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from models_support import make_torchscript_probe, one_group_spec
from PIL import Image

from pytest_synthcxr.sampling.cells import Cell, derive_seed
from pytest_synthcxr.models.generators.diffusers import GeneratorError
from pytest_synthcxr.models.generators.folder import FolderGenerator


def _png(path, value, size=(24, 24), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        Image.fromarray(np.full(size, int(value * 65535), np.uint16)).save(path)
    else:
        Image.fromarray(np.full(size, int(round(value * 255)), np.uint8), mode="L").save(path)
    return path


def _manifest(folder, rows, columns=("image", "prompt", "seed", "sex")):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows)
    return folder / "manifest.csv"


def test_exact_seeds_first_then_unused_rows_in_manifest_order(tmp_path):
    for i, v in enumerate((0.1, 0.2, 0.3, 0.4)):
        _png(tmp_path / "img" / f"{i}.png", v)
    rows = [
        ["img/0.png", "Pleural effusion.", "", "female"],
        ["img/1.png", "Pleural effusion.", "7", "male"],
        ["img/2.png", "Pleural effusion.", "", "female"],
        ["img/3.png", "Cardiomegaly.", "", "male"],
    ]
    gen = FolderGenerator(_manifest(tmp_path, rows), height=24, width=24)
    images = gen.generate(["Pleural effusion.", "Pleural effusion.", "Cardiomegaly."], [7, 99, 5])
    assert images.shape == (3, 24, 24) and images.dtype == np.float32
    np.testing.assert_allclose(images[:, 0, 0], [0.2, 0.1, 0.4], atol=1 / 255)
    again = gen.generate(["Pleural effusion.", "Pleural effusion."], [100, 101])
    assert abs(again[0, 0, 0] - 0.3) < 1 / 255 and np.isnan(again[1]).all()  # no image left: invalid, not reused
    assert gen.settings["requests_without_an_image"] == {"Pleural effusion.": 1}
    assert gen.prompts() == {"Pleural effusion.", "Cardiomegaly."} and len(gen.fingerprint) == 64


def test_sixteen_bit_and_resized_images(tmp_path):
    _png(tmp_path / "a.png", 0.5, size=(32, 32), mode="I;16")
    _png(tmp_path / "b.png", 0.25, size=(16, 20))
    gen = FolderGenerator(_manifest(tmp_path, [["a.png", "p", "", ""], ["b.png", "p", "", ""]]), height=32, width=32)
    images = gen.generate(["p", "p"], [1, 2])
    assert images.shape == (2, 32, 32)
    # each image on its own: the first one read does not set the size of the others
    alone = FolderGenerator(tmp_path / "manifest.csv", height=8, width=8)
    assert alone.generate(["p", "p"], [2, 1]).shape == (2, 8, 8) and gen.original_size("p", 2) == ""
    assert sorted(alone.original_sizes.values()) == [(20, 16), (32, 32)]
    np.testing.assert_allclose(images[0], 0.5, atol=1e-4)
    np.testing.assert_allclose(images[1], 0.25, atol=1 / 255)


def test_unreadable_images_are_reported_not_fatal(tmp_path):
    _png(tmp_path / "ok.png", 0.5)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    gen = FolderGenerator(_manifest(tmp_path, [["broken.png", "p", "", ""], ["ok.png", "p", "", ""]]), height=24, width=24)
    images = gen.generate(["p", "p"], [1, 2])
    assert np.isnan(images[0]).all() and np.isfinite(images[1]).all()
    assert list(gen.settings["unreadable"]) == [str((tmp_path / "broken.png").resolve())]


@pytest.mark.parametrize(
    "rows, columns, fragment",
    [
        ([["missing.png", "p", "", ""]], None, "line 2: image not found: "),
        ([["../outside.png", "p", "", ""]], None, "line 2: image '../outside.png' is outside the manifest's folder"),
        ([["ok.png", "p", "x", ""]], None, "line 2: seed must be an integer, got 'x'"),
        ([["ok.png"]], ("image",), "missing column(s) prompt: its first line has 1 column(s); a manifest needs image, prompt"),
        ([["o\x00k.png", "p", "", ""]], None, "line 2: the image path holds a NUL or control character"),
        ([["\x1b[31mok.png", "p", "", ""]], None, "line 2: the image path holds a NUL or control character"),
        ([], None, "the manifest lists no images"),
    ],
)
def test_bad_manifests_are_one_line_errors(tmp_path, rows, columns, fragment):
    _png(tmp_path / "outside.png", 0.5)
    _png(tmp_path / "set" / "ok.png", 0.5)
    manifest = _manifest(tmp_path / "set", rows, columns or ("image", "prompt", "seed", "sex"))
    with pytest.raises(GeneratorError) as err:
        FolderGenerator(manifest)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def _audit_manifest(folder, cells, n, seeded):
    """Images for every cell of the one-group spec; seeded: with the audit's own seeds."""
    rows = []
    for cell in cells:
        for i in range(n):
            name = f"img/{cell.key.replace('|', '_').replace('=', '-').replace(',', '_')}_{i}.png"
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            ramp = np.add.outer(np.arange(24), np.arange(24)) * (2 + i)  # not constant: a valid image
            Image.fromarray(ramp.astype(np.uint8), mode="L").save(target)
            rows.append([name, cell.prompt, derive_seed(0, cell.key, i) if seeded else "", "female"])
    return _manifest(folder, rows)


def test_end_to_end_folder_audit(pytester):
    make_torchscript_probe(pytester.path / "probe.pt", 2)
    spec = "judge = 'probe'\n" + one_group_spec() + "[judges.probe]\nkind = 'torchscript'\npath = 'probe.pt'\nlabels = ['Effusion', 'COVID-19']\n"
    pytester.makefile(".toml", synthcxr=spec)
    cells = [Cell(f, (("sex", "female"), ("race", "White")), False) for f in ("Effusion", None)]
    _audit_manifest(pytester.path / "generated", cells, 2, seeded=True)
    result = pytester.runpytest("--synthcxr-model=folder:generated", "--synthcxr-csv=samples.csv")
    outcomes = result.parseoutcomes()
    assert sum(outcomes.get(k, 0) for k in ("passed", "failed")) == 3, result.stdout.str()
    result.stdout.fnmatch_lines(["*4 images generated (0 invalid)*"])
    # a manifest without an image for a prompt the audit needs: one error before any test
    (pytester.path / "partial").mkdir()
    (pytester.path / "partial" / "a.png").write_bytes((next((pytester.path / "generated" / "img").iterdir())).read_bytes())
    _manifest(pytester.path / "partial", [["a.png", "Pleural effusion.", "", ""]])
    result = pytester.runpytest("--synthcxr-model=folder:partial/manifest.csv")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: synthcxr: model 'folder:partial/manifest.csv': *manifest.csv has no image for 1 prompt(s) the spec needs: 'No acute cardiopulmonary process.' (needed by *)*pytest_synthcxr.prompts*"])
