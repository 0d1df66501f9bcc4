"""ACDC (MICCAI 2017) cardiac cine-MRI in its original layout: loading, preprocessing, 2D slices.

Layout read: ``root/patientNNN/Info.cfg`` (``ED: 1``, ``ES: 12``, ``Group: DCM``, ...) and
``patientNNN_frameXX.nii.gz`` with ``patientNNN_frameXX_gt.nii.gz`` for the ED and ES frames.
Labels: 0 background, 1 right ventricle, 2 myocardium, 3 left-ventricle cavity.

Axis order: nibabel gives data as (x, y, z) = (i, j, k) voxel indices with header zooms in the
same order. Everything here uses **(z, y, x)**: ``array[k, j, i]`` is voxel (i, j, k) of the file
and ``spacing = (zoom_k, zoom_j, zoom_i)`` in mm, so axis 0 indexes the short-axis slices and a
2D slice ``image[k]`` is (H, W) = (y, x), as torch expects. The spacing comes from the header
zooms (pixdim), not the affine: ACDC affines do not carry it.

Composition: ``find_patients`` -> ``split_patients`` -> ``load_patient`` per patient ->
``preprocess_volume`` per volume -> ``AcdcSlices(volumes, size)``
(``medprune.data.cardiac_datamodule``). This module needs no torch: prediction reuses it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from medprune.common.checks import check_range

NUM_CLASSES = 4  # 0 background, 1 RV, 2 myocardium, 3 LV cavity
PHASES = ("ED", "ES")
_INFO_TYPES = {"ED": int, "ES": int, "NbFrame": int, "Height": float, "Weight": float}


@dataclass(frozen=True)
class Volume:
    """One cardiac phase of one patient. ``image`` float32 and ``label`` uint8 are (z, y, x);
    ``spacing`` is (z, y, x) in mm. ``group`` is None when Info.cfg has no ``Group``."""

    patient_id: str
    phase: str
    frame: int
    group: str | None
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]


def read_info(path: str | Path) -> dict[str, int | float | str]:
    """Parse an Info.cfg of ``key: value`` lines. ED, ES and NbFrame become int, Height and
    Weight float (cm, kg), anything else stays a string. ED and ES must be present integers."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Info.cfg not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable Info.cfg text file ({err})") from None
    info: dict[str, int | float | str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"{path}:{number}: expected 'key: value', got {line!r}")
        info[key.strip()] = value.strip()
    for key in ("ED", "ES"):
        if key not in info:
            raise ValueError(f"{path}: missing {key} (frame number of the {key} phase)")
    for key, kind in _INFO_TYPES.items():
        if key in info:
            try:
                info[key] = kind(info[key])
            except ValueError:
                what = "an integer" if kind is int else "a number"
                raise ValueError(f"{path}: {key}={info[key]!r} is not {what}") from None
    return info


def find_patients(root: str | Path) -> list[Path]:
    """Sorted ``patient*`` directories under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: ACDC root directory not found")
    patients = sorted(p for p in root.glob("patient*") if p.is_dir())
    if not patients:
        raise FileNotFoundError(f"{root}: no patient* directories (expected the ACDC layout)")
    return patients


def _nifti_path(patient_dir: Path, frame: int, suffix: str) -> Path:
    stem = f"{patient_dir.name}_frame{frame:02d}{suffix}"
    for ext in (".nii.gz", ".nii"):
        if (patient_dir / f"{stem}{ext}").is_file():
            return patient_dir / f"{stem}{ext}"
    raise FileNotFoundError(f"{patient_dir / stem}.nii.gz: file not found")


def _read_nifti(path: Path) -> tuple[nib.Nifti1Image, tuple[float, float, float]]:
    """The image and its (z, y, x) spacing in mm."""
    try:
        nii = nib.load(path)
    except Exception as err:  # nibabel raises many kinds; one message naming the file
        raise ValueError(f"{path}: cannot read NIfTI ({type(err).__name__}: {err})") from None
    if len(nii.shape) != 3:
        raise ValueError(f"{path}: expected a 3D volume (x, y, z), got shape {nii.shape}")
    zooms = tuple(float(z) for z in nii.header.get_zooms()[:3])
    return nii, (zooms[2], zooms[1], zooms[0])


def _voxels(nii: nib.Nifti1Image, path: Path, dtype=None) -> np.ndarray:
    """The voxel data, decoded now (a truncated .nii.gz fails here, named)."""
    try:
        return nii.get_fdata(dtype=dtype) if dtype is not None else np.asanyarray(nii.dataobj)
    except Exception as err:
        raise ValueError(
            f"{path}: cannot decode NIfTI data ({type(err).__name__}: {err})"
        ) from None


def read_nifti_volume(
    path: str | Path,
) -> tuple[np.ndarray, tuple[float, float, float], nib.Nifti1Image]:
    """A 3D NIfTI volume as float32 (z, y, x), its (z, y, x) spacing in mm, and the image
    (header and affine, for writing a prediction on the same grid)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: NIfTI file not found")
    nii, spacing = _read_nifti(path)
    image = _voxels(nii, path, np.float32).transpose(2, 1, 0)
    return np.ascontiguousarray(image), spacing, nii


