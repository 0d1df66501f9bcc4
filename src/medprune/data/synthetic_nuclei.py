"""Deterministic synthetic H&E nuclei tiles: the project's built-in default data.

Real nuclei datasets need a download and a licence; the test-suite, the smoke
runs and the default configs must work offline and reproducibly. This module
draws tiles that have the properties the two-branch model (semantic U-Net +
distance-map U-Net merged by watershed) actually has to cope with:

* pink eosin background with low-frequency texture and collagen-like fibres;
* purple hematoxylin nuclei as irregular filled ellipses of varied size (px),
  eccentricity, orientation, darkness and chromatin granularity;
* touching / overlapping clusters, so connected components alone cannot
  separate the instances (that is the reason the distance branch exists), plus
  isolated nuclei and nuclei cut by the tile border;
* per-tile stain variation (stain vectors and concentrations), blur and noise.

Geometry first, image second: nuclei are rasterised into a label map (later
nuclei occlude earlier ones), every instance keeps only its largest
4-connected component, instances below ``min_area`` px are dropped, ids are
relabelled 1..N, and the RGB image is rendered *from that final label map*
with Beer-Lambert optical density and Ruifrok H&E stain vectors, so image and
labels always agree. Only ``np.random.default_rng`` is used: the same seed
gives byte-identical output.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medprune.common.checks import check_int, check_positive, check_range

#: Expected nuclei per 1000 px^2 before occlusion (~28 on a 128x128 tile).
DEFAULT_NUCLEI_DENSITY = 1.7
#: Mean geometric semi-axis of a nucleus in px ("20x-like" scale).
DEFAULT_MEAN_RADIUS = 5.0
#: Fraction of nuclei placed in touching/overlapping clusters.
DEFAULT_CLUSTER_FRACTION = 0.5
#: Instances smaller than this many px after occlusion are dropped.
MIN_INSTANCE_AREA = 12

#: Ruifrok & Johnston optical-density vectors (R, G, B), normalised below.
H_STAIN = np.array([0.65, 0.70, 0.29])
E_STAIN = np.array([0.07, 0.99, 0.11])
#: Macenko's reference vectors; each tile mixes a random share of these into
#: the Ruifrok ones (stain variation; pure Ruifrok eosin looks too magenta).
H_STAIN_ALT = np.array([0.5626, 0.7201, 0.4062])
E_STAIN_ALT = np.array([0.2159, 0.8012, 0.5581])


def derive_tile_seed(seed: int, index: int) -> int:
    """Seed of tile ``index`` in a split with base ``seed`` (SeedSequence spawn key)."""
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(index,))
    return int(ss.generate_state(1, dtype=np.uint64)[0])


def _check_args(
    size: object,
    nuclei_density: object = DEFAULT_NUCLEI_DENSITY,
    mean_radius: object = DEFAULT_MEAN_RADIUS,
    cluster_fraction: object = DEFAULT_CLUSTER_FRACTION,
    min_area: object = MIN_INSTANCE_AREA,
    **_: object,
) -> None:
    check_int(size, "size", 32)  # px
    check_positive(nuclei_density, "nuclei_density")
    check_positive(mean_radius, "mean_radius")  # px
    check_range(cluster_fraction, "cluster_fraction", high_open=False, what="a fraction")
    check_int(min_area, "min_area")  # px


def smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered noise (FFT, periodic) with scale ``sigma`` px."""
    spec = ndimage.fourier_gaussian(np.fft.rfft2(rng.standard_normal((size, size))), sigma, n=size)
    field = np.fft.irfft2(spec, s=(size, size))
    return (field - field.mean()) / (field.std() + 1e-12)


