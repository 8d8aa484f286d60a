"""The torchxrayvision judge through xrv's real loading code, on randomly initialised DenseNets
saved where xrv looks for its weights (nothing is downloaded)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torchxrayvision")
import skimage.transform  # noqa: E402, F401  (C extension: loaded before any pytester run)

from models_support import make_torchscript_probe, one_group_spec, small_spec  # noqa: E402

from pytest_synthcxr.models import registry  # noqa: E402
from pytest_synthcxr.models.judges import xrv as xj  # noqa: E402
from pytest_synthcxr.models.judges.base import JudgeError  # noqa: E402
from pytest_synthcxr.models.aliases import ModelError  # noqa: E402
from pytest_synthcxr.spec.schema import load_spec  # noqa: E402

XRV = xj.import_xrv()


@pytest.fixture(scope="module")
def xrv_cache(tmp_path_factory):
    """A cache folder holding fake (random) weights for the -all and -rsna DenseNets."""
    import torch

    folder = tmp_path_factory.mktemp("xrv-cache")
    torch.manual_seed(0)
    model = XRV.models.DenseNet(num_classes=18)  # a whole pickled module, like the release files
    for weights in ("densenet121-res224-all", "densenet121-res224-rsna"):
        torch.save(model, folder / xj.release_basename(weights))
    return folder


@pytest.fixture(scope="module")
def judge(xrv_cache):
    return xj.XRVJudge(cache_dir=xrv_cache)


def test_static_tables_match_the_installed_torchxrayvision():
    assert tuple(XRV.datasets.default_pathologies) == xj.XRV_LABELS
    for weights in xj.WEIGHT_NAMES:
        info = XRV.models.model_urls[weights]
        assert os.path.basename(info["weights_url"]) == xj.release_basename(weights)
        untrained = {i for i, (label, t) in enumerate(zip(info["labels"], info["op_threshs"])) if label == "" or np.isnan(t)}
        assert untrained == set(xj.UNTRAINED[weights]), weights
    assert str(xj.default_cache_dir()) + os.sep == os.path.expanduser(XRV.utils.get_cache_dir())


def test_importing_torchxrayvision_leaves_warnings_and_sys_path_alone():
    code = (
        "import sys, warnings\n"
        "before = (list(warnings.filters), list(sys.path))\n"
        "from pytest_synthcxr.models.judges.xrv import import_xrv\n"
        "import_xrv()\n"
        "blanket = ('ignore', None, Warning, None, 0)\n"
        "assert list(sys.path) == before[1] and blanket not in warnings.filters, warnings.filters\n"
        "assert all(f in warnings.filters for f in before[0])\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_preprocessing_matches_hand_computed_values():
    # [0, 1] -> [-1024, 1024]: 2048 x - 1024, exactly, at the native size
    ramp = np.linspace(0, 1, 224 * 224, dtype=np.float32).reshape(1, 224, 224)
    np.testing.assert_allclose(xj.xrv_preprocess(ramp)[0, 0], 2048 * ramp[0].astype(np.float64) - 1024, atol=1e-3)
    # a constant image stays constant through crop and resize: 0.5 -> 0, 0.25 -> -512
    assert np.allclose(xj.xrv_preprocess(np.full((2, 300, 200), 0.5, np.float32)), 0.0, atol=1e-3)
    assert np.allclose(xj.xrv_preprocess(np.full((1, 64, 64), 0.25, np.float32)), -512.0, atol=1e-3)
    # the center crop keeps the middle square of a wide image: bright middle third only
    wide = np.zeros((1, 100, 300), np.float32)
    wide[:, :, 100:200] = 1.0
    out = xj.xrv_preprocess(wide)
    assert out.shape == (1, 1, 224, 224) and np.allclose(out, 1024.0, atol=1e-3)
    # and a tall image's middle rows
    tall = np.zeros((1, 300, 100), np.float32)
    tall[:, 100:200, :] = 1.0
    assert np.allclose(xj.xrv_preprocess(tall), 1024.0, atol=1e-3)


def test_real_loading_path_scores_calibrated_outputs(judge):
    import torch

    assert judge.outputs == xj.XRV_LABELS and judge.name == "xrv:densenet121-res224-all"
    images = np.random.default_rng(0).random((2, 64, 64), dtype=np.float32)
    scores = judge.predict(images)
    assert scores.shape == (2, 18) and np.all((scores >= 0) & (scores <= 1))
    # the same numbers as xrv's own forward pass (op_norm on its operating points)
    model = judge._load()
    assert torch.allclose(model.op_threshs, torch.tensor(XRV.models.model_urls["densenet121-res224-all"]["op_threshs"]))
    with torch.inference_mode():
        direct = model(torch.from_numpy(xj.xrv_preprocess(images))).numpy()
    np.testing.assert_allclose(scores, direct, atol=1e-6)
    s = judge.settings
    assert s["sha256"] == judge.fingerprint.split(":")[-1] and len(s["sha256"]) == 64
    assert s["file"].endswith(xj.release_basename("densenet121-res224-all"))


def test_a_weight_file_under_another_name_loads_through_xrv(judge, xrv_cache, tmp_path):
    mine = tmp_path / "my-densenet.pt"
    mine.write_bytes((xrv_cache / xj.release_basename("densenet121-res224-all")).read_bytes())
    renamed = xj.XRVJudge(path=mine, mapping={"Lung Opacity": "Consolidation-like"})
    assert "Consolidation-like" in renamed.outputs and "Lung Opacity" not in renamed.outputs
    import torch

    theirs, ours = judge._load().state_dict(), renamed._load().state_dict()
    assert theirs.keys() == ours.keys() and all(torch.equal(theirs[k], ours[k]) for k in theirs)
    assert renamed.fingerprint == judge.fingerprint  # same bytes, same judge


def test_untrained_outputs_are_masked(xrv_cache):
    judge = xj.XRVJudge("densenet121-res224-rsna", cache_dir=xrv_cache)
    assert judge.outputs == ("Pneumonia", "Lung Opacity")
    assert "Effusion" in judge.masked and "Effusion" not in judge.outputs


def test_unknown_weights_and_missing_files_are_one_line_errors(tmp_path):
    with pytest.raises(JudgeError, match=r"unknown torchxrayvision weights 'densenet-x'; known: densenet121-res224-all, "):
        xj.XRVJudge("densenet-x")
    with pytest.raises(JudgeError, match=r"not found at .*never downloads them.*wget https://github.com/mlmed/torchxrayvision/releases/"):
        xj.XRVJudge(cache_dir=tmp_path)


def _loaded(tmp_path, text):
    path = tmp_path / "synthcxr.toml"
    path.write_text(text)
    return load_spec(path)


def test_a_check_on_a_masked_output_is_refused(xrv_cache, tmp_path):
    text = f"judge = 'rsna'\n{small_spec(('Effusion',))}[judges.rsna]\nweights = 'densenet121-res224-rsna'\ncache_dir = '{xrv_cache}'\n"
    with pytest.raises(ModelError, match=r"needs the output 'Effusion', but judge 'rsna' masks 'Effusion': its weights \(densenet121-res224-rsna\) were not trained"):
        registry.check("phantom", "test", _loaded(tmp_path, text), allow_pickle=True)


def test_a_probe_the_judge_lacks_is_refused_with_a_hint(xrv_cache, tmp_path):
    text = f"judge = 'xrvall'\n{small_spec()}[judges.xrvall]\ncache_dir = '{xrv_cache}'\n"
    with pytest.raises(ModelError) as err:
        registry.check("phantom", "test", _loaded(tmp_path, text), allow_pickle=True)
    assert "hallucination[COVID-19] needs the output 'COVID-19', but judge(s) xrvall do not score 'COVID-19'" in str(err.value)
    assert 'labels = ["COVID-19"]' in str(err.value)


def test_end_to_end_xrv_ensemble_with_a_covid_probe(pytester, xrv_cache):
    """An xrv judge and a TorchScript probe scoring Effusion and COVID-19: an ensemble on Effusion
    (with its disagreement column), the probe alone on COVID-19, audited on the phantom."""
    make_torchscript_probe(pytester.path / "covid.pt", 2)
    spec = (
        "judge = ['xrv-a', 'covid']\n"
        + one_group_spec(("Effusion",), samples=2)
        + f"[judges.xrv-a]\ncache_dir = '{xrv_cache}'\n"
        + "[judges.covid]\nkind = 'torchscript'\npath = 'covid.pt'\nlabels = ['Effusion', 'COVID-19']\nthreshold = [0.5, 0.3]\n"
    )
    pytester.makefile(".toml", synthcxr=spec)
    result = pytester.runpytest("--synthcxr-model=phantom", "--synthcxr-device=cpu", "--synthcxr-csv=samples.csv", "--synthcxr-allow-pickle")
    outcomes = result.parseoutcomes()
    assert sum(outcomes.get(k, 0) for k in ("passed", "failed")) == 3, result.stdout.str()
    header = (pytester.path / "samples.csv").read_text().splitlines()[0]
    assert "p:Effusion" in header and "p:COVID-19" in header and "p:disagreement:Effusion" in header


def test_missing_xrv_weights_stop_the_run_before_any_test(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # whatever this machine's own xrv cache holds
    pytester.makefile(".toml", synthcxr=f"judge = 'xrv'\n{small_spec()}")
    result = pytester.runpytest("--synthcxr-model=phantom", f"--rootdir={pytester.path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stderr.str()
    assert "Traceback" not in text and "torchxrayvision weights 'densenet121-res224-all' not found" in text


@pytest.fixture(scope="module")
def attribute_weights(tmp_path_factory):
    """Random weights for the race (a state dict of a DataParallel ResNet34) and sex (a Lightning
    checkpoint) classifiers, in the formats xrv's own files use."""
    import torch
    import torchvision

    folder = tmp_path_factory.mktemp("xrv-attr")
    torch.manual_seed(0)
    race = torchvision.models.resnet34(weights=None)
    race.fc = torch.nn.Sequential(torch.nn.Linear(512, 3), torch.nn.LogSoftmax(dim=1))
    torch.save(torch.nn.DataParallel(race).state_dict(), folder / "race.pt")
    sex = torchvision.models.resnet34(weights=None)
    sex.fc = torch.nn.Linear(512, 2)
    torch.save({"state_dict": {f"model.{k}": v for k, v in sex.state_dict().items()}}, folder / "sex.ckpt")
    return folder


