"""Hostile and broken input (issue 15): no code runs unasked, no finished work is lost, one line
per mistake. Every case runs the plugin as users do (pytester) or the piece that reads the input,
and asserts the exit code, the one-line message, that no traceback or INTERNALERROR is shown, and
that nothing finished (report, JSON, CSV, cache entries) is lost.

Classes (the CASES table and the tests below): code (pickles, classes), contents (messages never
print a file), outputs (paths checked before generation, written through or refused, one failing
output does not stop the others), baseline, cache, folder (pre-generated images), one-line
(everything else that used to be a traceback).
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest
from models_support import make_state_dict_probe, one_group_spec
from report_support import minimal_item, write_report

SPEC = one_group_spec()  # 2 cells, 3 items: a whole phantom audit takes a few seconds
SECRET = "hunter2-SECRET-VALUE"
FOLDER_SPEC = "judge = 'phantom'\n" + SPEC  # pre-generated images judged by the phantom judge


class _Payload:
    """A pickle that creates a marker file when unpickled: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # noqa: D105
        return (os.makedirs, (self.marker,))


def _payload(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps(_Payload(marker)))
    return path


def _one_line(result, fragment: str, ret=pytest.ExitCode.USAGE_ERROR) -> str:
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == ret, text
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    lines = [line for line in text.splitlines() if fragment in line]
    assert lines, f"{fragment!r} not in:\n{text}"
    return lines[0]


def _run(pytester, spec: str = SPEC, *args: str):
    pytester.makefile(".toml", synthcxr=spec)
    return pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-device=cpu", "-p", "no:randomly", *args)


# -- code: nothing runs unless asked -------------------------------------------------------------

PICKLE_JUDGES = {
    "state-dict": "[judges.j]\nkind = 'state-dict'\npath = 'w.pt'\nclass = 'torch.nn:Linear'\nlabels = ['COVID-19']\n",
    "xrv-path": "[judges.j]\nkind = 'xrv'\npath = 'w.pt'\n",
    "xrv-cache-dir": "[judges.j]\nkind = 'xrv'\ncache_dir = 'cache'\n",
    "xrv-sex-path": "[judges.j]\nkind = 'xrv-sex'\npath = 'w.pt'\n",
    "xrv-race-path": "[judges.j]\nkind = 'xrv-race'\npath = 'w.pt'\n",
}


@pytest.mark.parametrize("table", PICKLE_JUDGES.values(), ids=PICKLE_JUDGES)
def test_a_pickle_judge_file_never_runs_without_the_flag(pytester, table):
    marker = pytester.path / "pwned"
    _payload(pytester.path / "w.pt", marker)
    (pytester.path / "cache").mkdir()
    from pytest_synthcxr.models.judges.xrv import release_basename

    _payload(pytester.path / "cache" / release_basename("densenet121-res224-all"), marker)
    result = _run(pytester, "judge = ['phantom', 'j']\n" + SPEC + table)
    line = _one_line(result, "is a pickle file (loading it can run code)")
    assert "--synthcxr-allow-pickle" in line and "sha256" in line
    assert not marker.exists()


CLASSES = ["os:system", "subprocess:Popen", "builtins:eval", "torch.nn:Module.__subclasses__", "torchx:Net", "os.path", "a b:c", "torch.nn.Linear"]


@pytest.mark.parametrize("cls", CLASSES)
def test_a_class_outside_the_allow_list_is_refused(pytester, cls):
    make_state_dict_probe(pytester.path / "w.safetensors", 1)
    table = f"[judges.j]\nkind = 'state-dict'\npath = 'w.safetensors'\nclass = '{cls}'\nlabels = ['COVID-19']\n"
    line = _one_line(_run(pytester, "judge = ['phantom', 'j']\n" + SPEC + table), "synthcxr: judge 'j': class")
    assert "is not allowed" in line or "must read 'package.module:ClassName'" in line


