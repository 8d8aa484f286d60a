"""Fidelity, diversity and memorization: synthetic images against a reference set, in the judge's
feature space (Frechet distance, nearest-neighbour cosine similarity) and in pixels (MS-SSIM
between images of the same prompt). Pure functions of a :class:`~.reference.Versus` bundle:
features and MS-SSIM values are computed before (no torch here).

Frechet distance: ||mu1 - mu2||^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2). For centred feature rows
X (n1 x d) and Y (n2 x d), the nonzero eigenvalues of S1 S2 are the squared singular values of
X Y^T / sqrt((n1 - 1)(n2 - 1)), so tr sqrt(S1 S2) is that matrix's nuclear norm (numpy's SVD):
exact, and fast enough to bootstrap. With fewer images than dimensions (the usual case: 1024-d
xrv features) X Y^T is small; otherwise the same singular values come from R_X R_Y^T, the
product of the two QR factors (d x d). Tests check both against scipy.linalg.sqrtm on the d x d
covariance product (clean-fid's computation), which is also about twice as slow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..sampling.cells import Cell, subgroup_label
from ..stats.intervals import Estimate, IntervalKind, mean_bounded, proportion
from .base import Check, GroupRate, Measured

Scope = Literal["overall", "finding", "subgroup"]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature rows a (n1, d) and b (n2, d)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    mu = a.mean(axis=0) - b.mean(axis=0)
    ca, cb = a - a.mean(axis=0), b - b.mean(axis=0)
    na, nb = len(a) - 1, len(b) - 1
    trace_a, trace_b = float((ca * ca).sum()) / na, float((cb * cb).sum()) / nb
    if min(len(a), len(b)) <= a.shape[1]:
        cross = float(np.linalg.norm(ca @ cb.T, ord="nuc"))
    else:  # more images than dimensions: the same singular values from the two QR factors (d x d)
        cross = float(np.linalg.norm(np.linalg.qr(ca, mode="r") @ np.linalg.qr(cb, mode="r").T, ord="nuc"))
    cross /= np.sqrt(na * nb)
    return max(0.0, float(mu @ mu) + trace_a + trace_b - 2.0 * cross)


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr sqrt(S1 S2) with scipy.linalg.sqrtm (clean-fid's way, with its offset for singular products)."""
    from scipy import linalg

    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    return float(np.real(np.trace(covmean)))


def frechet_reference(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook computation (scipy.linalg.sqrtm on d x d covariances), for tests and small d."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu = a.mean(axis=0) - b.mean(axis=0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(mu @ mu + np.trace(s1) + np.trace(s2) - 2.0 * _trace_sqrt_product(s1, s2))


def frechet_draws(a: np.ndarray, b: np.ndarray, reps: int = 200, seed: int = 0) -> np.ndarray:
    """Frechet distances of `reps` bootstrap resamples (rows of a and b resampled independently)."""
    rng = np.random.default_rng(seed)
    return np.array([frechet_distance(a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))]) for _ in range(reps)])


def frechet_interval(value: float, draws: np.ndarray, alpha: float, n: int) -> Estimate:
    """The bias-shifted percentile interval of a Frechet distance from its bootstrap draws.

    A resample repeats rows, which alone raises the distance (a sample with duplicates has a
    smaller spread than its source): the bootstrap distances sit above the estimate by that bias.
    The interval is the draws' alpha/2 and 1 - alpha/2 quantiles shifted down by their median
    minus the estimate, clipped at 0. The plug-in estimate itself is biased upward at small n too
    (two samples of one distribution are at a positive distance), as in every FID: compare with a
    real-vs-real value at the same sample sizes.
    """
    if not np.isfinite(value):
        return Estimate(value, float("nan"), float("nan"), n)
    shift = float(np.median(draws)) - value
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2]) - shift
    return Estimate(value, float(max(0.0, min(low, value))), float(max(high, value)), n)


def frechet_bootstrap(a: np.ndarray, b: np.ndarray, alpha: float, reps: int = 200, seed: int = 0) -> Estimate:
    """Frechet distance with its bias-shifted percentile bootstrap interval (see frechet_interval)."""
    value = frechet_distance(a, b)
    draws = frechet_draws(a, b, reps, seed) if np.isfinite(value) else np.empty(0)
    return frechet_interval(value, draws, alpha, int(len(a) + len(b)))


def frechet_permutation(a: np.ndarray, b: np.ndarray, reps: int = 200, seed: int = 1) -> tuple[float, float]:
    """The same-distribution level of the Frechet distance at these sample sizes, and a
    permutation p-value: rows of a and b pooled and split at random into sets of the same sizes
    `reps` times. Returns (mean permuted distance, (1 + #{permuted >= observed}) / (1 + reps)).

    Under "synthetic and reference come from one distribution" the observed distance is one more
    draw of the permuted ones, so the p-value is exact; the mean is the distance two samples of
    one distribution have at these sizes (the plug-in estimate's finite-sample floor). When the
    distributions differ the pooled splits mix them, so the floor is, if anything, too high: the
    excess over it understates the difference, never inflates it.
    """
    observed = frechet_distance(a, b)
    pooled = np.concatenate([np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)])
    rng = np.random.default_rng(seed)
    null = np.empty(reps)
    for k in range(reps):
        order = rng.permutation(len(pooled))
        null[k] = frechet_distance(pooled[order[: len(a)]], pooled[order[len(a) :]])
    return float(null.mean()), float((1 + (null >= observed).sum()) / (1 + reps))