def read_label_volume(path: str | Path) -> np.ndarray:
    """An ACDC label volume (0..3) as uint8 in the file's (x, y, z) order."""
    path = Path(path)
    nii, _ = _read_nifti(path)
    raw = _voxels(nii, path)
    values = np.unique(raw)
    bad = values[(values < 0) | (values >= NUM_CLASSES) | (values != np.round(values))]
    if bad.size:
        raise ValueError(
            f"{path}: label values {bad.tolist()} outside 0..{NUM_CLASSES - 1} "
            "(0 background, 1 RV, 2 myocardium, 3 LV)"
        )
    return raw.astype(np.uint8)


def load_patient(patient_dir: str | Path) -> list[Volume]:
    """The ED and ES volumes (in that order) of one patient, frames chosen from Info.cfg.
    int16 and float32 images both come back as float32 with the same values."""
    patient_dir = Path(patient_dir)
    info = read_info(patient_dir / "Info.cfg")
    group = info.get("Group")
    volumes = []
    for phase in PHASES:
        image_path = _nifti_path(patient_dir, info[phase], "")
        label_path = _nifti_path(patient_dir, info[phase], "_gt")
        image, spacing, _ = read_nifti_volume(image_path)
        label = read_label_volume(label_path).transpose(2, 1, 0)
        if image.shape != label.shape:
            raise ValueError(
                f"{image_path} and {label_path}: image shape {image.shape[::-1]} != label shape "
                f"{label.shape[::-1]} (x, y, z)"
            )
        volumes.append(
            Volume(
                patient_id=patient_dir.name,
                phase=phase,
                frame=int(info[phase]),
                group=None if group is None else str(group),
                image=image,
                label=np.ascontiguousarray(label),
                spacing=spacing,
            )
        )
    return volumes


def resample_inplane(volume: Volume, target_spacing: tuple[float, float] | None) -> Volume:
    """Resample each slice to ``target_spacing`` = (y, x) mm; None returns ``volume`` as is.

    The image uses linear (order 1), the label nearest (order 0) interpolation, on pixel-centre
    grids (``grid_mode``), so the field of view is kept. The new size is ``round(n * old / new)``
    per axis and the returned spacing is the exact one, ``old * n / new_n``. z is untouched.
    """
    image, spacing = resample_slices(volume.image, volume.spacing, target_spacing, order=1)
    if spacing == volume.spacing:
        return volume
    label, _ = resample_slices(volume.label, volume.spacing, target_spacing, order=0)
    return replace(volume, image=image, label=label, spacing=spacing)


