"""--synthcxr-reference as users run it (pytester): option, ini key, spec key, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SMALL_SPEC = (Path(__file__).parent.parent / "fixtures" / "specs" / "small.toml").read_text()


def test_help_lists_the_reference_option(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["  --synthcxr-reference=SYNTHCXR_REFERENCE", "*reference images to compare with*"])
    result.stdout.fnmatch_lines(["  synthcxr_reference (string):"])


def test_bad_reference_is_one_usage_line(pytester):
    pytester.makefile(".toml", synthcxr=SMALL_SPEC)
    (pytester.path / "ref.csv").write_text("image,findings,sex,race,age\nmissing.png,,F,White,50\n")
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-reference=ref.csv", "--collect-only", "-q")
    assert result.ret == 4  # usage error
    result.stderr.fnmatch_lines(["ERROR: synthcxr: reference */ref.csv: line 2: image 'missing.png': no such file*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-reference=phantom:2", "--collect-only", "-q")
    result.stderr.fnmatch_lines(["ERROR: synthcxr: reference 'phantom:2': phantom size must be an integer of at least 8*"])


def test_sections_that_need_a_reference_say_so(pytester):
    pytester.makefile(".toml", synthcxr=SMALL_SPEC + "\n[memorization]\nmax_rate = 0.05\n")
    result = pytester.runpytest("--synthcxr-model=phantom", "--collect-only", "-q")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: synthcxr: spec: [[]memorization[]] compares with a reference set, but none is given*"])


def test_reference_in_spec_and_ini(pytester):
    sub = pytester.path / "specs"
    sub.mkdir()
    (sub / "synthcxr.toml").write_text('reference = "data/ref.csv"\n' + SMALL_SPEC)
    (sub / "data").mkdir()
    (sub / "data" / "ref.csv").write_text("image,findings,sex,race,age\n")  # found relative to the spec: empty
    result = pytester.runpytest("--synthcxr-model=phantom", f"--synthcxr-spec={sub / 'synthcxr.toml'}", "--collect-only", "-q")
    result.stderr.fnmatch_lines(["ERROR: synthcxr: reference */specs/data/ref.csv: no usable images (the manifest has no rows)"])
    pytester.makefile(".toml", synthcxr=SMALL_SPEC)
    pytester.makeini("[pytest]\nsynthcxr_reference = phantom:16\n")
    result = pytester.runpytest("--synthcxr-model=phantom", "--collect-only", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*8 tests collected*"])


def test_reference_sections_expand_into_stable_items(pytester):
    spec = (
        'reference = "phantom:16"\nfindings = ["Effusion", "Edema"]\n'
        '[subgroups]\nsex = ["female", "male"]\nrace = ["White"]\n'
        '[[versus_real]]\nmetric = "tpr-gap"\nfindings = ["Effusion"]\nmax_difference = 0.05\n'
        '[[versus_real]]\nmetric = "hallucination"\nmax_difference = 0.05\n'
        '[fidelity]\nby = ["overall", "finding", "subgroup"]\nstatistic = "excess"\nmax_fd = 20.0\nfindings = ["Edema"]\n'
        '[diversity]\nmax_msssim = 0.9\nfindings = ["Effusion"]\n'
        '[memorization]\nmax_rate = 0.01\n'
    )
    pytester.makefile(".toml", synthcxr=spec)
    result = pytester.runpytest("--synthcxr-model=phantom", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "synthcxr.toml::versus-real[[]tpr-gap-Effusion[]]",
            "synthcxr.toml::versus-real[[]hallucination-COVID-19[]]",
            "synthcxr.toml::fidelity[[]excess[]]",
            "synthcxr.toml::fidelity[[]excess-Edema[]]",
            "synthcxr.toml::fidelity[[]excess-female-White[]]",
            "synthcxr.toml::fidelity[[]excess-male-White[]]",
            "synthcxr.toml::diversity[[]msssim-Effusion[]]",
            "synthcxr.toml::memorization[[]nn-cosine-0.995[]]",
            "*8 tests collected*",
        ]
    )
    result = pytester.runpytest("--synthcxr-model=phantom", "--collect-only", "-q", "-m", "fidelity")
    result.stdout.fnmatch_lines(["*4/8 tests collected (4 deselected)*"])


def test_bad_section_values_are_one_line(pytester):
    pytester.makefile(".toml", synthcxr='reference = "phantom:16"\n[fidelity]\nstatistic = "fid"\nmax_fd = 1.0\n')
    result = pytester.runpytest("--synthcxr-model=phantom", "--collect-only", "-q")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["ERROR: synthcxr: */synthcxr.toml: fidelity[[]0[]].statistic: *'fd' or 'excess'*"])


def test_a_reference_without_what_the_spec_compares_is_one_usage_line(pytester, tmp_path):
    from PIL import Image

    folder = pytester.path / "ref"
    folder.mkdir()
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 255).astype("uint8")).save(folder / "a.png")
    rows = ["a.png,Effusion,F,White,50", "a.png,Effusion,M,White,50", "a.png,,F,White,50"]  # no Black women
    (folder / "manifest.csv").write_text("image,findings,sex,race,age\n" + "\n".join(rows) + "\n")
    spec = (
        'reference = "ref"\nfindings = ["Effusion"]\n[subgroups]\nsex = ["female", "male"]\nrace = ["White", "Black"]\n'
        '[[versus_real]]\nmetric = "tpr-gap"\nmax_difference = 0.05\n'
    )
    pytester.makefile(".toml", synthcxr=spec)
    result = pytester.runpytest("--synthcxr-model=phantom", "--collect-only", "-q")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        ["ERROR: synthcxr: reference */ref/manifest.csv: versus_real tpr-gap for Effusion needs at least 1 reference image(s) labelled Effusion of Black female; it has 0"]
    )