def test_a_module_allowed_explicitly_and_a_hash_listed_load(tmp_path):
    """The two opt-ins: allow_modules for a class, sha256 for a pickle (registry check, no flag)."""
    from pytest_synthcxr.models import registry
    from pytest_synthcxr.models.aliases import ModelError
    from pytest_synthcxr.models.trust import sha256_of
    from pytest_synthcxr.spec.schema import load_spec

    weights = make_state_dict_probe(tmp_path / "w.pt", 1)
    base = "judge = ['phantom', 'j']\n" + SPEC + "[judges.j]\nkind = 'state-dict'\npath = 'w.pt'\nclass = 'models_support:ProbeNet'\nlabels = ['COVID-19']\n"
    spec = tmp_path / "synthcxr.toml"
    spec.write_text(base)
    with pytest.raises(ModelError, match="module 'models_support' is not allowed"):
        registry.check("phantom", "t", load_spec(spec))
    spec.write_text(base + "allow_modules = ['models_support']\n")
    with pytest.raises(ModelError, match="is a pickle file"):
        registry.check("phantom", "t", load_spec(spec))
    spec.write_text(base + f"allow_modules = ['models_support']\nsha256 = ['{sha256_of(weights)}']\n")
    registry.check("phantom", "t", load_spec(spec))
    judge = registry.load_judge("phantom", load_spec(spec), device="cpu")
    assert "COVID-19" in judge.outputs


@pytest.mark.parametrize("value", ["'abc'", "'" + "g" * 64 + "'", "'" + "0" * 63 + "'"])
def test_a_malformed_trusted_hash_is_a_spec_error(pytester, value):
    table = f"[judges.j]\nkind = 'xrv'\npath = 'w.pt'\nsha256 = [{value}]\n"
    _one_line(_run(pytester, "judge = ['phantom', 'j']\n" + SPEC + table), "'sha256' values must be 64 hexadecimal digits")


# -- contents: a message describes a file, never prints it --------------------------------------


def test_messages_never_print_the_files_they_reject(pytester):
    secret = f"PATH=/usr/bin\nTOKEN={SECRET}\nHOME=/root\n"
    (pytester.path / "env.csv").write_text(secret)
    result = _run(pytester, FOLDER_SPEC, "--synthcxr-model=folder:env.csv")
    line = _one_line(result, "missing column(s) image, prompt")
    assert "its first line has 1 column(s)" in line and SECRET not in result.stdout.str() + result.stderr.str()
    for name, content in {"b1.json": secret, "b2.json": json.dumps({"schema_version": 1, "items": [{"check": SECRET}]}),
                          "b3.json": json.dumps({"schema_version": SECRET, "items": []})}.items():  # fmt: skip
        (pytester.path / name).write_text(content)
        result = _run(pytester, SPEC, f"--synthcxr-baseline={name}")
        _one_line(result, f"baseline {pytester.path / name}")
        assert SECRET not in result.stdout.str() + result.stderr.str()


# -- outputs: checked before the first image, never replaced when not a regular file ------------


def _outputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    fifo = tmp / "fifo.json"
    os.mkfifo(fifo)
    (tmp / "a_file").write_text("x")
    (tmp / "folder").mkdir()
    (tmp / "old.json").write_text("{}")
    return {
        "folder": (["--synthcxr-json=folder"], "is a folder; give a file path"),
        "fifo": ([f"--synthcxr-json={fifo}"], "is a FIFO; only regular files are written (it is never replaced)"),
        "device": ([f"--synthcxr-csv={os.devnull}"], "is a device; only regular files are written"),
        "spec": (["--synthcxr-report=synthcxr.toml"], "is also the spec file"),
        "two-outputs": (["--synthcxr-json=r.out", "--synthcxr-csv=r.out"], "--synthcxr-csv"),
        "baseline": (["--synthcxr-json=same.json", "--synthcxr-baseline=same.json"], "is also the baseline"),
        "parent-is-a-file": (["--synthcxr-json=a_file/r.json"], "is not a folder"),
    }


OUTPUT_CASES = ["folder", "fifo", "device", "spec", "two-outputs", "baseline", "parent-is-a-file"]


@pytest.mark.parametrize("case", OUTPUT_CASES)
def test_a_bad_output_path_stops_the_run_before_any_image(pytester, case):
    if case == "baseline":
        write_report(pytester.path / "same.json", [minimal_item("validity[sensitivity-Effusion]")])
        before = (pytester.path / "same.json").read_bytes()
    args, fragment = _outputs(pytester.path)[case]
    result = _run(pytester, SPEC, *args, "--synthcxr-no-cache")
    _one_line(result, fragment)
    assert "images generated" not in result.stdout.str()
    assert stat.S_ISFIFO(os.stat(pytester.path / "fifo.json").st_mode)  # never replaced
    assert os.path.exists(os.devnull) and stat.S_ISCHR(os.stat(os.devnull).st_mode)
    if case == "baseline":
        assert (pytester.path / "same.json").read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to any folder")
def test_an_unwritable_output_folder_stops_the_run(pytester):
    (pytester.path / "ro").mkdir(mode=0o555)
    _one_line(_run(pytester, SPEC, "--synthcxr-json=ro/r.json"), "is not writable")