def resample_slices(
    array: np.ndarray,
    spacing: tuple[float, float, float],
    target_spacing: tuple[float, float] | None,
    order: int,
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """One (z, y, x) array resampled in-plane as ``resample_inplane`` does (``order`` 1 for
    images, 0 for labels), with its new (z, y, x) spacing in mm; unchanged when no resampling
    is needed."""
    if target_spacing is None:
        return array, spacing
    _, n_y, n_x = array.shape
    sz, sy, sx = spacing
    new_y = max(1, round(n_y * sy / target_spacing[0]))
    new_x = max(1, round(n_x * sx / target_spacing[1]))
    if (new_y, new_x) == (n_y, n_x):
        return array, spacing
    factors = (1.0, new_y / n_y, new_x / n_x)
    out = ndimage.zoom(array, zoom=factors, order=order, grid_mode=True, mode="nearest")
    return out.astype(array.dtype), (sz, sy * n_y / new_y, sx * n_x / new_x)


def normalize_intensity(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Robust per-volume z-score, float32.

    Clip to the ``low``/``high`` percentiles of the volume, then subtract the mean and divide by
    the std of the voxels that were inside that range, so outliers (bright fat, artefacts)
    neither set the scale nor survive as extreme values: the unclipped voxels end with mean 0
    and std 1, the clipped ones sit at the bounds. A constant volume becomes all zeros.
    """
    lo, hi = np.percentile(image, [low, high])
    inside = image[(image >= lo) & (image <= hi)]
    std = float(inside.std())
    if std < 1e-8:
        return np.zeros(image.shape, np.float32)
    return ((np.clip(image, lo, hi) - inside.mean()) / std).astype(np.float32)


def preprocess_volume(
    volume: Volume, target_spacing: tuple[float, float] | None = None, normalize: bool = True
) -> Volume:
    """In-plane resampling (``resample_inplane``), then ``normalize_intensity``."""
    volume = resample_inplane(volume, target_spacing)
    return replace(volume, image=normalize_intensity(volume.image)) if normalize else volume


def center_crop_or_pad(
    slice2d: np.ndarray, size: int | Sequence[int], fill: float = 0
) -> np.ndarray:
    """Centre ``slice2d`` (H, W) in a ``size`` (int or (h, w)) array: crop where larger, pad
    with ``fill`` where smaller. The extra pixel of an odd difference goes after (bottom/right).

    Calling it again with the original (H, W) undoes the geometry, so a prediction made on the
    crop maps back onto the slice (cropped-away pixels become ``fill``).
    """
    if slice2d.ndim != 2:
        raise ValueError(f"center_crop_or_pad: expected a 2D (H, W) slice, got {slice2d.shape}")
    out_h, out_w = (size, size) if isinstance(size, int) else size
    out = np.full((out_h, out_w), fill, dtype=slice2d.dtype)
    src, dst = [], []
    for n, s in zip(slice2d.shape, (out_h, out_w)):
        offset = abs(n - s) // 2
        length = min(n, s)
        src.append(slice(offset, offset + length) if n > s else slice(0, length))
        dst.append(slice(0, length) if n > s else slice(offset, offset + length))
    out[tuple(dst)] = slice2d[tuple(src)]
    return out


def pad_volume(image: np.ndarray, multiple: int) -> np.ndarray:
    """A (Z, H, W) volume padded centrally (``center_crop_or_pad``) with its minimum, never
    cropped, to sides that are multiples of ``multiple`` and at least two of them (a U-Net of
    depth d takes sides of ``k * 2 ** (d - 1)`` px, k >= 2 after export), for whole-volume
    inference; float32."""
    size = [max(2, math.ceil(n / multiple)) * multiple for n in image.shape[1:]]
    fill = float(image.min()) if image.size else 0.0
    return np.stack([center_crop_or_pad(s, size, fill=fill) for s in image]).astype(np.float32)


def split_patients(
    patient_dirs: Sequence[str | Path], val_fraction: float, seed: int
) -> tuple[list[Path], list[Path]]:
    """Patient-level (train, val) split stratified by the Info.cfg ``Group``.

    Each group gives ``floor(val_fraction * n + 0.5)`` patients to val, at least 1 if it has
    >= 2 patients, and always keeps one for train. Deterministic for a seed whatever the input
    order (each group is shuffled by its own RNG seeded with ``seed`` and the group name).
    Both lists come back sorted by name.
    """
    check_range(val_fraction, "val_fraction", low_open=True)
    dirs = sorted(Path(p) for p in patient_dirs)
    if len(set(p.name for p in dirs)) != len(dirs):
        raise ValueError("split_patients: the same patient is listed twice")
    groups: dict[str, list[Path]] = {}
    for p in dirs:
        group = read_info(p / "Info.cfg").get("Group")
        if group is None:
            raise ValueError(f"{p / 'Info.cfg'}: missing Group, needed to stratify the split")
        groups.setdefault(str(group), []).append(p)
    train, val = [], []
    for group, members in sorted(groups.items()):
        n = len(members)
        n_val = min(max(math.floor(val_fraction * n + 0.5), 1 if n >= 2 else 0), n - 1)
        shuffled = members[:]
        random.Random(f"{seed}:{group}").shuffle(shuffled)
        val += shuffled[:n_val]
        train += shuffled[n_val:]
    return sorted(train), sorted(val)