def nearest_cosine(queries: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query row: the largest cosine similarity to any pool row, and that row's index."""
    q = np.asarray(queries, dtype=np.float64)
    p = np.asarray(pool, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    if len(q) == 0 or len(p) == 0:
        return np.zeros(len(q)), np.zeros(len(q), dtype=int)
    sims = q @ p.T
    index = sims.argmax(axis=1)
    return np.clip(sims[np.arange(len(q)), index], -1.0, 1.0), index


def _valid(versus: Any, cells: tuple[Cell, ...]) -> np.ndarray:
    table = versus.synthetic
    return (table["cell"].isin({c.key for c in cells}) & table["valid"]).to_numpy()


@dataclass(frozen=True)
class FrechetCheck(Check):
    """Frechet distance of judge features, synthetic vs reference, over one scope: all images, one
    finding (synthetic: prompts asking for it; reference: images labelled with it), or one sex x
    race subgroup (synthetic: prompts naming it; reference: images of it)."""

    family = "fidelity"
    needs_reference = True
    needs_features = True
    scope: Scope = "overall"
    finding: str = ""
    subgroup: tuple[tuple[str, str], ...] = ()
    population: tuple[Cell, ...] = ()
    bootstrap: int = 200
    #: "fd": the plug-in distance; "excess": minus its same-distribution level at these sample
    #: sizes (the mean over permutations of the pooled rows), so 0 means indistinguishable
    statistic: Literal["fd", "excess"] = "fd"

    @property
    def quantity(self) -> str:
        where = {"overall": "all images", "finding": self.finding, "subgroup": subgroup_label(self.subgroup)}[self.scope]
        what = "Frechet distance" if self.statistic == "fd" else "Frechet distance above its same-distribution level"
        return f"{what} of judge features, synthetic vs reference ({where})"

    def cells(self) -> tuple[Cell, ...]:
        if self.scope == "finding":
            return tuple(c for c in self.population if c.finding == self.finding)
        return self.population

    def reference_rows(self, versus: Any) -> np.ndarray:
        ref = versus.reference
        if self.scope == "finding":
            return (ref[f"y:{self.finding}"] == 1.0).to_numpy()
        if self.scope == "subgroup":
            want = dict(self.subgroup)
            return np.logical_and.reduce([(ref[k] == v).to_numpy() for k, v in want.items()])
        return np.ones(len(ref), dtype=bool)

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        versus = table
        a = versus.syn_features[_valid(versus, self.cells())]
        b = versus.ref_features[self.reference_rows(versus)]
        if len(a) < 2 or len(b) < 2:
            raise ValueError(f"{self.nodename}: needs at least 2 synthetic and 2 reference images (has {len(a)} and {len(b)})")
        key = (self.nodename, len(a), len(b))
        if key not in versus.memo:  # computed once, reused at every alpha (the fail-side p-value bisects)
            value = frechet_distance(a, b)
            versus.memo[key] = (value, frechet_draws(a, b, self.bootstrap), *frechet_permutation(a, b, self.bootstrap))
        value, draws, floor, p_same = versus.memo[key]
        estimate = frechet_interval(value, draws, alpha / looks, int(len(a) + len(b)))
        if self.statistic == "excess":
            estimate = Estimate(value - floor, estimate.low - floor, estimate.high - floor, estimate.n)
        detail = (
            f"FD {value:.4g}, same-distribution level {floor:.4g} (permutation p {p_same:.3g}); "
            f"{len(a)} synthetic, {len(b)} reference images; bootstrap {self.bootstrap}"
        )
        return Measured(estimate, detail)


@dataclass(frozen=True)
class DiversityCheck(Check):
    """Mean MS-SSIM between disjoint pairs of images from the same prompt (1: identical images;
    lower is more diverse), with a Student t interval."""

    family = "diversity"
    needs_reference = False
    needs_msssim = True
    finding: str = ""
    population: tuple[Cell, ...] = ()

    @property
    def quantity(self) -> str:
        return f"mean MS-SSIM between images of the same prompt ({self.finding or 'normal'})"

    def cells(self) -> tuple[Cell, ...]:
        return tuple(c for c in self.population if (c.finding or "") == self.finding)

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        pairs = table.msssim
        keys = {c.key for c in self.cells()}
        values = pairs.loc[pairs["cell"].isin(keys), "msssim"].to_numpy(dtype=float)
        if values.size < 2:
            raise ValueError(f"{self.nodename}: needs at least 2 image pairs (has {values.size})")
        estimate = mean_bounded(values, alpha / looks, (0.0, 1.0))
        return Measured(estimate, f"{values.size} pairs; most similar pair {values.max():.3f}")


@dataclass(frozen=True)
class MemorizationCheck(Check):
    """Share of synthetic images whose nearest reference image (cosine similarity of judge
    features) reaches `similarity`: likely copies of a training/reference image."""

    family = "memorization"
    needs_reference = True
    needs_features = True
    similarity: float = 0.995
    population: tuple[Cell, ...] = ()

    @property
    def quantity(self) -> str:
        return f"share of synthetic images with a reference image at cosine similarity >= {self.similarity:g}"

    def cells(self) -> tuple[Cell, ...]:
        return self.population

    def measure(self, table: Any, alpha: float, interval: IntervalKind = "fixed", looks: int = 1) -> Measured:
        versus = table
        a = versus.syn_features[_valid(versus, self.cells())]
        sims, _ = nearest_cosine(a, versus.ref_features)
        count, n = int((sims >= self.similarity).sum()), int(len(sims))
        estimate = proportion(count, n, alpha, interval, self.threshold)
        closest = float(sims.max()) if n else float("nan")
        group = GroupRate("copies", count, n, estimate.low, estimate.high)
        return Measured(estimate, f"{count} of {n} images; closest {closest:.4f}; median {float(np.median(sims)) if n else float('nan'):.4f}", (group,))


__all__ = ["DiversityCheck", "FrechetCheck", "MemorizationCheck", "frechet_bootstrap", "frechet_distance", "nearest_cosine"]