def test_a_symlink_is_written_through_and_one_failing_output_does_not_stop_the_others(pytester):
    """A JSON path turned into a folder mid-run fails alone: CSV and HTML are written, and a
    symlinked CSV path keeps its link and gets the content."""
    (pytester.path / "real.csv").write_text("old")
    os.symlink(pytester.path / "real.csv", pytester.path / "link.csv")
    pytester.makepyfile(test_break="import os\ndef test_break():\n    os.mkdir('r.json')\n")
    result = _run(pytester, SPEC, "--synthcxr-json=r.json", "--synthcxr-csv=link.csv", "--synthcxr-report=r.html", "--synthcxr-no-cache")
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    assert any(line.startswith("synthcxr: output") and "r.json: is a folder" in line for line in text.splitlines()), text
    assert not any(line.startswith("report written:") and line.endswith("r.json") for line in text.splitlines()), text
    assert (pytester.path / "r.html").stat().st_size > 1000
    assert os.path.islink(pytester.path / "link.csv") and (pytester.path / "real.csv").read_text().startswith("cell,")


# -- baseline: validated once at start-up; a finished report is never lost ----------------------


BASELINES = {
    "not-utf8": (b"\xff\xfe\x00{", "not UTF-8 text"),
    "deeply-nested": (b"[" * 200_000 + b"]" * 200_000, "nested more than 64 levels deep"),
    "nested-dicts": (b'{"a":' * 100 + b"1" + b"}" * 100, "nested more than 64 levels deep"),
    "empty": (b"", "not JSON"),
    "not-an-object": (b"[1, 2, 3]", "not a pytest-synthcxr JSON report"),
    "items-not-objects": (json.dumps({"schema_version": 1, "items": [1, 2]}).encode(), "not a valid pytest-synthcxr JSON report"),
    "item-estimate-a-string": (
        json.dumps({**__import__("report_support").minimal_report([{**minimal_item("validity[sensitivity-Effusion]"), "estimate": "0.1"}])}).encode(),
        "at items/0/estimate",
    ),
    "missing-keys": (json.dumps({"schema_version": 1, "items": []}).encode(), "fails required"),
    "nan": (b'{"schema_version": NaN, "items": []}', "not a pytest-synthcxr JSON report"),
}


@pytest.mark.parametrize("content, fragment", BASELINES.values(), ids=BASELINES)
def test_a_broken_baseline_is_one_line_before_any_image(pytester, content, fragment):
    (pytester.path / "old.json").write_bytes(content)
    result = _run(pytester, SPEC, "--synthcxr-baseline=old.json", "--synthcxr-json=new.json")
    _one_line(result, fragment)
    assert "images generated" not in result.stdout.str() and not (pytester.path / "new.json").exists()


def test_a_baseline_deleted_mid_run_still_gives_the_compared_report(pytester):
    write_report(pytester.path / "old.json", [minimal_item("validity[sensitivity-Effusion]", 0.5, "validity")])
    pytester.makepyfile(test_delete="import os\ndef test_delete():\n    os.remove('old.json')\n")
    result = _run(pytester, SPEC, "--synthcxr-baseline=old.json", "--synthcxr-json=new.json", "--synthcxr-report=new.html", "--synthcxr-no-cache")
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    data = json.loads((pytester.path / "new.json").read_text())
    assert data["baseline"]["name"] == "old.json" and (pytester.path / "new.html").exists()


# -- cache: damaged, locked, unreadable or edited -------------------------------------------------


def _json(pytester, *args) -> tuple[object, dict]:
    result = _run(pytester, SPEC, "--synthcxr-json=out.json", *args)
    return result, json.loads((pytester.path / "out.json").read_text())


