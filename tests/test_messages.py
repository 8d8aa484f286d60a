"""Start-up messages that say everything at once and suggest TOML that parses (issue 14)."""

from __future__ import annotations

import tomllib

import pytest

from pytest_synthcxr.models.aliases import ModelError
from pytest_synthcxr.models.judges.xrv import judge_table
from pytest_synthcxr.models.registry import check, resolve_judge
from pytest_synthcxr.spec.schema import load_spec


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # torchxrayvision's weight folder is empty
    return tmp_path


def _spec(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return load_spec(path)


@pytest.mark.parametrize("judge", ["xrv:densenet121-res224-nih", "xrv", "my judge", 'odd"name'])
def test_a_suggested_judge_table_parses_and_keeps_the_variant(judge):
    for prefix in ("", "tool.synthcxr."):
        text = judge_table(judge, prefix, weights="densenet121-res224-nih")
        table, assignment = text.split("] ", 1)
        data = tomllib.loads(f"{table}]\n{assignment}\n")
        node = data["tool"]["synthcxr"] if prefix else data
        assert node["judges"][judge] == {"weights": "densenet121-res224-nih"}


def test_a_missing_variant_names_a_table_of_the_spec_files_own_kind(no_weights):
    loaded = _spec(no_weights, "audit.synthcxr.toml", 'judge = "xrv:densenet121-res224-nih"\nfindings = ["Effusion"]\n[validity]\nmin_sensitivity = 0.5\n')
    with pytest.raises(ModelError) as err:
        check("phantom", "test", loaded)
    message = str(err.value)
    assert '[judges."xrv:densenet121-res224-nih"] weights = "densenet121-res224-nih"' in message
    assert "tool.synthcxr" not in message
    pyproject = _spec(no_weights, "pyproject.toml", '[tool.synthcxr]\njudge = "xrv:densenet121-res224-nih"\n')
    with pytest.raises(ModelError) as err:
        check("phantom", "test", pyproject)
    assert '[tool.synthcxr.judges."xrv:densenet121-res224-nih"]' in str(err.value)


def test_a_quoted_table_keeps_the_variant_its_name_carries(no_weights):
    loaded = _spec(no_weights, "audit.synthcxr.toml", '[judges."xrv:densenet121-res224-nih"]\nkind = "xrv"\n')
    with pytest.raises(ModelError) as err:
        resolve_judge("xrv:densenet121-res224-nih", loaded)
    assert "'densenet121-res224-nih' not found" in str(err.value)  # not silently the -all weights


def test_every_unusable_judge_and_every_unscored_output_in_one_message(no_weights):
    loaded = _spec(
        no_weights,
        "audit.synthcxr.toml",
        'judge = ["xrv:densenet121-res224-nih", "xrv-sex", "xrv-race"]\nfindings = ["Effusion"]\n[validity]\nmin_sensitivity = 0.5\n',
    )
    with pytest.raises(ModelError) as err:
        check("phantom", "test", loaded)
    message = str(err.value)
    assert message.startswith("synthcxr: 3 judges cannot be used: ")
    assert all(name in message for name in ("'xrv:densenet121-res224-nih'", "'xrv-sex'", "'xrv-race'"))
    assert "\n" not in message
    unscored = _spec(
        no_weights,
        "unscored.synthcxr.toml",
        'judge = "phantom-attributes"\nfindings = ["Effusion", "Cardiomegaly"]\n[validity]\nmin_sensitivity = 0.5\n',
    )
    with pytest.raises(ModelError) as err:
        check("phantom", "test", unscored)
    message = str(err.value)
    assert message.startswith("synthcxr: 2 outputs are not scored: ") and "'Effusion'" in message and "'Cardiomegaly'" in message
