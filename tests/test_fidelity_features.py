"""Judge features for the fidelity and memorization checks: torchxrayvision DenseNet's 1024-d
features2 (fake random weights saved where xrv looks; nothing downloads), the phantom judge's
penultimate layer, panels, and the one-line error for a judge without features."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_synthcxr.models.features import FeatureError, feature_extractor, ms_ssim_pairs
from pytest_synthcxr.models.generators.phantom import PhantomGenerator
from pytest_synthcxr.models.judges.ensemble import JudgePanel
from pytest_synthcxr.models.judges.phantom import PhantomJudge


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return PhantomGenerator("phantom").generate(["Right pleural effusion.", "No acute cardiopulmonary process."] * 2, [1, 2, 3, 4])


def test_xrv_densenet_features_are_its_1024_d_features2(tmp_path_factory, images) -> None:
    pytest.importorskip("torchxrayvision")
    import torch

    from pytest_synthcxr.models.judges import xrv as xj

    xrv = xj.import_xrv()
    folder = tmp_path_factory.mktemp("xrv-cache")
    torch.manual_seed(0)
    torch.save(xrv.models.DenseNet(num_classes=18), folder / xj.release_basename("densenet121-res224-all"))
    judge = xj.XRVJudge(cache_dir=folder)
    kind, extract = feature_extractor(judge)
    assert kind.startswith("torchxrayvision DenseNet features2 1024-d")
    features = extract(images)
    assert features.shape == (4, 1024) and np.isfinite(features).all()
    with torch.inference_mode():
        expected = judge._load().features2(torch.from_numpy(xj.xrv_preprocess(images[:1])))
    assert np.allclose(features[0], expected.numpy()[0], atol=1e-5)
    # a panel uses its first member with features
    kind_panel, _ = feature_extractor(JudgePanel([_NoFeatures(), judge]))
    assert kind_panel == kind


class _NoFeatures:
    name = "probe"
    outputs = ("COVID-19",)


def test_phantom_features_and_errors(images) -> None:
    kind, extract = feature_extractor(PhantomJudge())
    assert kind == "phantom judge penultimate layer"
    features = extract(images)
    assert features.shape == (4, 16 * 4 + 8 * 49)
    assert np.array_equal(extract(images[:2]), features[:2])  # a row does not depend on its batch
    with pytest.raises(FeatureError, match="judge 'probe' has no feature extractor"):
        feature_extractor(_NoFeatures())


def test_ms_ssim_pairs(images) -> None:
    values = ms_ssim_pairs(images[:2], images[:2])
    assert np.allclose(values, 1.0)
    different = ms_ssim_pairs(images[:1], images[2:3])[0]  # same prompt, other seed
    assert 0.2 < different < 0.95
    with pytest.raises(FeatureError, match="larger than 160 pixels"):
        ms_ssim_pairs(images[:1, :100, :100], images[:1, :100, :100])