def _place_nuclei(
    rng: np.random.Generator, size: int, n: int, mean_radius: float, cluster_fraction: float
) -> np.ndarray:
    """Return (n, 6) rows (cy, cx, a, b, theta, clustered) in drawing order; a, b in px."""
    r = mean_radius * np.clip(rng.lognormal(0.0, 0.22, n), 0.6, 1.6)
    q = rng.uniform(0.5, 1.0, n)  # minor/major axis ratio
    a = np.minimum(r / np.sqrt(q), 1.8 * mean_radius)
    b = np.maximum(r * np.sqrt(q), 0.6 * mean_radius)
    theta = rng.uniform(0.0, np.pi, n)
    n_clustered = int(rng.binomial(n, cluster_fraction)) if n > 1 else 0
    lo, hi = -0.3 * mean_radius, size + 0.3 * mean_radius  # allow border-cut nuclei
    centres = np.zeros((n, 2))
    i = 0
    while i < n_clustered:  # clusters: chain each nucleus onto a random member
        k = min(n_clustered - i, int(rng.integers(2, 7)))
        centres[i] = rng.uniform(lo, hi, 2)
        for j in range(i + 1, i + k):
            p = int(rng.integers(i, j))
            ang = rng.uniform(0.0, 2 * np.pi)
            dist = (r[p] + r[j]) * rng.uniform(0.6, 0.95)
            centres[j] = centres[p] + dist * np.array([np.sin(ang), np.cos(ang)])
        i += k
    for j in range(n_clustered, n):  # isolated: a few tries to keep clear of others
        for _ in range(8):
            c = rng.uniform(lo, hi, 2)
            if j == 0 or np.all(np.hypot(*(centres[:j] - c).T) > r[:j] + r[j] + 2.0):
                break
        centres[j] = c
    clustered = (np.arange(n) < n_clustered).astype(float)
    return np.column_stack([centres, a, b, theta, clustered])


