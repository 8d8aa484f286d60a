"""A procedural renderer of crude chest-radiograph-like images (numpy only).

The image is a PA view: the patient's left is on the image right. Values are float32 in [0, 1],
bright = dense (bone, fluid, soft tissue), dark = air (lungs, outside the body).

Every random number comes from the generator passed to :func:`render`, in a fixed order that does
not depend on which findings are present: the anatomy, the textures, the noise and each finding draw
from their own child generator, so two scenes that differ only in one finding (or only in sex or
age) share every random draw (anatomical jitter, textures, noise), which is what a counterfactual
pair needs: adding a left effusion leaves the image-left half bit-for-bit unchanged.

Speed (about 1.5-2.5 ms per 224 x 224 image on one core): everything is vectorised, drawn at half
resolution and interpolated up; coordinate grids and fixed texture banks (vascular markings, white
noise) are built once per image size; small structures are drawn inside their bounding boxes only;
only small matrix products (OpenBLAS threads larger ones, and parallel renderers then oversubscribe
the cores).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..spec.vocabulary import FINDINGS, LATERAL_FINDINGS, LATERALITIES, PROBES, SEXES

__all__ = ["NAMES", "RENDERER_VERSION", "Scene", "random_scene", "render", "resolve_laterality"]

#: Every name a scene may carry, in the fixed order the renderer draws their parameters.
NAMES: tuple[str, ...] = FINDINGS + PROBES
#: Changes whenever the same (scene, seed) would render different pixels.
RENDERER_VERSION = "phantom-render-1"

_F32 = np.float32
#: image-x direction of the patient's side: patient's right = image left (-1), left = image right (+1)
_SIDES: dict[str, tuple[int, ...]] = {"right": (-1,), "left": (1,), "bilateral": (-1, 1)}
_BANK_SEED = 0x5EED_C0DE  # the fixed texture banks are part of the renderer, not of an image's draws
_BANK_SIZE = 24
_PAD = 3  # (internal) pixels of slack around each vessel texture, for per-image shifts


@dataclass(frozen=True)
class Scene:
    """What one image shows."""

    #: finding or probe name -> laterality "left"/"right"/"bilateral", or None (renderer picks, seeded)
    findings: Mapping[str, str | None] = field(default_factory=dict)
    #: "female" | "male": body habitus (shoulder width; breast shadows over the lower lung fields)
    sex: str = "female"
    #: older: lower bone contrast, larger aortic knob, wider mediastinum
    age: int = 50
    #: scales every drawn finding (0.3 faint, 1.0 typical, 1.3 marked; 0 draws nothing): sizes and
    #: contrast in proportion (thin lines with its square root); one value, or one per finding
    severity: float | Mapping[str, float] = 1.0
    #: standard deviation of the additive image noise (plus a little low-frequency mottle)
    noise: float = 0.02


# ----------------------------------------------------------------------------- helpers


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1]: u as a row (1, size), v as a column (size, 1)."""
    c = ((np.arange(size, dtype=np.float64) + 0.5) / size).astype(_F32)
    u, v = c[None, :].copy(), c[:, None].copy()
    u.setflags(write=False)
    v.setflags(write=False)
    return u, v


@lru_cache(maxsize=32)
def _interp(n: int, size: int) -> np.ndarray:
    """(size, n) matrix spreading n control values smoothly (cubic B-spline weights) over size pixels."""
    x = (np.arange(size) + 0.5) / size * (n - 1)
    d = np.abs(x[:, None] - np.arange(n)[None, :])
    w = np.where(d < 1, 2 / 3 - d**2 + d**3 / 2, np.where(d < 2, (2 - d) ** 3 / 6, 0.0))
    w /= w.sum(axis=1, keepdims=True)
    out = w.astype(_F32)
    out.setflags(write=False)
    return out


