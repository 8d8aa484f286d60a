"""The procedural phantom renderer: determinism, shape, and findings where they belong.

PA orientation: the patient's LEFT is on the image RIGHT (high column indices).
Regions are given in normalised image coordinates (u = column / size, v = row / size).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from pytest_synthcxr.phantom import NAMES, Scene, random_scene, render
from pytest_synthcxr.spec.vocabulary import FINDINGS, PROBES

SIZE = 224


def draw(findings=None, seed=0, **kw) -> np.ndarray:
    kw.setdefault("noise", 0.0)
    kw.setdefault("sex", "male")
    return render(Scene(findings=findings or {}, **kw), np.random.default_rng(seed), SIZE)


def region(img: np.ndarray, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
    return img[int(v0 * SIZE) : int(v1 * SIZE), int(u0 * SIZE) : int(u1 * SIZE)]


IMAGE_LEFT = (0.12, 0.42)  # patient's right lung
IMAGE_RIGHT = (0.58, 0.88)  # patient's left lung


def test_names_cover_the_vocabulary():
    assert NAMES == FINDINGS + PROBES


@pytest.mark.parametrize("size", [224, 128, 97, 64])
def test_shape_dtype_range(size):
    rng = np.random.default_rng(1)
    for _ in range(5):
        img = render(random_scene(rng, noise=(0.0, 0.1)), rng, size)
        assert img.shape == (size, size)
        assert img.dtype == np.float32
        assert np.isfinite(img).all()
        assert img.min() >= 0.0 and img.max() <= 1.0
        assert img.std() > 0.1  # not blank


def test_same_seed_same_image_and_different_seeds_differ():
    scene = Scene(findings={"Effusion": None, "COVID-19": None}, sex="female", age=70, severity=0.9, noise=0.03)
    a = render(scene, np.random.default_rng(42))
    b = render(scene, np.random.default_rng(42))
    c = render(scene, np.random.default_rng(43))
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 0.005


def test_rng_state_advances_by_a_fixed_amount_whatever_the_scene():
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    render(Scene(), r1)
    render(Scene(findings={n: None for n in NAMES}, sex="male", severity=1.3), r2)
    assert r1.random() == r2.random()


def test_a_finding_changes_nothing_else():
    """Counterfactual pairs: the same seed with one more finding keeps anatomy and noise."""
    a = draw({"Cardiomegaly": None}, seed=3, noise=0.03)
    b = draw({"Cardiomegaly": None, "Effusion": "left"}, seed=3, noise=0.03)
    # a left effusion leaves the whole image-left half untouched
    assert np.array_equal(region(a, 0.0, 0.45, 0, 1), region(b, 0.0, 0.45, 0, 1))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_effusion_blunts_the_costophrenic_angle_of_its_side(seed):
    base = draw(seed=seed)
    left = draw({"Effusion": "left"}, seed=seed) - base
    right = draw({"Effusion": "right"}, seed=seed) - base
    both = draw({"Effusion": "bilateral"}, seed=seed) - base
    low = (0.6, 0.8)  # lung bases
    # patient's left = image right
    assert region(left, *IMAGE_RIGHT, *low).mean() > 0.08
    assert abs(region(left, *IMAGE_LEFT, *low).mean()) < 1e-3
    assert region(right, *IMAGE_LEFT, *low).mean() > 0.08
    assert abs(region(right, *IMAGE_RIGHT, *low).mean()) < 1e-3
    assert region(both, *IMAGE_LEFT, *low).mean() > 0.08 and region(both, *IMAGE_RIGHT, *low).mean() > 0.08
    # fluid lies at the base: the upper zone is untouched
    assert abs(region(left, *IMAGE_RIGHT, 0.15, 0.45).mean()) < 1e-3


@pytest.mark.parametrize("name", ["Consolidation", "Atelectasis"])
def test_lateral_opacities_are_on_their_side(name):
    for seed in range(3):
        base = draw(seed=seed)
        d_left = draw({name: "left"}, seed=seed) - base
        d_right = draw({name: "right"}, seed=seed) - base
        assert region(d_left, *IMAGE_RIGHT, 0.1, 0.85).sum() > 10 * max(region(d_left, *IMAGE_LEFT, 0.1, 0.85).sum(), 1)
        assert region(d_right, *IMAGE_LEFT, 0.1, 0.85).sum() > 10 * max(region(d_right, *IMAGE_RIGHT, 0.1, 0.85).sum(), 1)
        assert d_left.min() > -1e-5 or name == "Atelectasis"  # consolidation only adds density


def test_atelectasis_sits_in_the_lower_zone_and_raises_the_hemidiaphragm():
    base = draw(seed=4)
    d = draw({"Atelectasis": "left"}, seed=4) - base
    assert region(d, *IMAGE_RIGHT, 0.5, 0.8).sum() > 4 * region(d, *IMAGE_RIGHT, 0.1, 0.45).sum()
    # the raised dome turns lung (dark) into abdomen (bright) just above the old diaphragm
    rows = np.nonzero(region(d, *IMAGE_RIGHT, 0, 1).mean(axis=1) > 0.02)[0]
    assert rows.max() / SIZE > 0.7


def cardiothoracic_ratio(img: np.ndarray) -> float:
    """Widest heart (bright run through the centre column) over widest thorax (dark lung span)."""
    heart = thorax = 0
    for r in range(int(0.45 * SIZE), int(0.70 * SIZE)):
        row = img[r]
        dense = row > 0.45
        lo = hi = SIZE // 2
        while lo > 0 and dense[lo - 1]:
            lo -= 1
        while hi < SIZE - 1 and dense[hi + 1]:
            hi += 1
        heart = max(heart, hi - lo + 1)
        body = np.nonzero(row > 0.3)[0]
        inside = np.arange(body.min(), body.max() + 1)
        lung = inside[row[inside] < 0.3]
        if len(lung):
            thorax = max(thorax, lung.max() - lung.min() + 1)
    return heart / thorax


def test_cardiomegaly_widens_the_heart():
    for seed in range(3):
        sex = ("male", "female")[seed % 2]
        normal = cardiothoracic_ratio(draw(seed=seed, sex=sex))
        big = cardiothoracic_ratio(draw({"Cardiomegaly": None}, seed=seed, sex=sex))
        faint = cardiothoracic_ratio(draw({"Cardiomegaly": None}, seed=seed, sex=sex, severity=0.3))
        assert 0.38 < normal < 0.46  # about 0.42
        assert big > 0.55
        assert normal < faint < big


def test_severity_scales_findings():
    base = draw(seed=5)
    faint = np.abs(draw({"Effusion": "right", "Edema": None}, seed=5, severity=0.3) - base).sum()
    marked = np.abs(draw({"Effusion": "right", "Edema": None}, seed=5, severity=1.3) - base).sum()
    assert marked > 2 * faint > 0


@pytest.mark.parametrize("name", NAMES)
def test_severity_zero_draws_nothing(name):
    plain = draw(seed=11, noise=0.03)
    assert np.array_equal(draw({name: None}, seed=11, noise=0.03, severity=0.0), plain)
    assert np.array_equal(draw({name: None}, seed=11, noise=0.03, severity={name: 0.0}), plain)


def test_severity_per_finding():
    one = draw({"Effusion": "left"}, seed=12, severity=1.2)
    mixed = draw({"Effusion": "left", "Edema": None}, seed=12, severity={"Effusion": 1.2, "Edema": 0.0})
    assert np.array_equal(one, mixed)
    # names left out of the mapping get 1.0
    assert np.array_equal(draw({"Effusion": "left"}, seed=12), draw({"Effusion": "left"}, seed=12, severity={}))
    with pytest.raises(ValueError):
        draw({"Effusion": "left"}, severity={"Effusion": -0.5})


def test_edema_is_perihilar_and_covid_is_peripheral_and_basal():
    base = draw(seed=6)
    edema = draw({"Edema": None}, seed=6) - base
    covid = draw({"COVID-19": None}, seed=6) - base
    hila = [region(d, 0.33, 0.43, 0.42, 0.56).mean() + region(d, 0.57, 0.67, 0.42, 0.56).mean() for d in (edema, covid)]
    rim = [region(d, 0.12, 0.22, 0.55, 0.72).mean() + region(d, 0.78, 0.88, 0.55, 0.72).mean() for d in (edema, covid)]
    assert hila[0] > 2 * rim[0]  # edema: central
    assert rim[1] > 2 * hila[1]  # COVID-19: peripheral
    # both bilateral
    for d in (edema, covid):
        assert region(d, *IMAGE_LEFT, 0.3, 0.8).mean() > 0.005 and region(d, *IMAGE_RIGHT, 0.3, 0.8).mean() > 0.005


def test_pneumothorax_is_a_lucent_rim_without_markings():
    from scipy.ndimage import binary_erosion, uniform_filter

    for seed, side, cols in [(0, "right", IMAGE_LEFT), (1, "left", IMAGE_RIGHT), (2, "right", IMAGE_LEFT)]:
        normal = draw(seed=seed)
        d = draw({"Pneumothorax": side}, seed=seed) - normal
        other = IMAGE_RIGHT if cols == IMAGE_LEFT else IMAGE_LEFT
        assert region(d, *cols, 0.1, 0.8).mean() < -0.004  # darker (more air) on its side
        assert np.abs(region(d, *other, 0.0, 1.0)).max() < 1e-6  # nothing on the other side
        rim = binary_erosion(d < -0.06, iterations=2)
        assert rim.sum() > 200
        rows, columns = np.nonzero(rim)
        assert rows.min() / SIZE < 0.3  # reaches the apex
        # the markings are gone: what the rim lost follows the normal image's fine detail
        detail = normal - uniform_filter(normal, 5)
        assert np.corrcoef(d[rim], detail[rim])[0, 1] < -0.1


def test_sex_changes_habitus():
    for seed in range(3):
        male, female = draw(seed=seed, sex="male"), draw(seed=seed, sex="female")
        shoulders = [int((region(img, 0, 1, 0.11, 0.13).mean(axis=0) > 0.2).sum()) for img in (male, female)]
        assert shoulders[0] > shoulders[1] + 0.04 * SIZE
        assert np.abs(male - female).mean() > 0.01


def test_age_lowers_bone_contrast():
    young, old = draw(seed=7, age=25), draw(seed=7, age=85)
    below_diaphragm = (0.15, 0.85, 0.86, 0.95)  # soft tissue plus ribs only
    assert region(young, *below_diaphragm).std() > region(old, *below_diaphragm).std()


def test_noise_level():
    clean, noisy = draw(seed=8, noise=0.0), draw(seed=8, noise=0.05)
    inside = region(noisy - clean, 0.3, 0.7, 0.3, 0.7)
    assert 0.04 < inside.std() < 0.065


def test_unspecified_laterality_is_seeded():
    a = draw({"Effusion": None, "Pneumothorax": None}, seed=9)
    b = draw({"Effusion": None, "Pneumothorax": None}, seed=9)
    assert np.array_equal(a, b)
    sides = set()
    for seed in range(12):
        d = draw({"Consolidation": None}, seed=seed) - draw(seed=seed)
        sides.add(region(d, *IMAGE_LEFT, 0, 1).sum() > region(d, *IMAGE_RIGHT, 0, 1).sum())
    assert sides == {True, False}


@pytest.mark.parametrize(
    "scene",
    [
        Scene(findings={"Pneumonia": None}),
        Scene(findings={"Effusion": "up"}),
        Scene(sex="other"),
        Scene(severity=-1.0),
        Scene(noise=float("nan")),
    ],
)
def test_invalid_scenes_are_rejected(scene):
    with pytest.raises(ValueError):
        render(scene, np.random.default_rng(0))


def test_render_is_fast():
    rng = np.random.default_rng(10)
    scenes = [random_scene(rng) for _ in range(60)]
    render(scenes[0], rng)
    start = time.perf_counter()
    for scene in scenes:
        render(scene, rng)
    per_image = (time.perf_counter() - start) / len(scenes)
    assert per_image < 0.02  # about 2 ms on one core; generous for loaded CI machines