def test_cache_damage_and_edits(pytester):
    """One cold run, then: a damaged index is moved aside (the run goes on, same JSON); an
    unusable cache folder is one line (the run goes on); an edited score stops the run."""
    cache = pytester.path / "cache"
    cold, first = _json(pytester, f"--synthcxr-cache-dir={cache}")
    assert cold.ret in (0, 1)
    assert not (cache / "index.sqlite-wal").exists() or (cache / "index.sqlite-wal").stat().st_size == 0  # checkpointed
    entries = sqlite3.connect(cache / "index.sqlite").execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    assert entries > 0

    (pytester.path / "file").write_text("x")
    result, data = _json(pytester, f"--synthcxr-cache-dir={pytester.path / 'file' / 'sub'}")
    line = _one_line(result, "is not usable", ret=cold.ret)
    assert "continuing without the cache" in line and data == first

    db = sqlite3.connect(cache / "index.sqlite")  # a stored score edited to look better
    sha, blob = db.execute("SELECT image_sha, scores FROM scores LIMIT 1").fetchone()
    rows = db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    db.execute("UPDATE scores SET scores = ?", (np.zeros(len(blob) // 8).tobytes(),))
    db.commit()
    db.close()
    result = _run(pytester, SPEC, f"--synthcxr-cache-dir={cache}")
    _one_line(result, "a stored score does not match the judge")
    assert sqlite3.connect(cache / "index.sqlite").execute("SELECT COUNT(*) FROM scores").fetchone()[0] == rows  # nothing dropped

    (cache / "index.sqlite").write_bytes(b"this is not a database" * 100)
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        (cache / extra).unlink(missing_ok=True)
    result, data = _json(pytester, f"--synthcxr-cache-dir={cache}")
    _one_line(result, "the index was damaged", ret=cold.ret)
    assert data == first and list(cache.glob("index.sqlite.damaged-*"))


def test_a_held_write_lock_is_one_line_not_a_wait_per_item(tmp_path):
    from pytest_synthcxr.sampling.cache import CacheError, SampleCache

    SampleCache(tmp_path).close()
    holder = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(CacheError, match="its index is locked by another process") as err:
        SampleCache(tmp_path, lock_timeout=0.2)
    assert "\n" not in str(err.value)
    holder.execute("ROLLBACK")


def test_a_database_error_mid_run_turns_the_cache_off_once(tmp_path):
    from pytest_synthcxr.sampling.cache import SampleCache

    said: list[str] = []
    cache = SampleCache(tmp_path, warn=said.append)
    cache.put_samples("g", [("k", "p", 1)], np.zeros((1, 4, 4), np.float32), [True], store=True)
    cache._db.close()  # what a vanished or damaged database looks like to the next query
    assert cache.lookup(["k"]) == {} and cache.claim(["k"]) == ["k"] and cache.scores("j", ["a"], ["x"]) == {}
    cache.put_scores("j", ["a"], ["x"], np.zeros((1, 1)))
    assert len(said) == 1 and "continuing without the cache" in said[0]


# -- folder: pre-generated images -----------------------------------------------------------------


def _fill_template(pytester, folder: Path, spec_text: str) -> Path:
    """Run the prompts command, write one image per row, return the filled manifest."""
    import csv
    import subprocess
    import sys

    from PIL import Image

    spec = pytester.path / "synthcxr.toml"
    spec.write_text(spec_text)
    folder.mkdir()
    out = subprocess.run([sys.executable, "-m", "pytest_synthcxr.prompts", "--spec", str(spec)], capture_output=True, text=True, check=True)
    rows = list(csv.DictReader(out.stdout.splitlines()))
    assert rows and [r["prompt"] for r in rows] and {r["of"] for r in rows} == {"2"}
    for k, row in enumerate(rows):
        size = (40 + 7 * k, 30 + 5 * k)  # every image its own size
        ramp = (np.add.outer(np.arange(size[1]), np.arange(size[0])) * (k + 2)) % 256
        Image.fromarray(ramp.astype(np.uint8), mode="L").save(folder / f"{k}.png")
        row["image"] = f"{k}.png"
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[::-1])  # manifest order must not matter
    return folder / "manifest.csv"


def test_folder_rows_are_a_pure_function_of_manifest_and_spec(pytester):
    """Cold, warm and uncached runs of a filled template give the same JSON; every image is used
    once; each image's original size is in the CSV."""
    _fill_template(pytester, pytester.path / "gen", FOLDER_SPEC)
    args = ("--synthcxr-model=folder:gen", "--synthcxr-csv=s.csv")
    outputs = []
    for extra in ("--synthcxr-cache-dir=c", "--synthcxr-cache-dir=c", "--synthcxr-no-cache"):
        result = pytester.runpytest("-p", "no:randomly", "--synthcxr-device=cpu", *args, extra, "--synthcxr-json=o.json")
        assert "Traceback" not in result.stdout.str() and result.ret in (0, 1), result.stdout.str()
        outputs.append((pytester.path / "o.json").read_text())
    assert outputs[0] == outputs[1] == outputs[2]
    import pandas as pd

    table = pd.read_csv(pytester.path / "s.csv")
    assert table["valid"].all() and table["original_size"].str.match(r"^\d+x\d+$").all()
    assert table["original_size"].nunique() == len(table)  # each row its own image


def test_folder_images_each_resized_alone_and_a_bomb_is_refused(tmp_path):
    from PIL import Image

    from pytest_synthcxr.models.generators import folder as fg

    Image.new("L", (4000, 3000), 128).save(tmp_path / "big.png")
    Image.new("L", (3, 5), 64).save(tmp_path / "tiny.png")
    Image.new("1", (9000, 9000), 0).save(tmp_path / "bomb.png")  # 81 M pixels, a few KB on disk
    (tmp_path / "manifest.csv").write_text("image,prompt,seed\nbig.png,p,1\ntiny.png,p,2\nbomb.png,p,3\n")
    gen = fg.FolderGenerator(tmp_path / "manifest.csv", height=32, width=32)
    images = gen.generate(["p", "p", "p"], [1, 2, 3])
    assert images.shape == (3, 32, 32)
    np.testing.assert_allclose(images[0], 128 / 255, atol=1e-3)
    np.testing.assert_allclose(images[1], 64 / 255, atol=1e-3)  # the big first image did not set the size
    assert np.isnan(images[2]).all() and "decompression-bomb guard: 9000 x 9000 pixels" in gen.unreadable[str((tmp_path / "bomb.png").resolve())]
    assert gen.original_size("p", 1) == "4000x3000" and gen.original_size("p", 2) == "3x5"


def test_every_missing_prompt_is_named_in_one_message(pytester):
    from PIL import Image

    folder = pytester.path / "gen"
    folder.mkdir()
    Image.new("L", (8, 8), 10).save(folder / "a.png")
    (folder / "manifest.csv").write_text("image,prompt\na.png,Something else.\n")
    result = _run(pytester, FOLDER_SPEC, "--synthcxr-model=folder:gen")
    line = _one_line(result, "has no image for 2 prompt(s) the spec needs")
    assert "pytest_synthcxr.prompts" in line


@pytest.mark.parametrize("path", ["a\x00b.png", "a\x1b[2Jb.png", "\x7f.png"], ids=["nul", "ansi", "del"])
def test_odd_bytes_in_a_manifest_path_are_one_line(pytester, path):
    folder = pytester.path / "gen"
    folder.mkdir()
    (folder / "manifest.csv").write_text(f"image,prompt\n{path},Pleural effusion.\n")
    line = _one_line(_run(pytester, FOLDER_SPEC, "--synthcxr-model=folder:gen"), "holds a NUL or control character")
    assert "\x1b" not in line


# -- one line, never a traceback -------------------------------------------------------------------

ONE_LINE = {
    "empty-judge-list": ("judge = []\n" + SPEC, (), "judge"),
    "single-subgroup-gap": (
        "samples_per_cell = 2\nfindings = ['Effusion']\n[subgroups]\nsex = ['female']\nrace = ['White']\n"
        "[[bias]]\nmetric = 'tpr'\nstatistic = 'gap'\nmax = 0.1\n",
        (),
        "a gap compares subgroups, but by = sex*race gives only one",
    ),
    "single-subgroup-ratio": (
        "samples_per_cell = 2\nfindings = ['Effusion']\n[subgroups]\nsex = ['female']\nrace = ['White', 'Black']\n"
        "[[bias]]\nby = ['sex']\nstatistic = 'ratio'\nmin = 0.8\n",
        (),
        "a ratio compares subgroups, but by = sex gives only one",
    ),
    "cuda-missing": (SPEC, ("--synthcxr-device=cuda:7",), "--synthcxr-device=cuda:7"),
    "mps-missing": (SPEC, ("--synthcxr-device=mps",), "--synthcxr-device=mps"),
    "ansi-model-name": (SPEC, ("--synthcxr-model=\x1b[31mevil",), "model '\\x1b[31mevil' (from --synthcxr-model): names and paths may not hold control"),
    "ansi-model-table": (SPEC + '[models."\\u001b]0;evil\\u0007m"]\nkind = "phantom"\n', ("--synthcxr-model=\x1b]0;evil\x07m",), "may not hold control characters"),
    "ansi-judge-table": ('judge = ["phantom", "\\u001b[2Jj"]\n' + SPEC + '[judges."\\u001b[2Jj"]\nkind = "phantom"\n', (), "judge '\\x1b[2Jj': names may not hold control"),
    "power-one": ("power = 1.0\n" + SPEC, (), "power"),
    "margin-zero": ("margin = 0.0\n" + SPEC, (), "margin"),
    "zero-samples": (SPEC.replace("samples_per_cell = 2", "samples_per_cell = 0"), (), "samples_per_cell"),
    "confidence-one": ("confidence = 1.0\n" + SPEC, (), "confidence"),
    "first-round-one": ("first_round = 1\n" + SPEC, (), "first_round"),
    "power-nan": ("power = nan\n" + SPEC, (), "power"),
    "huge-samples": (SPEC.replace("samples_per_cell = 2", "samples_per_cell = 99999999999"), (), "samples_per_cell"),
    "plan-degenerate": ("margin = 0.0\npower = 0.5\n" + SPEC, ("--synthcxr-plan",), "power: Input should be greater than 0.5"),
    "zero-items": ("samples_per_cell = 2\nfindings = ['Effusion']\n[subgroups]\nsex = ['female']\nrace = ['White']\n", (), "no audit items"),
}
#: a spec that collects no items is a collection error (exit 2), not a silent exit 0
EXIT = {"zero-items": pytest.ExitCode.INTERRUPTED}


@pytest.mark.parametrize("spec, args, fragment", ONE_LINE.values(), ids=ONE_LINE)
def test_one_line_never_a_traceback(pytester, spec, args, fragment):
    import torch

    if "cuda" in fragment and torch.cuda.device_count() > 7:
        pytest.skip("this machine has the device")
    if "mps" in fragment and torch.backends.mps.is_available():
        pytest.skip("this machine has the device")
    result = _run(pytester, spec, *args, "--synthcxr-no-cache")
    case = next(k for k, v in ONE_LINE.items() if v == (spec, args, fragment))
    line = _one_line(result, fragment, EXIT.get(case, pytest.ExitCode.USAGE_ERROR))
    assert "\x1b" not in result.stdout.str() + result.stderr.str()
    assert line.count("synthcxr") >= 1


def test_an_invalid_model_index_is_one_line_before_any_test(pytester):
    cases = {"garbage": "{not json", "list": "[1, 2]", "binary": "\xff\xfe", "bad-class": '{"_class_name": ["os", "system"]}',
             "bad-component": '{"_class_name": "StableDiffusionPipeline", "unet": {"x": 1}}', "deep": "[" * 100_000}  # fmt: skip
    for name, content in cases.items():
        folder = pytester.path / name
        folder.mkdir()
        (folder / "model_index.json").write_text(content, encoding="latin-1")
        result = _run(pytester, FOLDER_SPEC, f"--synthcxr-model={folder}")
        _one_line(result, str(folder))


def test_a_reference_image_that_is_a_decompression_bomb_is_one_line(pytester):
    from PIL import Image

    Image.new("1", (12000, 12000), 0).save(pytester.path / "bomb.png")
    (pytester.path / "ref.csv").write_text("image,findings,sex,race,age\nbomb.png,Effusion,female,White,50\n")
    spec = SPEC + "[[versus_real]]\nmetric = \"hallucination\"\nmax_difference = 0.5\n"
    result = _run(pytester, spec, "--synthcxr-reference=ref.csv", "--synthcxr-no-cache")
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text, text
    assert "12000 x 12000 pixels, more than 67108864: a decompression bomb?" in text, text


@pytest.mark.parametrize("spec", ["missing.toml", "bad.toml"])
def test_an_explicit_spec_is_checked_even_without_a_model(pytester, spec):
    (pytester.path / "bad.toml").write_text("this is = = not toml")
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest(f"--synthcxr-spec={spec}")
    _one_line(result, spec)


def test_a_cell_left_without_images_is_inconclusive_not_a_crash(pytester):
    """Every image of the manifest unreadable: each item is inconclusive on n = 0 (no division by
    zero), the images are named as unreadable in the report, the JSON is written."""
    manifest = _fill_template(pytester, pytester.path / "gen", FOLDER_SPEC)
    for png in manifest.parent.glob("*.png"):
        png.write_bytes(b"not an image")
    result = pytester.runpytest("-p", "no:randomly", "--synthcxr-model=folder:gen", "--synthcxr-device=cpu", "--synthcxr-no-cache", "--synthcxr-json=o.json")
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED and "Traceback" not in text and "ZeroDivisionError" not in text, text
    data = json.loads((pytester.path / "o.json").read_text())
    assert {i["verdict"] for i in data["items"]} == {"inconclusive"} and {i["n"] for i in data["items"]} == {0}
    assert len(data["model"]["settings"]["unreadable"]) == len(list(manifest.parent.glob("*.png")))
