"""Deterministic synthetic short-axis cine-MRI slices: the cardiac task's built-in default data.

ACDC needs a registration and a download; the test-suite, the smoke runs and the
default cardiac configs must work offline and reproducibly. This module draws 2D
bSSFP-like short-axis slices with ACDC labels (0 background, 1 RV cavity,
2 LV myocardium, 3 LV cavity) and the properties a segmenter has to cope with:

* a bright, roughly elliptical LV blood pool inside a dark myocardial ring whose
  thickness varies around the circumference (mean 4.5-7 px at 128 px, i.e. the
  7-11 mm of a real wall at ~1.5 mm/px; locally 0.6-1.5x that, at least 1 px),
  and a bright RV crescent wrapping part of the LV on one side and sharing the
  septum with the myocardium;
* confounders labelled background: a thin dark RV free wall, bright epicardial
  fat fragments, a bright descending aorta, dark lungs, a liver-like blob, the
  chest wall (subcutaneous fat + muscle) and air outside the body;
* random geometry (position, size, rotation +-45 deg around the usual display
  orientation with the RV on the left, ellipticity, wall thickness), random
  tissue levels, a smooth multiplicative bias field, mild blur and Rician or
  Gaussian noise.

Slice kinds (see :func:`draw_slice_kind`): a fraction ``missing_prob``
(default 0.1) lacks a structure - half below the RV (no class 1), 30 % an apical
cap (myocardium only), 20 % beyond the heart (background only) - so the HD95
conventions for empty masks matter. Of the rest, ``variant_prob`` (default 0.2)
are apical (small cavity, small RV) or basal (large cavity, thin wall, large
RV) in equal shares; those and the mid slices always contain all four classes.
With the defaults 90 % of slices contain every class.

Geometry first, image second: a tissue map is drawn, the labels are read off it,
and the image is rendered from that same map, so image and labels always agree.
The LV cavity is always sealed by myocardium (every pixel 8-adjacent to the
cavity is myocardium), so the RV never touches the cavity. The image is float32
normalised per slice to zero mean and unit variance (z-score, as for MRI in
nnU-Net); labels are uint8. Sizes scale with ``size`` (px). Only
``np.random.default_rng`` is used: the same seed gives byte-identical output.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medprune.common.checks import check_int, check_range
from medprune.data.synthetic_nuclei import derive_tile_seed, smooth_noise

#: Fraction of slices lacking at least one structure (kinds no_rv/apex_cap/no_heart).
DEFAULT_MISSING_PROB = 0.1
#: Fraction of the remaining slices drawn as apical or basal variants (half each).
DEFAULT_VARIANT_PROB = 0.2
#: Relative shares of the missing-structure kinds.
MISSING_KINDS = {"no_rv": 0.5, "apex_cap": 0.3, "no_heart": 0.2}
#: Label values present in each slice kind.
KIND_CLASSES = {
    "mid": (0, 1, 2, 3),
    "apical": (0, 1, 2, 3),
    "basal": (0, 1, 2, 3),
    "no_rv": (0, 2, 3),
    "apex_cap": (0, 2),
    "no_heart": (0,),
}
#: Display angle (atan2(dy, dx), rows down) from LV to RV before rotation: left and up.
RV_ANGLE = -5 * np.pi / 6

# Tissue codes; 1-3 are the ACDC labels, everything else is labelled background.
SOFT, RV, MYO, LV, AIR, LUNG, FAT, MUSCLE, LIVER, VESSEL, RV_WALL = range(11)
_FULL = np.ones((3, 3), dtype=bool)
#: bSSFP-like signal ranges per tissue (blood and fat bright, muscle dark, lung/air near 0);
#: RV blood is LV * U(0.8, 1), the RV free wall myocardium * U(0.9, 1.2).
TISSUE_LEVELS = {
    LV: (0.8, 1.0),
    MYO: (0.18, 0.35),
    SOFT: (0.3, 0.5),
    LUNG: (0.03, 0.1),
    FAT: (0.7, 0.95),
    MUSCLE: (0.22, 0.38),
    LIVER: (0.35, 0.55),
    VESSEL: (0.6, 1.0),
}
#: Per kind: (lo, hi) ranges of the LV-radius, wall-thickness and RV-size factors.
_SCALES = {
    "mid": ((1.0, 1.0), (1.0, 1.0), (1.0, 1.0)),
    "apical": ((0.5, 0.7), (0.9, 1.2), (0.5, 0.75)),
    "basal": ((1.15, 1.3), (0.6, 0.8), (1.05, 1.25)),
    "no_rv": ((0.5, 0.75), (0.9, 1.2), (0.0, 0.0)),
    "apex_cap": ((0.35, 0.5), (1.0, 1.0), (0.0, 0.0)),
    "no_heart": ((1.0, 1.0), (1.0, 1.0), (0.0, 0.0)),
}


def draw_slice_kind(
    rng: np.random.Generator,
    missing_prob: float = DEFAULT_MISSING_PROB,
    variant_prob: float = DEFAULT_VARIANT_PROB,
) -> str:
    """Draw a slice kind; ``generate_cardiac_slice`` calls this first with its generator."""
    u, v = rng.random(2)
    if u < missing_prob:
        kinds, shares = zip(*MISSING_KINDS.items())
        return kinds[int(np.searchsorted(np.cumsum(shares), v * sum(shares), side="right"))]
    if rng.random() < variant_prob:
        return "apical" if v < 0.5 else "basal"
    return "mid"


def _check_args(
    size: object,
    missing_prob: object = DEFAULT_MISSING_PROB,
    variant_prob: object = DEFAULT_VARIANT_PROB,
) -> None:
    check_int(size, "size", 32)  # px
    check_range(missing_prob, "missing_prob", high_open=False, what="a probability")
    check_range(variant_prob, "variant_prob", high_open=False, what="a probability")


def _harmonics(rng: np.random.Generator, phi: np.ndarray, orders: range, amp: float) -> np.ndarray:
    """Smooth periodic function of the angle ``phi``: random cosines of the given orders."""
    coef, phase = rng.normal(0.0, amp, len(orders)), rng.uniform(0.0, 2 * np.pi, len(orders))
    return sum(c * np.cos(k * phi + p) for k, c, p in zip(orders, coef, phase))


def _ellipse(dy, dx, angle: float, along: float, across: float) -> np.ndarray:
    """Squared normalised radius of an ellipse with semi-axis ``along`` in direction ``angle``."""
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    return (u / along) ** 2 + (v / across) ** 2


def _heart(rng: np.random.Generator, size: int, kind: str, psi: float) -> tuple:
    """Return (tissue map with heart labels 0-3 only, centre (cy, cx), epicardial radius R px)."""
    lo, hi = np.array(_SCALES[kind]).T  # same three draws for every kind
    lv_scale, wall_scale, rv_scale = lo + (hi - lo) * rng.random(3)
    r_lv = max(2.0, size * rng.uniform(0.09, 0.14) * lv_scale)
    q, theta = rng.uniform(0.75, 1.0), rng.uniform(0.0, np.pi)  # minor/major axis ratio
    a, b = r_lv / np.sqrt(q), r_lv * np.sqrt(q)
    t0 = max(2.0, size * rng.uniform(0.035, 0.055) * wall_scale)
    big_r = r_lv + t0
    away = -0.25 * big_r * np.array([np.sin(psi), np.cos(psi)])  # so the RV fits too
    centre = size / 2 + rng.uniform(-0.06, 0.06, 2) * size + away
    bound = 1.15 * a + 1.5 * t0 + 2.0
    cy, cx = np.clip(centre, bound, size - 1 - bound) if 2 * bound < size - 1 else [size / 2] * 2
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    dy, dx = yy - cy, xx - cx
    d, phi = np.hypot(dy, dx), np.arctan2(dy, dx)
    r_ell = a * b / np.hypot(b * np.cos(phi - theta), a * np.sin(phi - theta))
    r_endo = r_ell * (1.0 + _harmonics(rng, phi, range(2, 5), 0.025))
    wall = np.clip(t0 * (1.0 + _harmonics(rng, phi, range(1, 3), 0.15)), 0.6 * t0, 1.5 * t0)
    lv = d <= r_endo
    epi = (d <= r_endo + wall) | ndimage.binary_dilation(lv, _FULL)  # seal the cavity
    tissue = np.zeros((size, size), dtype=np.uint8)
    if kind == "no_heart":
        return tissue, (cy, cx), big_r
    tissue[epi] = MYO
    if kind != "apex_cap":
        tissue[lv] = LV
    if rv_scale > 0:
        d_rv = rng.uniform(0.5, 0.75) * big_r
        across = rng.uniform(1.0, 1.4) * big_r * max(rv_scale, 0.8)  # tangential half-length
        along = big_r - d_rv + max(2.5, rng.uniform(0.25, 0.55) * big_r * rv_scale)
        ell = _ellipse(dy - d_rv * np.sin(psi), dx - d_rv * np.cos(psi), psi, along, across)
        cc, n_cc = ndimage.label((ell <= 1.0 + _harmonics(rng, phi, range(2, 4), 0.04)) & ~epi)
        if n_cc:
            tissue[cc == np.argmax(np.bincount(cc.ravel())[1:]) + 1] = RV
    return tissue, (cy, cx), big_r


def _blob(rng, dy, dx, angle: float, along: float, across: float, wobble: float) -> np.ndarray:
    """Ellipse with a smooth random boundary (``wobble``: relative radius perturbation)."""
    noise = smooth_noise(rng, dy.shape[0], dy.shape[0] / 16)
    return _ellipse(dy, dx, angle, along, across) <= 1.0 + wobble * noise


def _surroundings(
    rng: np.random.Generator, heart: np.ndarray, centre, big_r: float, psi: float, kind: str
) -> np.ndarray:
    """Paint body, chest wall, lungs, liver, aorta, RV wall and fat around the heart labels."""
    size = heart.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    dy, dx = yy - centre[0], xx - centre[1]

    def at(angle: float, dist: float) -> tuple[np.ndarray, np.ndarray]:
        return dy - dist * np.sin(angle), dx - dist * np.cos(angle)

    tissue = np.full((size, size), AIR, dtype=np.uint8)
    ant = psi + np.pi / 3  # anterior (up in the usual display)
    ref = 0.16 * size  # typical mid-ventricular epicardial radius: scale of the other organs
    ap = rng.uniform(4.0, 5.5) * ref  # body semi-axes: antero-posterior, left-right
    lr = rng.uniform(1.2, 1.5) * ap
    shift = ap - big_r - ref * rng.uniform(0.5, 1.3)
    rho = np.sqrt(_ellipse(*at(ant, -shift), ant, ap, lr))
    depth = (1.0 - rho) * ap + 1.5 * smooth_noise(rng, size, size / 12)  # px below the skin
    fat_d, mus_d = rng.uniform(0.1, 0.25) * ref, rng.uniform(0.2, 0.45) * ref
    tissue[depth > 0] = FAT
    tissue[depth > fat_d] = MUSCLE
    inner = depth > fat_d + mus_d
    tissue[inner] = SOFT
    liver_ang = psi - np.pi / 2 + rng.uniform(-0.25, 0.25)
    if kind == "no_heart":  # beyond the apex: the liver dome fills the heart's place
        tissue[inner & _blob(rng, dy, dx, liver_ang, 1.8 * ref, 2.6 * ref, 0.1)] = LIVER
    elif rng.random() < 0.7:
        along = rng.uniform(1.0, 1.6) * ref
        gap = big_r + ref * rng.uniform(0.2, 0.6) + along
        tissue[inner & _blob(rng, *at(liver_ang, gap), liver_ang, along, 1.6 * along, 0.1)] = LIVER
    for ang, base in ((psi + np.pi - 0.7, 1.0), (psi - 0.35, 1.6)):  # left lung, right lung
        along = rng.uniform(0.8, 1.4) * ref
        gap = big_r * base + ref * rng.uniform(0.05, 0.4) + along
        lung = _blob(rng, *at(ang, gap), ang, along, rng.uniform(1.3, 2.0) * ref, 0.15)
        tissue[inner & lung] = LUNG
    if kind != "no_heart" and rng.random() < 0.7:  # descending aorta, posterior to the LV
        ang, r_ao = psi + np.pi + rng.uniform(0.2, 0.6), rng.uniform(0.28, 0.4) * ref
        dist = big_r + r_ao + ref * rng.uniform(0.15, 0.5)
        tissue[_ellipse(*at(ang, dist), 0.0, r_ao, r_ao) <= 1] = VESSEL
    heart_fg = heart > 0
    if heart_fg.any():
        rv_wall = np.zeros_like(heart_fg)
        if (heart == RV).any():
            rv_wall = ndimage.distance_transform_edt(heart != RV) <= rng.uniform(1.0, 2.0)
        tissue[rv_wall] = RV_WALL
        outside = ndimage.distance_transform_edt(~(heart_fg | rv_wall))
        frag = np.clip(_harmonics(rng, np.arctan2(dy, dx), range(2, 7), 1.0), 0.0, None)
        fat_w = rng.uniform(1.0, 3.0) * np.minimum(frag, 1.5)
        tissue[(outside > 0) & (outside <= fat_w)] = FAT
    tissue[heart_fg] = heart[heart_fg]
    return tissue


def _render(rng: np.random.Generator, tissue: np.ndarray) -> np.ndarray:
    """bSSFP-like contrast from the tissue map: texture, blur, bias, noise, z-score."""
    size = tissue.shape[0]
    levels = np.zeros(11)
    for code, (lo, hi) in TISSUE_LEVELS.items():
        levels[code] = rng.uniform(lo, hi)
    levels[RV] = levels[LV] * rng.uniform(0.8, 1.0)
    levels[RV_WALL] = levels[MYO] * rng.uniform(0.9, 1.2)
    fine_amp = np.array([0.12, 0.04, 0.05, 0.04, 0.0, 0.4, 0.05, 0.08, 0.06, 0.05, 0.05])
    coarse_amp = np.array([0.1, 0.06, 0.04, 0.05, 0.0, 0.2, 0.05, 0.05, 0.06, 0.05, 0.0])
    fine, coarse = smooth_noise(rng, size, size / 40), smooth_noise(rng, size, size / 10)
    img = levels[tissue] * (1.0 + fine_amp[tissue] * fine + coarse_amp[tissue] * coarse)
    spots = ndimage.gaussian_filter((rng.random((size, size)) < 0.004).astype(float), 0.8)
    img += np.where(tissue == LUNG, 3.0 * spots, 0.0)  # lung vessels
    img = ndimage.gaussian_filter(img, rng.uniform(0.4, 0.9))
    y, x = np.mgrid[-1.0 : 1.0 : size * 1j, -1.0 : 1.0 : size * 1j]
    g = rng.normal(0.0, [0.15, 0.15, 0.08, 0.08, 0.08])
    img *= np.exp(g[0] * x + g[1] * y + g[2] * x * x + g[3] * y * y + g[4] * x * y)
    sigma = rng.uniform(0.015, 0.05)
    n1, n2 = rng.normal(0.0, sigma, (2, size, size))
    img = np.hypot(img + n1, n2) if rng.random() < 0.7 else img + n1  # Rician or Gaussian
    return ((img - img.mean()) / (img.std() + 1e-12)).astype(np.float32)


def _as_rng(rng_or_seed: object) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    check_int(rng_or_seed, "rng_or_seed", 0, what="a np.random.Generator or an integer >= 0")
    return np.random.default_rng(int(rng_or_seed))  # type: ignore[arg-type]


def generate_cardiac_slice(
    rng_or_seed: int | np.random.Generator,
    size: int = 128,
    *,
    missing_prob: float = DEFAULT_MISSING_PROB,
    variant_prob: float = DEFAULT_VARIANT_PROB,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic short-axis slice and its ACDC label map.

    Args:
        rng_or_seed: non-negative int (the same seed gives byte-identical output)
            or a ``np.random.Generator``, which is advanced.
        size: image side in px (>= 32); anatomy scales with it.
        missing_prob: probability that a structure is missing (no RV, apical cap
            with myocardium only, or no heart at all; shares in ``MISSING_KINDS``).
        variant_prob: probability that a slice with all structures is an apical or
            basal variant instead of a mid-ventricular one.

    Returns:
        ``image`` float32 (size, size), z-scored per slice, and ``labels`` uint8
        (size, size): 0 background, 1 RV, 2 myocardium, 3 LV cavity.
    """
    rng = _as_rng(rng_or_seed)
    _check_args(size, missing_prob, variant_prob)
    size = int(size)
    kind = draw_slice_kind(rng, float(missing_prob), float(variant_prob))
    psi = RV_ANGLE + rng.uniform(-np.pi / 4, np.pi / 4)
    heart, centre, big_r = _heart(rng, size, kind, psi)
    tissue = _surroundings(rng, heart, centre, big_r, psi, kind)
    return _render(rng, tissue), np.where(tissue <= LV, tissue, 0).astype(np.uint8)


def generate_cardiac_split(
    n: int, seed: int, size: int = 128, **kw: float
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` slices; slice i is ``generate_cardiac_slice(derive_tile_seed(seed, i))``.

    Seeds come from ``SeedSequence(seed, spawn_key=(i,))`` (shared with the
    nuclei generator) so splits built from different base seeds do not share slices.

    Returns:
        images float32 (n, size, size) and labels uint8 (n, size, size).
    """
    check_int(n, "n", 0)
    check_int(seed, "seed", 0)
    _check_args(size, **kw)
    images = np.zeros((n, size, size), dtype=np.float32)
    labels = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        images[i], labels[i] = generate_cardiac_slice(derive_tile_seed(seed, i), size, **kw)
    return images, labels
