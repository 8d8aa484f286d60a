"""The phantom judge: packaged weights, calibrated operating points, accuracy on held-out phantoms.

Held-out phantoms come from entropy [HELD_OUT_SEED, 3, i]; training used [seed, 0, i] and
calibration [seed, 1, i] (scripts/train_phantom_judge.py), so none of these images was seen.
"Faithful" phantoms: severity U(0.8, 1.2), noise 0.02, each finding and the probe present with
probability 0.3, independently.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import rankdata

from pytest_synthcxr.models.judges.base import Judge, JudgeError
from pytest_synthcxr.models.judges.phantom import CHUNK, PhantomJudge, default_weights, op_norm
from pytest_synthcxr.phantom import NAMES, random_scene, render
from pytest_synthcxr.spec.vocabulary import FINDINGS, PROBES

HELD_OUT_SEED = 20240917
N_HELD_OUT = 400
SRC = Path(__file__).resolve().parents[1] / "src"


def faithful(n: int, seed: int = HELD_OUT_SEED) -> tuple[np.ndarray, np.ndarray]:
    images = np.empty((n, 224, 224), dtype=np.float32)
    labels = np.zeros((n, len(NAMES)), dtype=bool)
    for i in range(n):
        rng = np.random.default_rng([seed, 3, i])
        scene = random_scene(rng, p_finding=0.3, p_probe=0.3, severity=(0.8, 1.2), noise=(0.02, 0.02))
        images[i] = render(scene, rng)
        labels[i] = [name in scene.findings for name in NAMES]
    return images, labels


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Rank (Mann-Whitney U) formula; ties count half."""
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.fixture(scope="module")
def judge() -> PhantomJudge:
    return PhantomJudge()


@pytest.fixture(scope="module")
def held_out(judge):
    images, labels = faithful(N_HELD_OUT)
    return images, labels, judge.predict(images)


def test_outputs_and_identity(judge):
    assert isinstance(judge, Judge)
    assert judge.settings["sha256"] == judge.fingerprint
    assert judge.name == "phantom"
    assert judge.outputs == FINDINGS + PROBES
    digest = hashlib.sha256(default_weights().read_bytes()).hexdigest()
    assert judge.fingerprint == digest


def test_weights_file_is_small_safetensors_with_metadata():
    from safetensors import safe_open

    path = default_weights()
    assert path.is_file()
    assert path.stat().st_size < 5 * 1024 * 1024
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        thresholds = f.get_tensor("op_threshs")
        keys = set(f.keys())
    assert json.loads(meta["outputs"]) == list(FINDINGS + PROBES)
    assert meta["seed"].isdigit()
    training = json.loads(meta["training"])
    assert training["distribution"]["severity"] == [0.3, 1.3]
    assert thresholds.shape == (len(NAMES),) and np.all((thresholds > 0) & (thresholds < 1))
    assert any(k.startswith("features.") for k in keys)


def test_importing_the_judge_does_not_import_torch():
    code = (
        "import sys\n"
        "import pytest_synthcxr.models.judges.phantom as m\n"
        "m.PhantomJudge()\n"  # constructing it reads metadata only
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_predict_shape_dtype_range(judge, held_out):
    images, _, scores = held_out
    assert scores.shape == (len(images), len(judge.outputs))
    assert scores.dtype == np.float64
    assert np.all((scores >= 0) & (scores <= 1))
    assert judge.predict(images[:0]).shape == (0, len(judge.outputs))


def test_predictions_do_not_depend_on_batching(judge, held_out):
    images, _, scores = held_out
    subset = images[: 2 * CHUNK + 5]
    whole = judge.predict(subset)
    split = np.concatenate([judge.predict(subset[:37]), judge.predict(subset[37:])])
    one_by_one = np.concatenate([judge.predict(subset[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(whole, split, rtol=0, atol=1e-6)
    np.testing.assert_allclose(whole[:3], one_by_one, rtol=0, atol=1e-6)
    np.testing.assert_allclose(whole, scores[: len(subset)], rtol=0, atol=1e-6)


def test_operating_points_sit_at_one_half(judge, held_out):
    images, _, scores = held_out
    raw = judge.predict_raw(images[:50])
    np.testing.assert_allclose(op_norm(raw, judge.thresholds), scores[:50], atol=1e-12)
    t = judge.thresholds
    np.testing.assert_allclose(op_norm(t[None, :], t), 0.5)
    assert np.all(op_norm(np.array([[0.0] * len(t)]), t) == 0.0)
    assert np.all(op_norm(np.array([[1.0] * len(t)]), t) == 1.0)
    # monotone
    grid = np.linspace(0, 1, 101)[:, None].repeat(len(t), axis=1)
    assert np.all(np.diff(op_norm(grid, t), axis=0) >= 0)


@pytest.mark.parametrize("j,name", list(enumerate(FINDINGS + PROBES)))
def test_auroc_on_faithful_held_out_phantoms(held_out, j, name):
    _, labels, scores = held_out
    assert 60 < labels[:, j].sum() < N_HELD_OUT - 60
    assert auroc(scores[:, j], labels[:, j]) >= 0.97, name


@pytest.mark.parametrize("j,name", list(enumerate(FINDINGS + PROBES)))
def test_operating_point_sensitivity_and_false_positive_rate(held_out, j, name):
    _, labels, scores = held_out
    positive = scores[:, j] > 0.5
    sensitivity = positive[labels[:, j]].mean()
    fpr = positive[~labels[:, j]].mean()
    assert sensitivity >= 0.9, (name, sensitivity)
    assert fpr <= 0.1, (name, fpr)


def test_rejects_weights_for_other_outputs(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "other.safetensors"
    save_file({"op_threshs": np.full(2, 0.5, np.float32)}, str(path), metadata={"outputs": '["A", "B"]'})
    with pytest.raises(JudgeError, match="outputs"):
        PhantomJudge(path)
    with pytest.raises(JudgeError, match="not found"):
        PhantomJudge(tmp_path / "missing.safetensors")


def test_youden_threshold_and_auroc_helpers():
    sys.path.insert(0, str(SRC.parent / "scripts"))
    try:
        import train_phantom_judge as tpj
    finally:
        sys.path.pop(0)
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.7, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    t, j = tpj.youden_threshold(scores, labels)
    assert t == pytest.approx(0.325) and j == pytest.approx(0.75)
    assert tpj.auroc(scores, labels) == pytest.approx(auroc(scores, labels)) == pytest.approx(15 / 16)