@pytest.mark.parametrize("kind, file, outputs", [("xrv-race", "race.pt", 3), ("xrv-sex", "sex.ckpt", 2)])
def test_demographic_judges_score_class_probabilities(attribute_weights, kind, file, outputs, monkeypatch):
    home = attribute_weights / "home"
    monkeypatch.setenv("HOME", str(home))  # xrv's hard-coded folder: never the real one, never a download
    with pytest.raises(JudgeError, match=r"not found at .*home/\.torchxrayvision/models_data/"):
        xj.XRVAttributeJudge(kind)
    judge = xj.XRVAttributeJudge(kind, path=attribute_weights / file)
    scores = judge.predict(np.random.default_rng(0).random((2, 48, 40), dtype=np.float32))
    assert scores.shape == (2, outputs) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert judge.outputs[0] in ("race:Asian", "sex:male") and len(judge.settings["sha256"]) == 64
    assert os.environ["HOME"] == str(home) and not (home / ".torchxrayvision").exists()


def test_demographic_judges_through_the_registry(attribute_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ModelError, match=r"judge 'xrv-sex': torchxrayvision weights 'xrv-sex' not found at .*mira_sex_resnet"):
        registry.resolve_judge("xrv-sex")
    text = f"judge = ['phantom', 'race']\n{small_spec()}[judges.race]\nkind = 'xrv-race'\npath = '{attribute_weights / 'race.pt'}'\n"
    loaded = _loaded(tmp_path, text)
    with pytest.raises(ModelError, match=r"race.pt is a pickle file .* --synthcxr-allow-pickle"):
        registry.check("phantom", "test", loaded)
    registry.check("phantom", "test", loaded, allow_pickle=True)
    panel = registry.load_judge("phantom", loaded, device="cpu", allow_pickle=True)
    assert panel.outputs[-3:] == ("race:Asian", "race:Black", "race:White")
