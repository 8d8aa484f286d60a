"""Spec loading: defaults, where specs are found, and one-line errors naming file and key."""

from pathlib import Path

import pytest

from pytest_synthcxr.checks import build_checks
from pytest_synthcxr.spec.schema import SpecError, find_spec_file, load_spec

FIXTURES = Path(__file__).parent.parent / "fixtures" / "specs"


def test_default_spec_loads_and_expands():
    loaded = load_spec(None)
    assert loaded.path is None and len(loaded.sha256) == 64
    names = [c.nodename for c in build_checks(loaded.spec)]
    # issue 17: named gaps (paired), the prompt effect, a perceived-sex gap on plain prompts; no SR
    # relative deviation (it needs several thousand images per cell: benchmarks/README.md)
    assert [n for n in names if n.startswith("bias[")] == [
        "bias[tpr-gap-Effusion-sex*race-named]",
        "bias[tpr-gap-Cardiomegaly-sex*race-named]",
        "bias[tpr-prompt-effect-Effusion-sex*race]",
        "bias[tpr-gap-Effusion-sex-perceived]",
    ]
    assert "hallucination[COVID-19]" in names
    assert "uncertainty[Cardiomegaly]" in names
    assert len(names) == len(set(names))


def test_small_fixture_spec():
    loaded = load_spec(FIXTURES / "small.toml")
    checks = build_checks(loaded.spec)
    assert [c.nodename for c in checks if c.family == "bias"] == [
        "bias[tpr-gap-Effusion-sex*race-named]",  # prompt defaults to "named" (issue 17)
    ]


def test_pyproject_table_found(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_spec_file(tmp_path) is None
    (tmp_path / "synthcxr.toml").write_text("seed = 1\n")
    assert find_spec_file(tmp_path) == tmp_path / "synthcxr.toml"
    (tmp_path / "pyproject.toml").write_text("[tool.synthcxr]\nseed = 2\n")
    assert find_spec_file(tmp_path) == tmp_path / "pyproject.toml"
    loaded = load_spec(tmp_path / "pyproject.toml")
    assert loaded.spec.seed == 2 and loaded.table == "tool.synthcxr"


@pytest.mark.parametrize(
    "body, expected",
    [
        ("colour = 1\n", "colour: unknown key; allowed keys: batch_size, bias, cache_images, confidence"),
        ("seed = 'zero'\n", "seed: Input should be a valid integer (got 'zero')"),
        ("confidence = 1.5\n", "confidence: Input should be less than 1"),
        ('findings = ["Fracture"]\n', "findings[0]: Input should be 'Atelectasis', 'Cardiomegaly'"),
        ('[subgroups]\nrace = ["Martian"]\n', "subgroups.race[0]: Input should be 'White', 'Black', 'Asian' or 'Hispanic' (got 'Martian')"),
        ("[[bias]]\nstatistic = 'gap'\nmax = 1.5\n", "bias[0].max: Input should be less than or equal to 1 (got 1.5)"),
        ("[[bias]]\nstatistic = 'ratio'\nmax = 0.1\n", "bias[0]: statistic 'ratio' takes a bound 'min' (and not 'max')"),
        ("[[bias]]\nmax = 0.1\nthreshold = 2\n", "bias[0].threshold: unknown key; allowed keys: by, findings, max, max_decline, max_decrease, max_increase, max_regression, metric, min, prompt, relative_to_baseline, samples, scale, statistic"),
        ("[hallucination]\nmax_rate = 0.1\nprobes = ['Flu']\n", "hallucination[0].probes[0]: Input should be 'COVID-19'"),
        ("[subgroups]\nreference = {sex = 'female', race = 'Asian'}\nrace = ['White']\n", "subgroups: reference race='Asian' is not in subgroups.race ['White']"),
        ('[subgroups]\nsex = ["female", "female"]\n', "subgroups: sex lists 'female' twice: ['female', 'female']"),
        ('[subgroups]\nrace = ["Black", "White", "Black"]\n', "subgroups: race lists 'Black' twice"),
    ],
)
def test_errors_are_one_line_naming_file_and_key(tmp_path, body, expected):
    path = tmp_path / "synthcxr.toml"
    path.write_text(body)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"synthcxr: {path}: ")
    assert expected in message


def test_pyproject_errors_name_the_table(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.synthcxr]\nsamples_per_cell = 1\n")
    with pytest.raises(SpecError, match=r"pyproject.toml: tool.synthcxr.samples_per_cell: Input should be greater than or equal to 2"):
        load_spec(path)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(SpecError, match="spec file not found: .*nope.toml"):
        load_spec(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 3\n")
    with pytest.raises(SpecError, match=r"bad.toml: invalid TOML: .*line 1"):
        load_spec(bad)


def test_reader_labels_are_relative_to_the_spec_file(tmp_path, monkeypatch):
    """[reader] labels, like every path in a spec, is read relative to the spec file (a run from
    another folder finds the same labels); an absolute path stays as given."""
    from pytest_synthcxr.spec.schema import load_spec

    folder = tmp_path / "audits"
    folder.mkdir()
    spec = folder / "a.synthcxr.toml"
    spec.write_text('findings = ["Effusion"]\n[reader]\nlabels = "study/labels.sqlite"\n')
    monkeypatch.chdir(tmp_path)
    assert load_spec(spec).spec.reader.labels == str(folder / "study" / "labels.sqlite")
    spec.write_text(f'findings = ["Effusion"]\n[reader]\nlabels = "{(tmp_path / "x.csv").as_posix()}"\n')
    assert load_spec(spec).spec.reader.labels == (tmp_path / "x.csv").as_posix()