def _rasterise(rng: np.random.Generator, size: int, nuclei: np.ndarray) -> np.ndarray:
    """Draw irregular ellipses on local bounding-box grids; later ids overwrite earlier."""
    labels = np.zeros((size, size), dtype=np.int32)
    for k, (cy, cx, a, b, th, _) in enumerate(nuclei, start=1):
        coef = rng.normal(0.0, 0.035, 3)  # low-order boundary wobble (harmonics 2..4)
        phase = rng.uniform(0.0, 2 * np.pi, 3)
        ext = 1.15 * a + 1.0
        y0, y1 = max(0, int(cy - ext)), min(size, int(cy + ext) + 2)
        x0, x1 = max(0, int(cx - ext)), min(size, int(cx + ext) + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        yy = np.arange(y0, y1)[:, None] - cy
        xx = np.arange(x0, x1)[None, :] - cx
        u = (xx * np.cos(th) + yy * np.sin(th)) / a
        v = (-xx * np.sin(th) + yy * np.cos(th)) / b
        phi = np.arctan2(v, u)
        wobble = 1.0 + sum(
            c * np.cos((h + 2) * phi + p) for h, (c, p) in enumerate(zip(coef, phase))
        )
        mask = u * u + v * v <= wobble * wobble
        labels[y0:y1, x0:x1][mask] = k
    return labels


def _clean_instances(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Keep each instance's largest 4-connected component, drop small ones, relabel 1..N."""
    out = np.zeros_like(labels)
    new_id = 0
    for idx, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        mask = labels[sl] == idx
        cc, n_cc = ndimage.label(mask)
        if n_cc > 1:
            mask = cc == (np.argmax(np.bincount(cc.ravel())[1:]) + 1)
        if mask.sum() < min_area:
            continue
        new_id += 1
        out[sl][mask] = new_id
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.01, None)
    return v / np.linalg.norm(v)


def _render(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Render RGB uint8 from the final label map via Beer-Lambert OD (10-based)."""
    size = labels.shape[0]
    n = int(labels.max())
    t_h, t_e = rng.uniform(0.0, 0.5), rng.uniform(0.25, 0.7)
    h_vec = _unit((1 - t_h) * _unit(H_STAIN) + t_h * _unit(H_STAIN_ALT) + rng.normal(0.0, 0.03, 3))
    e_vec = _unit((1 - t_e) * _unit(E_STAIN) + t_e * _unit(E_STAIN_ALT) + rng.normal(0.0, 0.03, 3))
    base_e, base_h = rng.uniform(0.13, 0.24), rng.uniform(0.75, 1.05)

    # Eosin background: low-frequency density, patchy wavy fibres, pale gaps, grain.
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    ang, period = rng.uniform(0.0, np.pi), rng.uniform(6.0, 12.0)
    warp = 6.0 * smooth_noise(rng, size, size / 12)
    wave = np.sin(2 * np.pi * (xx * np.cos(ang) + yy * np.sin(ang) + warp) / period)
    patches = np.clip(smooth_noise(rng, size, size / 10) - 0.2, 0.0, 1.0)
    fibre = ((0.5 + 0.5 * wave) ** 8) * patches
    low = smooth_noise(rng, size, size / 8)
    gaps = np.clip((smooth_noise(rng, size, size / 14) - 1.6) * 1.5, 0.0, 0.8)
    grain = ndimage.gaussian_filter(rng.standard_normal((size, size)), 0.8)
    e_conc = base_e * (1 + 0.25 * low + 0.8 * fibre + 0.45 * grain) * (1 - gaps)
    h_conc = 0.025 + 0.01 * low + 0.01 * grain
    if n:
        inside = labels > 0
        dark = np.concatenate([[0.0], base_h * rng.uniform(0.7, 1.3, n)])
        hetero = np.concatenate([[0.0], rng.uniform(0.15, 0.55, n)])  # chromatin coarseness
        vesicular = np.concatenate([[0.0], rng.uniform(0.0, 1.0, n) < 0.2])
        chrom = ndimage.gaussian_filter(rng.standard_normal((size, size)), 0.9) * 2.2
        clumps = np.clip(
            ndimage.gaussian_filter(rng.standard_normal((size, size)), 1.3) * 3.0, 0, None
        )
        pad = np.pad(labels, 1, mode="edge")
        rim = inside & (
            (pad[:-2, 1:-1] != labels)
            | (pad[2:, 1:-1] != labels)
            | (pad[1:-1, :-2] != labels)
            | (pad[1:-1, 2:] != labels)
        )
        dist = ndimage.distance_transform_edt(inside & ~rim)
        nuc = dark[labels] * (1 + hetero[labels] * (0.5 * chrom + 0.6 * clumps))
        nuc *= np.where(vesicular[labels] > 0, 0.55 + 0.45 * np.exp(-dist), 1.0)
        nuc *= np.where(rim, 1.2, 1.0)
        h_conc = np.where(inside, np.clip(nuc, 0.15, None), h_conc)
        halo = np.exp(-ndimage.distance_transform_edt(~inside) / 3.0)  # perinuclear cytoplasm
        e_conc = np.where(inside, 0.35 * base_e * (1 + 0.3 * grain), e_conc * (1 + 0.35 * halo))

    od = np.clip(h_conc, 0, None)[..., None] * h_vec + np.clip(e_conc, 0, None)[..., None] * e_vec
    white = rng.uniform(238.0, 253.0) + rng.normal(0.0, 2.0, 3)
    img = white * np.power(10.0, -od)
    sigma = rng.uniform(0.5, 1.2)
    img = ndimage.gaussian_filter(img, sigma=(sigma, sigma, 0.0))
    img += rng.normal(0.0, rng.uniform(1.5, 4.0), img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def generate_nuclei_tile(
    seed: int,
    size: int = 128,
    *,
    nuclei_density: float = DEFAULT_NUCLEI_DENSITY,
    mean_radius: float = DEFAULT_MEAN_RADIUS,
    cluster_fraction: float = DEFAULT_CLUSTER_FRACTION,
    min_area: int = MIN_INSTANCE_AREA,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic H&E tile and its instance map.

    Args:
        seed: non-negative int; the same seed gives byte-identical output.
        size: tile side in px (>= 32).
        nuclei_density: expected nuclei per 1000 px^2 before occlusion; the
            count is Poisson and scales with tile area.
        mean_radius: mean geometric semi-axis in px (semi-axes ~0.6-1.8x this).
        cluster_fraction: fraction of nuclei placed in touching clusters.
        min_area: instances smaller than this (px) after occlusion are dropped.

    Returns:
        ``image`` uint8 (size, size, 3) RGB and ``instances`` int32 (size, size)
        with 0 = background and consecutive ids 1..N.
    """
    check_int(seed, "seed", 0)
    _check_args(size, nuclei_density, mean_radius, cluster_fraction, min_area)
    size, rng = int(size), np.random.default_rng(seed)
    n = int(rng.poisson(nuclei_density * size * size / 1000.0))
    nuclei = _place_nuclei(rng, size, n, float(mean_radius), float(cluster_fraction))
    instances = _clean_instances(_rasterise(rng, size, nuclei), int(min_area))
    return _render(rng, instances), instances


def generate_nuclei_split(
    seed: int, count: int, size: int = 128, **kw: float
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``count`` tiles; tile i is ``generate_nuclei_tile(derive_tile_seed(seed, i))``.

    Seeds come from ``SeedSequence(seed, spawn_key=(i,))`` so splits built from
    different base seeds (train/val/test) do not share tiles.

    Returns:
        images uint8 (count, size, size, 3) and instances int32 (count, size, size).
    """
    check_int(seed, "seed", 0)
    check_int(count, "count", 0)
    _check_args(size, **kw)
    images = np.zeros((count, size, size, 3), dtype=np.uint8)
    instances = np.zeros((count, size, size), dtype=np.int32)
    for i in range(count):
        images[i], instances[i] = generate_nuclei_tile(derive_tile_seed(seed, i), size, **kw)
    return images, instances