def _field(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Smooth random field (size, size) of roughly unit variance, from an n x n grid of normals."""
    m = _interp(n, size)
    g = rng.standard_normal((n, n), dtype=_F32)
    return (m @ g @ m.T) * _F32(1.6)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] with a soft (cubic) transition."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _box(size: int, u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice]:
    """Row and column slices of the pixels whose centres lie roughly inside [u0, u1] x [v0, v1]."""
    c0 = min(size, max(0, math.floor(u0 * size) - 1))
    c1 = min(size, max(c0, math.ceil(u1 * size) + 1))
    r0 = min(size, max(0, math.floor(v0 * size) - 1))
    r1 = min(size, max(r0, math.ceil(v1 * size) + 1))
    return slice(r0, r1), slice(c0, c1)


def _segment(u: np.ndarray, v: np.ndarray, p0: tuple[float, float], p1: tuple[float, float]) -> np.ndarray:
    """Distance from each (u, v) to the segment p0-p1 (u a row, v a column)."""
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    length2 = du * du + dv * dv + 1e-12
    t = np.clip(((u - p0[0]) * (du / length2)) + ((v - p0[1]) * (dv / length2)), 0.0, 1.0)
    x, y = u - p0[0] - t * du, v - p0[1] - t * dv
    return np.sqrt(x * x + y * y)


@lru_cache(maxsize=4)
def _noise_bank(size: int) -> np.ndarray:
    """A fixed (2 size, 2 size) field of standard normals; each image reads a random window of it.

    (Drawing 50k fresh normals per image would cost more than the whole rest of the rendering.)"""
    bank = np.random.default_rng([_BANK_SEED, size, 1]).standard_normal((2 * size, 2 * size), dtype=_F32)
    bank.setflags(write=False)
    return bank


@lru_cache(maxsize=4)
def _vessel_bank(n: int) -> np.ndarray:
    """Fixed vascular-marking textures (K, n + 2 pad, n + 2 pad), values about [0, 1].

    Wavy lines radiate from each hilum and branch (finer generations start further out), thin and
    fade towards the periphery, over a faint reticular background; a bright hilar shadow sits at
    the centre. Each image picks one texture and shifts it by a few pixels.
    """
    rng = np.random.default_rng([_BANK_SEED, n, 2])
    m = n + 2 * _PAD
    c = (np.arange(m) - _PAD + 0.5) / n
    u, v = c[None, :], c[:, None]
    bank = np.zeros((_BANK_SIZE, m, m), dtype=_F32)
    px = 1.0 / n
    for k in range(_BANK_SIZE):
        out = np.zeros((m, m))
        wobble = _field(rng, 9, m).astype(np.float64)
        reticular = _field(rng, max(8, n // 4), m).astype(np.float64)
        for s in (-1, 1):
            dx, dy = (u - (0.5 + s * 0.085)) * s, v - 0.47
            r = np.sqrt(dx * dx + dy * dy) + 1e-4
            theta = np.arctan2(dy, dx)
            lines = np.zeros((m, m))
            for g, (count, r0, weight) in enumerate(((9, 0.03, 1.0), (19, 0.08, 0.8), (39, 0.14, 0.65))):
                phase = rng.uniform(0, 2 * np.pi)
                bend = rng.uniform(3.0, 8.0) * (1 if rng.random() < 0.5 else -1)
                c_ = np.cos(count * theta + phase + wobble * (1.0 + 0.5 * g) + bend * r)
                half_width = (1.0 - 0.2 * g) * px * np.exp(-r / 0.25)  # vessels taper outwards
                ang = np.clip(count * half_width / r, 0.0, 1.0)  # angular half width in phase units
                ridge = np.clip(1.0 - (1.0 - c_) / (ang * ang / 2 + 1e-9), 0.0, 1.0)
                ridge *= np.clip((r - r0) / 0.04, 0.0, 1.0) * weight
                lines = np.maximum(lines, ridge)
            side = (u - 0.5) * s > 0
            mesh = np.exp(-((reticular / 0.25) ** 2)) * 0.25
            out += side * ((lines + mesh) * np.exp(-r / 0.3) + 0.6 * np.exp(-((r / 0.05) ** 2)))
        bank[k] = out
    bank.setflags(write=False)
    return bank


def _upsample2(a: np.ndarray) -> np.ndarray:
    """Bilinear x2 upsampling (pixel centres aligned, edges clamped) without BLAS.

    (A matrix product would be shorter, but OpenBLAS threads it, and parallel renderers then
    oversubscribe the cores: several times slower.)
    """

    def rows(x: np.ndarray) -> np.ndarray:
        near = x * _F32(0.75)
        out = np.empty((2 * x.shape[0],) + x.shape[1:], dtype=_F32)
        out[0::2] = near
        out[0::2][1:] += x[:-1] * _F32(0.25)
        out[0] += x[0] * _F32(0.25)
        out[1::2] = near
        out[1::2][:-1] += x[1:] * _F32(0.25)
        out[-1] += x[-1] * _F32(0.25)
        return out

    return rows(rows(a).T).T


def resolve_laterality(name: str, laterality: str | None, rng: np.random.Generator) -> str | None:
    """The side a finding is drawn on: as given, else drawn from `rng` (always exactly one draw).

    Findings that are not lateral (cardiomegaly, edema, the COVID-19 probe) have no side: None.
    """
    x = rng.random()
    if name not in LATERAL_FINDINGS:
        return None
    if laterality is not None:
        return laterality
    if name == "Effusion":
        return "right" if x < 0.4 else "left" if x < 0.8 else "bilateral"
    return "right" if x < 0.5 else "left"


def random_scene(
    rng: np.random.Generator,
    *,
    p_finding: float = 0.3,
    p_probe: float = 0.2,
    severity: tuple[float, float] = (0.3, 1.3),
    noise: tuple[float, float] = (0.0, 0.08),
    age: tuple[int, int] = (25, 85),
) -> Scene:
    """A random scene: each finding present with `p_finding`, each probe with `p_probe`, independently.

    Lateral findings get "right" / "left" / "bilateral" with probabilities 0.4 / 0.4 / 0.2; sex is
    a fair coin; age, severity and noise are uniform. Always the same number of draws, in order.
    """
    u_present = rng.random(len(NAMES))
    u_side = rng.random(len(NAMES))
    u_sex = rng.random()
    age_ = int(rng.integers(age[0], age[1] + 1))
    severity_ = float(rng.uniform(*severity))
    noise_ = float(rng.uniform(*noise))
    findings: dict[str, str | None] = {}
    for i, name in enumerate(NAMES):
        if u_present[i] < (p_probe if name in PROBES else p_finding):
            side = None
            if name in LATERAL_FINDINGS:
                side = "right" if u_side[i] < 0.4 else "left" if u_side[i] < 0.8 else "bilateral"
            findings[name] = side
    return Scene(findings=findings, sex=SEXES[int(u_sex < 0.5)], age=age_, severity=severity_, noise=noise_)


def _validate(scene: Scene) -> None:
    for name, side in scene.findings.items():
        if name not in NAMES:
            raise ValueError(f"unknown finding {name!r}; known: {', '.join(NAMES)}")
        if side is not None and side not in LATERALITIES:
            raise ValueError(f"laterality of {name} must be one of {LATERALITIES} or None, not {side!r}")
    if scene.sex not in SEXES:
        raise ValueError(f"sex must be one of {SEXES}, not {scene.sex!r}")
    values = scene.severity.values() if isinstance(scene.severity, Mapping) else [scene.severity]
    if any(not math.isfinite(float(v)) or float(v) < 0 for v in values):
        raise ValueError("severity must be a finite number >= 0 (or a mapping of finding to one)")
    if not math.isfinite(scene.noise) or scene.noise < 0:
        raise ValueError("noise must be a finite number >= 0")


# ----------------------------------------------------------------------------- rendering


@dataclass
class _Lung:
    s: int  # -1 image left (patient's right), +1 image right (patient's left)
    rs: slice
    cs: slice
    centre: float  # u of the lung's centre line
    half: float  # half width
    base: float  # v of the costophrenic angle
    cv: float  # v of the ellipse centre
    bv: float  # vertical semi-axis
    rho: np.ndarray  # normalised elliptic radius (1 at the lateral/apical border), box-shaped
    y: np.ndarray  # normalised vertical position (-1 apex .. ~0.6 base), box-shaped
    xs: np.ndarray  # normalised horizontal position, -1 at the medial .. +1 at the lateral border
    lateral: np.ndarray  # max(xs, 0), box-shaped
    mask: np.ndarray  # lung mask in the box (before the heart and mediastinum are drawn over it)


def _severity(scene: Scene, name: str) -> tuple[float, float]:
    """(severity, thin-structure contrast factor) of one finding: a Scene gives one severity for all
    findings, or one per finding (1.0 for those not named).

    Sizes and the contrast of extended opacities scale with the severity itself; thin structures
    (pleural line, plate atelectasis) with its square root, so that a faint (0.3) finding is still
    visible through the noise while severity 0 draws nothing.
    """
    value = float(scene.severity.get(name, 1.0)) if isinstance(scene.severity, Mapping) else float(scene.severity)
    return value, math.sqrt(value)


def render(scene: Scene, rng: np.random.Generator, size: int = 224) -> np.ndarray:
    """Render `scene` as a (size, size) float32 image in [0, 1]; deterministic given `rng`'s state.

    The anatomy and findings are drawn at half resolution (for even sizes >= 96) and interpolated up;
    the white noise is added at full resolution.
    """
    _validate(scene)
    size = int(size)
    if size < 32:
        raise ValueError("size must be at least 32")
    n = size // 2 if size >= 96 and size % 2 == 0 else size  # internal resolution
    seeds = rng.integers(0, 2**63 - 1, size=3 + len(NAMES))
    anatomy_rng = np.random.default_rng(seeds[0])
    texture_rng = np.random.default_rng(seeds[1])
    noise_rng = np.random.default_rng(seeds[2])
    finding_rng = {name: np.random.default_rng(s) for name, s in zip(NAMES, seeds[3:].tolist())}
    sides = {k: resolve_laterality(k, scene.findings[k], finding_rng[k]) for k in NAMES if k in scene.findings}
    # sizes and contrast grow with each finding's severity; see _severity
    male = scene.sex == "male"
    age = float(min(max(scene.age, 0), 110))
    u, v = _grid(n)

    # ---- anatomy parameters: a fixed number of draws, whatever the scene (python floats keep float32)
    r = anatomy_rng.uniform(-1.0, 1.0, 24).tolist()
    cx = 0.5 + 0.008 * r[0]
    thorax = (0.40 if male else 0.372) + 0.014 * r[1]  # half width of the rib cage
    shoulder = (0.49 if male else 0.43) + 0.012 * r[2]
    apex = 0.14 + 0.012 * r[3]
    base_level = 0.79 + 0.02 * r[4]
    base = [base_level - 0.012 + 0.006 * r[5], base_level + 0.006 * r[6]]  # right hemidiaphragm higher
    dome = [0.085 + 0.012 * r[7], 0.075 + 0.012 * r[8]]
    lung_half = [thorax * 0.47 + 0.005 * r[9], thorax * 0.47 + 0.005 * r[10]]
    lung_offset = thorax * 0.52 + 0.004 * r[11]
    ctr = 0.42 + 0.02 * r[12]
    heart_v = 0.675 + 0.012 * r[13]
    heart_h = 0.15 + 0.008 * r[14]
    tilt = 0.3 + 0.08 * r[15]
    aorta_r = 0.028 + 0.00035 * (age - 50) + 0.003 * r[16]
    medi_half = 0.052 + 0.008 * min(max((age - 50) / 40, -1.0), 1.0) + 0.004 * r[17]
    rib_space = 0.066 + 0.004 * r[18]
    rib_phase = r[19]
    rib_tilt = 0.5 + 0.06 * r[20]
    bone = (0.10 - 0.0009 * (age - 50)) * (1 + 0.1 * r[21])
    tissue = 0.56 + 0.025 * r[22]
    breast = (0.06 + 0.012 * r[23]) if not male else 0.0

    # ---- findings that change the anatomy itself
    if "Cardiomegaly" in sides:
        sev, con = _severity(scene, "Cardiomegaly")
        grow = (0.19 + 0.02 * finding_rng["Cardiomegaly"].uniform(-1, 1)) * sev
        ctr += grow
        heart_h *= 1.0 + 0.5 * grow
    raise_dome = [0.0, 0.0]
    atel_params = {}
    if "Atelectasis" in sides:
        sev, con = _severity(scene, "Atelectasis")
        fr = finding_rng["Atelectasis"]
        for k, s in enumerate((-1, 1)):
            j = fr.uniform(-1, 1, 6).tolist()
            if s in _SIDES[sides["Atelectasis"]]:
                raise_dome[k] = (0.035 + 0.008 * j[5]) * sev
                atel_params[s] = j

    # ---- body outline and soft tissue
    du = np.abs(u - cx)  # row
    half = np.where(v < 0.1, 0.11 + (shoulder - 0.11) * np.sqrt(_smoothstep(v / 0.1)), shoulder)  # column
    half = half - np.clip(v - 0.35, 0.0, None) * 0.1
    body = _smoothstep((half - du) * (1 / 0.03) + 0.5)
    density = body * (tissue - (du * du) * (tissue * 0.5 / shoulder**2))  # thicker in the middle

    # ---- lungs: ellipses widening downwards, cut below by the diaphragm domes
    lungs = np.zeros((n, n), dtype=_F32)
    parts: list[_Lung] = []
    for k, s in enumerate((-1, 1)):
        lc, lh = cx + s * lung_offset, lung_half[k]
        lb = base[k] - raise_dome[k]
        cv = apex + (lb - apex) * 0.6
        bv = (lb - apex) * 0.6
        rs, cs = _box(n, lc - lh * 1.1, lc + lh * 1.1, apex - 0.01, lb + 0.01)
        uu, vv = u[:, cs], v[rs, :]
        width = lh * (0.9 + 0.14 * np.clip((vv - apex) / (lb - apex), 0.0, 1.0))
        x = (uu - lc) / width
        y = (vv - cv) * (1 / bv)
        rho = np.sqrt(x * x + y * y)
        xs = x * s
        dome_v = lb - dome[k] * (1.0 - np.clip(xs + 0.1, -1.0, 1.0) ** 2)  # lowest at the costophrenic angle
        m = _smoothstep(np.minimum((1.0 - rho) * 20.0, (dome_v - vv) * (1 / 0.008)) + 0.5)
        lungs[rs, cs] = np.maximum(lungs[rs, cs], m)
        parts.append(_Lung(s, rs, cs, lc, lh, lb, cv, bv, rho, y, xs, np.clip(xs, 0.0, None), m))

    # ---- mediastinum, heart, aortic knob (they hide the lung behind them), trachea
    hr, hl = ctr * thorax * 2 * 0.64, ctr * thorax * 2 * 0.36  # extents to the image right / left of cx
    # the widest horizontal chord of a tilted ellipse runs through its centre: make that chord the
    # requested heart width (hr + hl), so the drawn cardiothoracic ratio is `ctr`
    a_half = (hr + hl) / 2
    ct, st = math.cos(tilt), math.sin(tilt)
    a_ax = ct / math.sqrt(max(1.0 / a_half**2 - (st / heart_h) ** 2, 1e-6))
    hu, hv = u - (cx + (hr - hl) / 2), v - heart_v
    hx = (hu * (ct / a_ax)) + (hv * (st / a_ax))
    hy = (hv * (ct / heart_h)) - (hu * (st / heart_h))
    heart = _smoothstep((1.0 - (hx * hx + hy * hy)) * 12.0 + 0.5)
    medi = _smoothstep((medi_half - du) * (1 / 0.01) + 0.5) * (v < heart_v)
    rs, cs = _box(n, cx, cx + medi_half + 2.5 * aorta_r, 0.2, 0.42)
    kx, ky = u[:, cs] - (cx + medi_half + 0.2 * aorta_r), (v[rs, :] - 0.31) * 1.15
    knob = _smoothstep((aorta_r - np.sqrt(kx * kx + ky * ky)) * (1 / 0.006) + 0.5)
    solid = np.maximum(medi, heart)
    solid[rs, cs] = np.maximum(solid[rs, cs], knob)
    air = lungs * (1.0 - solid)
    trachea = _smoothstep((0.014 - du) * (1 / 0.006) + 0.5) * (_smoothstep((0.40 - v) * (1 / 0.03)) * (v > 0.02))

    # ---- vascular markings: a fixed texture, picked and shifted per image, with a smooth modulation
    kb = int(texture_rng.integers(_BANK_SIZE))
    dr, dc = (int(x) for x in texture_rng.integers(-_PAD, _PAD + 1, size=2))
    markings = _vessel_bank(n)[kb, _PAD + dr : _PAD + dr + n, _PAD + dc : _PAD + dc + n]
    markings = markings * (0.8 + 0.25 * _field(texture_rng, 8, n))
    blotch = _field(texture_rng, 20, n)  # shapes irregular opacity borders

    # ---- findings drawn inside the lungs
    opacity = np.zeros((n, n), dtype=_F32)  # density added where there is lung
    lucent = np.zeros((n, n), dtype=_F32)  # pneumothorax: extra air and no markings
    extra = np.zeros((n, n), dtype=_F32)  # thin lines drawn over the lung (pleural line, Kerley lines)

    if "Effusion" in sides:
        sev, con = _severity(scene, "Effusion")
        fr = finding_rng["Effusion"]
        for k, p in enumerate(parts):
            j = fr.uniform(-1, 1, 3).tolist()
            if p.s not in _SIDES[sides["Effusion"]]:
                continue
            depth = (0.13 + 0.02 * j[0]) * sev + 0.01
            meniscus = (0.09 + 0.02 * j[1]) * min(sev, 1.2) * (p.lateral * np.sqrt(p.lateral))  # rises laterally
            level = (p.base - dome[k] * 0.5 - depth) - meniscus
            fluid = _smoothstep((v[p.rs, :] - level) * (1 / (0.02 + 0.006 * j[2])))
            opacity[p.rs, p.cs] += fluid * p.mask * (0.36 * min(1.0, sev))

    if "Consolidation" in sides:
        sev, con = _severity(scene, "Consolidation")
        fr = finding_rng["Consolidation"]
        for p in parts:
            j = fr.uniform(-1, 1, 6).tolist()
            if p.s not in _SIDES[sides["Consolidation"]]:
                continue
            pv = p.cv + p.bv * (-0.45 + 0.45 * j[0])  # upper, middle or lower zone
            pu = p.centre + p.s * p.half * (0.15 + 0.2 * j[1])
            scale = 0.5 + 0.5 * min(sev, 1.3)
            ru, rv = p.half * (0.55 + 0.1 * j[2]) * scale, p.bv * (0.33 + 0.06 * j[3]) * scale
            qx, qy = (u[:, p.cs] - pu) * (1 / ru), (v[p.rs, :] - pv) * (1 / rv)
            q = qx * qx + qy * qy + 0.35 * blotch[p.rs, p.cs]
            patch = _smoothstep((1.0 - q) * (1 / 0.35))
            opacity[p.rs, p.cs] += patch * p.mask * (0.28 * min(1.15, sev))

    if "Edema" in sides:
        sev, con = _severity(scene, "Edema")
        fr = finding_rng["Edema"]
        j = fr.uniform(-1, 1, 4).tolist()
        kerley = fr.uniform(0, 1, (2, 4, 3)).tolist()
        spread = 0.75 + 0.25 * min(sev, 1.3)
        for k, p in enumerate(parts):
            qx = (u[:, p.cs] - (cx + p.s * (0.1 + 0.01 * j[0]))) * (1 / (0.15 * spread))
            qy = (v[p.rs, :] - (0.49 + 0.02 * j[1])) * (1 / (0.19 * spread))
            haze = np.exp(-(qx * qx + qy * qy)) * (0.85 + 0.2 * blotch[p.rs, p.cs])
            opacity[p.rs, p.cs] += haze * p.mask * (0.2 * min(sev, 1.4))
            for i in range(4):  # Kerley-B lines: short horizontal lines reaching in from the lateral pleura
                kv = p.base - 0.035 - 0.025 * i - 0.015 * kerley[k][i][0]
                edge = p.centre + p.s * p.half * (1.02 - 0.04 * i)
                length = 0.03 + 0.02 * kerley[k][i][1]
                p0, p1 = (edge, kv), (edge - p.s * length, kv + 0.006 * (kerley[k][i][2] - 0.5))
                rs, cs = _box(n, min(p0[0], p1[0]) - 0.01, max(p0[0], p1[0]) + 0.01, kv - 0.015, kv + 0.015)
                d = _segment(u[:, cs], v[rs, :], p0, p1)
                extra[rs, cs] += np.exp(-((d * (1 / 0.005)) ** 2)) * (0.12 * min(sev, 1.4))

    if "Atelectasis" in sides:
        sev, con = _severity(scene, "Atelectasis")
        for k, p in enumerate(parts):
            if p.s not in atel_params:
                continue
            j = atel_params[p.s]
            lv = p.base - dome[k] - 0.05 - 0.04 * (0.5 + 0.5 * j[0])  # lower zone, above the dome
            half_len = (0.085 + 0.015 * j[1]) * (0.75 + 0.25 * min(sev, 1.3))
            mid = p.centre + p.s * p.half * 0.1 * j[2]
            slope = 0.08 * j[3] + p.s * 0.04
            p0, p1 = (mid - half_len, lv - slope * half_len), (mid + half_len, lv + slope * half_len)
            rs, cs = _box(n, mid - half_len - 0.04, mid + half_len + 0.04, lv - 0.06, lv + 0.06)
            d = _segment(u[:, cs], v[rs, :], p0, p1)
            thick = (0.011 + 0.003 * j[4]) * (0.75 + 0.25 * min(sev, 1.3))
            band = _smoothstep((thick - d) * (1 / 0.007) + 0.5) * (0.3 * min(1.15, con))
            opacity[rs, cs] += np.exp(-((d * (1 / 0.03)) ** 2)) * (0.05 * min(sev, 1.2))
            extra[rs, cs] += band  # drawn over any fluid too: the plate stays visible

    if "COVID-19" in sides:
        sev, con = _severity(scene, "COVID-19")
        fr = finding_rng["COVID-19"]
        spots = fr.uniform(0, 1, (2, 5, 5)).tolist()
        ggo = np.zeros((n, n), dtype=_F32)
        for k, p in enumerate(parts):
            for i in range(5):
                sp = spots[k][i]
                pv = p.cv + p.bv * (-0.05 + 0.55 * sp[0])  # middle and lower zones
                pu = p.centre + p.s * p.half * (0.5 + 0.35 * sp[1])  # the periphery
                ru = (0.045 + 0.02 * sp[2]) * (0.7 + 0.3 * min(sev, 1.3))
                rv = ru * (1.1 + 0.4 * sp[3])
                rs, cs = _box(n, pu - 2.2 * ru, pu + 2.2 * ru, pv - 2.2 * rv, pv + 2.2 * rv)
                qx, qy = (u[:, cs] - pu) * (1 / ru), (v[rs, :] - pv) * (1 / rv)
                ggo[rs, cs] += np.exp(-(qx * qx + qy * qy)) * (0.6 + 0.4 * sp[4])
        opacity += np.minimum(ggo, 1.2) * (0.9 + 0.25 * blotch) * (0.18 * min(sev, 1.25))

    if "Pneumothorax" in sides:
        sev, con = _severity(scene, "Pneumothorax")
        fr = finding_rng["Pneumothorax"]
        for p in parts:
            j = fr.uniform(-1, 1, 3).tolist()
            if p.s not in _SIDES[sides["Pneumothorax"]]:
                continue
            # the collapsed lung's edge lies inside the chest wall: widest at the apex and lateral margin
            upper = np.clip(0.35 + 0.55 * p.xs - 0.55 * p.y + 0.1 * j[0], 0.0, 1.0)
            edge = 1.0 - ((0.2 + 0.04 * j[1]) * min(con, 1.15) * upper + 0.004)
            off = p.rho - edge
            rim = _smoothstep(off * (1 / 0.012) + 0.5) * p.mask * _smoothstep((upper - 0.05) * 10.0)
            rim *= min(1.0, 1.2 * con)  # a faint pneumothorax: less extra air, markings only partly lost
            line = np.exp(-((off * (1 / 0.01)) ** 2)) * p.mask * np.clip(upper * 4.0, 0.0, 1.0)
            lucent[p.rs, p.cs] = np.maximum(lucent[p.rs, p.cs], rim)
            extra[p.rs, p.cs] += line * (0.2 * min(1.2, con))

    # ---- bones: posterior rib arcs, spine, clavicles
    arc = -rib_tilt * du + 1.8 * du * du  # ribs rise from the spine, then fall laterally (row)
    phase = (v - 0.07) * (1 / rib_space) - arc * (1 / rib_space) + rib_phase
    ribs = np.clip(np.cos(phase * _F32(2 * np.pi)) * (1 / 0.6) - 0.4 / 0.6, 0.0, 1.0)
    cage_u = _smoothstep((thorax + 0.015 - du) * (1 / 0.03)) * _smoothstep((du - 0.03) * (1 / 0.03))
    cage_v = _smoothstep((v - 0.06) * (1 / 0.05)) * (1.0 - 0.75 * _smoothstep((v - base_level) * (1 / 0.08)))
    bones = ribs * (cage_u * cage_v) * (1.0 - 0.6 * solid)
    spine = _smoothstep((0.03 - du) * (1 / 0.008) + 0.5) * (0.35 + 0.15 * np.cos(v * _F32(2 * np.pi / 0.045)))
    bones += spine
    for s in (-1, 1):
        p0, p1 = (cx + s * 0.05, 0.2 + 0.006 * r[5]), (cx + s * shoulder * 0.74, 0.15)
        rs, cs = _box(n, min(p0[0], p1[0]) - 0.03, max(p0[0], p1[0]) + 0.03, 0.08, 0.26)
        uu, vv = u[:, cs], v[rs, :]
        d = _segment(uu, vv - 0.012 * np.sin((uu - p0[0]) * (s * 14.0)), p0, p1)  # gently S-shaped
        bones[rs, cs] += _smoothstep((0.015 - d) * (1 / 0.006) + 0.5) * 1.3

    # ---- breast shadows over the lower lung fields (female habitus)
    if breast > 0:
        bx = (du - 0.25) * (1 / 0.17)
        by = (v - 0.70) * (1 / 0.13)
        shade = _smoothstep((1.0 - (bx * bx + by * by)) * 2.0) * _smoothstep((v - 0.57) * (1 / 0.1))
        density = density + shade * (breast * body)

    # ---- compose at the internal resolution, interpolate up, add the noise
    opacity = np.minimum(opacity, 0.36)
    density = density + air * (markings * (1.0 - lucent) * 0.24 + opacity - lucent * 0.1 - 0.35)
    density = density + (solid * 0.04 - trachea * 0.1 + bones * bone) * body + extra * air
    density = density + _field(noise_rng, 8, n) * _F32(0.3 * scene.noise + 0.004)  # low-frequency mottle
    if n != size:
        density = _upsample2(density)
    r0, c0, flip = (int(x) for x in noise_rng.integers(0, [size + 1, size + 1, 4]))
    white = _noise_bank(size)[r0 : r0 + size, c0 : c0 + size]
    if flip & 1:
        white = white[::-1]
    if flip & 2:
        white = white.T
    density = density + white * _F32(scene.noise)
    return np.clip(density, 0.0, 1.0).astype(_F32, copy=False)
