"""Fidelity, diversity, memorization and synthetic-vs-real statistics: hand-checked numerics, then
known answers in the phantom world (planted differences detected with the planted magnitudes)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from pytest_synthcxr.sampling.cells import Cell, derive_seed
from pytest_synthcxr.checks.fidelity import DiversityCheck, FrechetCheck, MemorizationCheck, frechet_bootstrap, frechet_distance, frechet_permutation, frechet_reference, nearest_cosine
from pytest_synthcxr.checks.reference import Versus, expected_calibration_error, judge_audit, mean_difference
from pytest_synthcxr.reference.comparison import Comparison
from pytest_synthcxr.models.generators.phantom import PRESETS, PhantomGenerator
from pytest_synthcxr.models.judges.phantom import PhantomJudge
from pytest_synthcxr.sampling.pool import SamplePool
from pytest_synthcxr.reference.readers import load_reference

FINDINGS = ("Effusion",)
GRID = [(("sex", s), ("race", "White")) for s in ("female", "male")]
CELLS = tuple(Cell(f, g, False) for g in GRID for f in (*FINDINGS, None))
N = 16  # samples per cell: 64 synthetic images


# ------------------------------------------------------------------------------------ numerics


@pytest.mark.parametrize(("n", "d"), [(30, 50), (80, 6), (50, 50)])  # fewer images than dimensions, more, as many
def test_frechet_distance_matches_scipy_sqrtm(n: int, d: int) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    b = rng.normal(loc=0.3, size=(n + 7, d)) @ rng.normal(size=(d, d))
    assert frechet_distance(a, b) == pytest.approx(frechet_reference(a, b), rel=1e-6)


def test_frechet_distance_of_a_pure_shift_is_the_squared_shift() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4000, 3))
    shift = np.array([1.0, -2.0, 0.5])
    # same covariance: the distance is |shift|^2 = 5.25
    assert frechet_distance(a, a + shift) == pytest.approx(5.25, rel=1e-9)
    estimate = frechet_bootstrap(a, rng.normal(size=(4000, 3)) + shift, alpha=0.05, reps=50)
    assert estimate.low <= 5.25 <= estimate.high and estimate.high - estimate.low < 1.0


def test_identical_sets_have_distance_zero_within_the_interval() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=(60, 40))
    estimate = frechet_bootstrap(a, a.copy(), alpha=0.05, reps=60)
    assert abs(estimate.value) < 1e-8 and estimate.low == 0.0 < estimate.high


def test_nearest_cosine() -> None:
    pool = np.array([[1.0, 0.0], [0.0, 2.0]])
    sims, index = nearest_cosine(np.array([[3.0, 0.1], [0.0, -1.0], [1.0, 1.0]]), pool)
    assert index.tolist()[:2] == [0, 0] or index.tolist()[0] == 0
    assert sims[0] == pytest.approx(3.0 / np.hypot(3.0, 0.1))
    assert sims[1] == pytest.approx(0.0)
    assert sims[2] == pytest.approx(np.sqrt(0.5))


def test_mean_difference_is_welch() -> None:
    x, y = np.array([0.1, 0.2, 0.4, 0.3, 0.25]), np.array([0.05, 0.1, 0.0, 0.12])
    estimate = mean_difference(x, y, 0.05)
    welch = scipy_stats.ttest_ind(x, y, equal_var=False).confidence_interval(0.95)
    assert estimate.value == pytest.approx(x.mean() - y.mean())
    assert (estimate.low, estimate.high) == pytest.approx((welch.low, welch.high))


def test_expected_calibration_error_by_hand() -> None:
    # bins of width 0.1: [0.05, 0.05] with labels [0, 1] -> |0.5 - 0.05| = 0.45, weight 2/4;
    # [0.95, 0.95] with labels [1, 1] -> |1 - 0.95| = 0.05, weight 2/4
    assert expected_calibration_error(np.array([0.05, 0.05, 0.95, 0.95]), np.array([0, 1, 1, 1])) == pytest.approx(0.25)
    assert expected_calibration_error(np.array([0.0, 1.0]), np.array([0, 1])) == pytest.approx(0.0)


def test_judge_audit_on_a_hand_table() -> None:
    # White female: 3 of 4 positives found, 0 of 2 negatives flagged; Black male: 1 of 4, 1 of 2
    rows = []
    for sex, race, hits, alarms in (("female", "White", 3, 0), ("male", "Black", 1, 1)):
        rows += [{"sex": sex, "race": race, "y:Effusion": 1.0, "p:Effusion": 0.9 if k < hits else 0.1} for k in range(4)]
        rows += [{"sex": sex, "race": race, "y:Effusion": 0.0, "p:Effusion": 0.9 if k < alarms else 0.1} for k in range(2)]
    rows.append({"sex": "", "race": "", "y:Effusion": np.nan, "p:Effusion": 0.7})  # uncertain label: left out
    audit = judge_audit(pd.DataFrame(rows), ("Effusion",), 0.05, max_gap=0.1, max_ece=0.1)[0]
    assert audit["labelled"] == 12 and audit["positives"] == 8
    assert audit["tpr"]["count"] == 4 and audit["tpr"]["n"] == 8 and audit["fpr"]["rate"] == 0.25
    assert {g["subgroup"]: g["rate"] for g in audit["tpr_groups"]} == {"White female": 0.75, "Black male": 0.25}
    assert audit["tpr_gap"]["value"] == 0.5
    assert audit["confusion"] == {"tp": 4, "fn": 4, "tn": 3, "fp": 1}
    # ECE by hand: bin 0.9 holds 5 images (4 positive): |0.8 - 0.9| x 5/12; bin 0.1 holds 7 (4
    # positive): |4/7 - 0.1| x 7/12; total 3.8 / 12
    assert audit["ece"] == pytest.approx(3.8 / 12, abs=1e-6)
    assert any("expected calibration error" in w for w in audit["warnings"])  # 0.9 vs 0.8 hits etc.


# ------------------------------------------------------------------------- phantom known answers


class CopyingGenerator:
    """The faithful phantom, except that a seeded 10% of images are a reference image, verbatim."""

    name = "phantom-copying"
    cache_images = False
    settings: dict = {}
    fingerprint = "phantom-copying"
    size = 224

    def __init__(self, reference_images: np.ndarray, rate: float = 0.1) -> None:
        self.base = PhantomGenerator("phantom")
        self.reference_images = reference_images
        self.rate = rate

    def copies(self, seed: int) -> int | None:
        rng = np.random.default_rng([seed, 99])
        return int(rng.integers(len(self.reference_images))) if rng.random() < self.rate else None

    def generate(self, prompts, seeds) -> np.ndarray:
        out = self.base.generate(prompts, seeds)
        for k, seed in enumerate(seeds):
            j = self.copies(int(seed))
            if j is not None:
                out[k] = self.reference_images[j]
        return out


@pytest.fixture(scope="module")
def judge() -> PhantomJudge:
    return PhantomJudge()


@pytest.fixture(scope="module")
def reference():
    return load_reference("phantom:64", seed=0, findings=FINDINGS)


def _comparison(generator, judge, reference) -> Comparison:
    return Comparison(SamplePool(generator, judge, 1, batch_size=64), reference)


@pytest.fixture(scope="module")
def faithful(judge, reference) -> Comparison:
    """The faithful phantom against its own world (shared: features and scores are memoised)."""
    return _comparison(PhantomGenerator("phantom"), judge, reference)


def test_memorization_finds_the_planted_copies(judge, reference, faithful) -> None:
    n = 32  # 128 images, about 13 copies
    generator = CopyingGenerator(reference.images(), rate=0.1)
    planted = sum(generator.copies(derive_seed(1, c.key, i)) is not None for c in CELLS for i in range(n))
    check = MemorizationCheck(name="nn", samples=n, threshold=0.05, direction="max", similarity=0.995, population=CELLS)
    comparison = _comparison(generator, judge, reference)
    result = check.evaluate(comparison.versus(check, n), 0.95)
    count = result.groups[0].count
    assert count == planted  # every copy found, no false match among independent phantoms
    assert result.estimate.low <= 0.10 <= result.estimate.high
    assert 0.05 < result.estimate.value < 0.16 and result.verdict == "fail"
    clean = check.evaluate(faithful.versus(check, n), 0.95)
    assert clean.groups[0].count == 0 and clean.verdict == "pass"


def test_frechet_distance_sees_fainter_findings(judge, reference, faithful) -> None:
    """Findings drawn at half severity: the distance doubles, its excess over the
    same-distribution level is far above 0 and the permutation test rejects "one distribution";
    the faithful phantom against its own world: excess about 0 inside its interval, no rejection."""
    results = {}
    faint = _comparison(PhantomGenerator("faint", faults=replace(PRESETS["phantom"], severity=(0.4, 0.6))), judge, reference)
    for name, comparison in (("same", faithful), ("faint", faint)):
        check = FrechetCheck(name="fd", samples=N, threshold=1000.0, direction="max", population=CELLS, bootstrap=100, statistic="excess")
        versus = comparison.versus(check, N)
        result = check.evaluate(versus, 0.95)
        (value, _, floor, p_same), = versus.memo.values()
        results[name] = (value, floor, p_same, result.estimate)
    value, floor, p_same, excess = results["same"]
    assert excess.low <= 0.0 <= excess.high and p_same > 0.05
    assert abs(value - floor) < 0.2 * floor
    faint_value, faint_floor, faint_p, faint_excess = results["faint"]
    assert faint_value > 1.5 * value and faint_p < 0.05
    assert faint_excess.low > 0.0 and faint_excess.value > 0.5 * faint_floor
    # the reference against itself: zero, inside its interval
    ref_features = faithful.reference_features()
    itself = frechet_bootstrap(ref_features, ref_features, 0.05, reps=50)
    assert itself.value < 1e-6 and itself.low == 0.0


def test_permutation_floor_by_hand() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(40, 5)), rng.normal(size=(30, 5))
    floor, p = frechet_permutation(a, b, reps=99)
    assert 0.0 < floor < 1.0 and 0.05 < p <= 1.0  # one distribution: typical of its permutations
    floor_shifted, p_shifted = frechet_permutation(a, b + 2.0, reps=99)
    assert p_shifted == pytest.approx(1 / 100) and frechet_distance(a, b + 2.0) > 15.0


def test_noisier_images_lower_same_prompt_ms_ssim(judge, reference, faithful) -> None:
    """A variant planted to draw 20% noisier images (same seeds, so same scenes): every pair of
    images of one prompt is less similar. (The judge's features barely see this noise: its
    Frechet distance moves by about 1%, see the README.)"""
    check = DiversityCheck(name="msssim", samples=N, threshold=0.9, direction="max", finding="Effusion", population=CELLS)
    clean = faithful
    noisy_faults = replace(PRESETS["phantom"], noise=tuple(1.2 * x for x in PRESETS["phantom"].noise))
    noisy = _comparison(PhantomGenerator("noisy", faults=noisy_faults), judge, reference)
    a, _ = clean.msssim(check.cells(), N)
    b, _ = noisy.msssim(check.cells(), N)
    assert len(a) == len(b) == len(check.cells()) * N // 2
    drop = a["msssim"].to_numpy() - b["msssim"].to_numpy()
    assert (drop > 0).mean() >= 0.9
    result = check.evaluate(clean.versus(check, N), 0.95)
    assert result.verdict == "pass" and 0.4 < result.estimate.value < 0.85


class SameImageGenerator(PhantomGenerator):
    """Ignores the seed: one image per prompt (no diversity at all)."""

    def generate(self, prompts, seeds):
        return super().generate(prompts, [0] * len(seeds))


def test_a_generator_that_ignores_its_seed_fails_diversity(judge, reference) -> None:
    check = DiversityCheck(name="msssim", samples=8, threshold=0.9, direction="max", finding="Effusion", population=CELLS)
    result = check.evaluate(_comparison(SameImageGenerator("phantom"), judge, reference).versus(check, 8), 0.95)
    assert result.estimate.value == pytest.approx(1.0) and result.verdict == "fail"


def test_versus_real_on_the_biased_phantom(judge, reference, faithful) -> None:
    """phantom-biased plants COVID-19 in 42% of images and ghosts (judge uncertainty); the faithful
    phantom reference has neither."""
    from pytest_synthcxr.checks.reference import VersusRealCheck

    hallucination = VersusRealCheck(name="h", samples=N, threshold=0.1, direction="max", metric="hallucination", finding="COVID-19", population=CELLS)
    uncertainty = VersusRealCheck(name="u", samples=N, threshold=0.5, direction="max", metric="uncertainty", finding="Effusion", population=CELLS)
    biased = _comparison(PhantomGenerator("phantom-biased"), judge, reference)
    h = hallucination.evaluate(biased.versus(hallucination, N), 0.95)
    assert h.verdict == "fail" and h.estimate.low <= 0.42 <= h.estimate.high  # no prompt asks for COVID-19
    assert hallucination.evaluate(faithful.versus(hallucination, N), 0.95).verdict == "pass"
    u_biased = uncertainty.evaluate(biased.versus(uncertainty, N), 0.95).estimate
    u_faithful = uncertainty.evaluate(faithful.versus(uncertainty, N), 0.95).estimate
    assert u_faithful.low <= 0.0 <= u_faithful.high  # same world: no difference
    assert u_biased.value > u_faithful.high  # ghosts: more entropy on synthetic


def test_judge_audit_of_the_phantom_judge_on_its_own_world(faithful) -> None:
    scores = faithful.reference_scores()
    audit = judge_audit(scores, FINDINGS, 0.05)[0]
    assert audit["tpr"]["rate"] >= 0.9 and audit["fpr"]["rate"] <= 0.1
    assert audit["ece"] < 0.15
    assert {g["subgroup"] for g in audit["tpr_groups"]} == {"White female", "White male", "Black female", "Black male", "Asian female", "Asian male", "Hispanic female", "Hispanic male"}


def test_versus_bundle_rows_line_up(judge, reference) -> None:
    comparison = _comparison(PhantomGenerator("phantom"), judge, reference)  # fresh: nothing memoised yet
    check = FrechetCheck(name="fd", samples=4, threshold=1.0, direction="max", population=CELLS)
    versus = comparison.versus(check, 4)
    assert isinstance(versus, Versus)
    assert versus.syn_features.shape[0] == len(versus.synthetic) == 4 * len(CELLS)
    assert versus.ref_features.shape[0] == len(versus.reference) == len(reference)
    # features of sample (cell, i) do not depend on which request computed them
    again = comparison.synthetic_features(CELLS[:1], 2)[0]
    assert np.array_equal(again, versus.syn_features[:2])


def test_frechet_check_reuses_its_bootstrap_draws_across_alphas() -> None:
    from pytest_synthcxr.stats.sequential import fail_p_value

    rng = np.random.default_rng(3)
    cells = (Cell("Effusion", (), False),)
    synthetic = pd.DataFrame({"cell": [cells[0].key] * 30, "valid": [True] * 29 + [False]})
    versus = Versus(synthetic, pd.DataFrame({"sex": ["female"] * 40}), rng.normal(size=(30, 8)) + 1.0, rng.normal(size=(40, 8)))
    check = FrechetCheck(name="fd", samples=30, threshold=1.0, direction="max", population=cells, bootstrap=60)
    wide = check.measure(versus, 0.01).estimate
    narrow = check.measure(versus, 0.2).estimate
    assert len(versus.memo) == 1  # one set of draws for both levels
    assert wide.value == narrow.value and wide.low <= narrow.low and narrow.high <= wide.high
    assert wide.n == 29 + 40  # the invalid row is left out
    # a shift of 1 in 8 dimensions: distance about 8, far above the bound: fails, with a small p
    assert check.evaluate(versus, 0.95).verdict == "fail"
    assert fail_p_value(check, versus, 0.95, "fixed", 1) < 0.05 and len(versus.memo) == 1


def test_judge_concerns_look_only_at_the_subgroups_judged() -> None:
    from pytest_synthcxr.checks.reference import judge_concerns

    rows = []
    for sex, race, hits in (("female", "White", 20), ("female", "Black", 20), ("male", "White", 20), ("male", "Black", 4)):
        rows += [{"sex": sex, "race": race, "y:Effusion": 1.0, "p:Effusion": 0.99 if k < hits else 0.01} for k in range(20)]
        rows += [{"sex": sex, "race": race, "y:Effusion": 0.0, "p:Effusion": 0.01} for _ in range(20)]
    table = pd.DataFrame(rows)
    female = ((("sex", "female"), ("race", "White")), (("sex", "female"), ("race", "Black")))
    assert judge_concerns(table, "Effusion", female, max_ece=1.0) == []  # the judge is fine for women
    everyone = judge_concerns(table, "Effusion", (), max_ece=1.0)
    assert len(everyone) == 1 and "TPR for Effusion differs" in everyone[0] and "Black male 4/20" in everyone[0]
    by_sex = judge_concerns(table, "Effusion", ((("sex", "female"),), (("sex", "male"),)), max_ece=1.0)
    assert by_sex and "male 24/40" in by_sex[0]
    assert judge_concerns(table, "Cardiomegaly") == []  # no such output: nothing to say


def test_per_subgroup_distance_finds_the_one_subgroup_with_a_planted_fault(judge) -> None:
    """A phantom that leaves out every requested finding when the prompt names Hispanic women (and
    is faithful otherwise): only that sex x race cell's distance rises above its same-distribution
    level."""
    reference = load_reference("phantom:192", seed=0, findings=FINDINGS)  # 24 images per subgroup
    faults = replace(PRESETS["phantom"], omission_named={"female/Hispanic": 1.0})
    comparison = _comparison(PhantomGenerator("omits-hispanic-women", faults=faults), judge, reference)
    outcome = {}
    for sex, race in (("female", "Hispanic"), ("male", "White"), ("female", "White")):
        subgroup = (("sex", sex), ("race", race))
        cells = tuple(Cell(f, subgroup, True) for f in (*FINDINGS, None))
        check = FrechetCheck(name=f"{sex}-{race}", samples=24, threshold=1e6, direction="max", population=cells, scope="subgroup", subgroup=subgroup, bootstrap=60, statistic="excess")
        versus = comparison.versus(check, 24)
        estimate = check.evaluate(versus, 0.95).estimate
        (_, _, floor, p_same), = versus.memo.values()
        outcome[(sex, race)] = (estimate, p_same, floor)
    faulty, p_faulty, floor = outcome[("female", "Hispanic")]
    assert faulty.low > 0.0 and faulty.value > floor and p_faulty < 0.05
    for key in (("male", "White"), ("female", "White")):
        estimate, p_same, _ = outcome[key]
        assert estimate.low <= 0.0 <= estimate.high and p_same > 0.05


def test_stratified_mean_difference() -> None:
    from pytest_synthcxr.checks.reference import stratified_mean_difference

    x, y = np.array([0.1, 0.2, 0.4, 0.3, 0.25]), np.array([0.05, 0.1, 0.0, 0.12])
    one = stratified_mean_difference([(1.0, x, y)], 0.05)
    welch = mean_difference(x, y, 0.05)
    assert (one.value, one.low, one.high) == pytest.approx((welch.value, welch.low, welch.high))
    # two strata with equal within-stratum means on both sides: no difference, whatever the mix
    rng = np.random.default_rng(5)
    high_s, low_s = rng.normal(0.6, 0.05, 30), rng.normal(0.1, 0.05, 170)
    high_r, low_r = rng.normal(0.6, 0.05, 120), rng.normal(0.1, 0.05, 80)  # real: other prevalence
    mixed = mean_difference(np.r_[high_s, low_s], np.r_[high_r, low_r], 0.05)
    assert mixed.high < -0.1  # the plain difference mistakes prevalence for uncertainty
    strat = stratified_mean_difference([(0.15, high_s, high_r), (0.85, low_s, low_r)], 0.05)
    assert strat.low <= 0.0 <= strat.high and strat.high - strat.low < 0.05
    # by hand: weights 0.5/0.5, variances known
    a1, b1, a2, b2 = np.array([1.0, 3.0]), np.array([0.0, 2.0]), np.array([2.0, 4.0, 6.0]), np.array([1.0, 1.0, 4.0])
    e = stratified_mean_difference([(0.5, a1, b1), (0.5, a2, b2)], 0.05)
    assert e.value == pytest.approx(0.5 * 1.0 + 0.5 * 2.0)
    v = [0.25 * 2 / 2, 0.25 * 2 / 2, 0.25 * 4 / 3, 0.25 * 3 / 3]
    df = sum(v) ** 2 / (v[0] ** 2 / 1 + v[1] ** 2 / 1 + v[2] ** 2 / 2 + v[3] ** 2 / 2)
    half = scipy_stats.t.ppf(0.975, df) * np.sqrt(sum(v))
    assert (e.low, e.high) == pytest.approx((1.5 - half, 1.5 + half))
