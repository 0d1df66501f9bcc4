"""Cardiac prediction on one NIfTI volume: a label volume on the input's own grid; scores.

Torch-free. The volume is preprocessed as in training (``medprune.data.acdc``: in-plane
resampling to the model's target spacing, percentile-clipped z-score, padding with the
volume's minimum to the U-Net's size multiple), every slice goes through the network, and
the class probabilities come back onto the voxels as read (``network.cardiac_labels``)
before each structure keeps its largest connected component. The written label volume
carries the input's affine and header (data type uint8: 0 bg, 1 RV, 2 MYO, 3 LV).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from PIL import Image

from medprune.data.acdc import (
    normalize_intensity,
    pad_volume,
    read_label_volume,
    read_nifti_volume,
    resample_slices,
)
from medprune.inference.files import new_files
from medprune.metrics.surface import ACDC_CLASSES, volume_scores
from medprune.postprocess.components import keep_largest_component

NIFTI_SUFFIXES = (".nii.gz", ".nii")
LABEL_RGB = {1: (230, 60, 60), 2: (60, 200, 80), 3: (70, 120, 240)}  # RV, MYO, LV
OVERLAY_SLICES = 4
OVERLAY_ALPHA = 0.45


def nifti_stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def prepare_volume(path: Path, settings: dict) -> dict[str, Any]:
    """The volume as read (``image`` (z, y, x) float32, ``spacing`` (z, y, x) mm, ``nifti``
    for its header and affine) and the network's input: ``padded`` (z, y', x') float32 and
    ``size``, the (y, x) of the resampled slices inside the padding."""
    image, spacing, nii = read_nifti_volume(path)
    pre = settings["preprocess"]
    target = pre["target_spacing_mm"]
    resampled, _ = resample_slices(image, spacing, None if target is None else tuple(target), 1)
    low, high = pre["clip_percentiles"]
    net_input = normalize_intensity(resampled, low, high)
    padded = pad_volume(net_input, pre["size_multiple"])
    return {"image": image, "spacing": spacing, "nifti": nii, "padded": padded,
            "size": net_input.shape[1:]}  # fmt: skip


def predict_volume(network: Any, path: Path, settings: dict) -> dict[str, Any]:
    """``prepare_volume``'s entries plus ``labels`` (z, y, x) uint8 on the file's grid."""
    volume = prepare_volume(path, settings)
    labels = network.cardiac_labels(volume["padded"], volume["size"], volume["image"].shape[1:])
    if settings["postprocess"]["largest_component"]:
        labels = keep_largest_component(labels, ACDC_CLASSES)
    return {**volume, "labels": labels.astype(np.uint8)}


def overlay_slices(
    image: np.ndarray, labels: np.ndarray, count: int = OVERLAY_SLICES
) -> np.ndarray:
    """Up to ``count`` slices side by side (RGB uint8), evenly spread over the slices that
    hold a structure (all slices if none does), labels blended over the grey image."""
    with_labels = np.flatnonzero(labels.reshape(len(labels), -1).any(axis=1))
    pool = with_labels if with_labels.size else np.arange(len(labels))
    picks = pool[
        np.unique(np.linspace(0, len(pool) - 1, min(count, len(pool))).round().astype(int))
    ]
    lo, hi = np.percentile(image, [0.5, 99.5])
    grey = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)
    panels = []
    for k in picks:
        rgb = np.repeat((grey[k] * 255)[..., None], 3, axis=2)
        for cls, colour in LABEL_RGB.items():
            mask = labels[k] == cls
            rgb[mask] = (1 - OVERLAY_ALPHA) * rgb[mask] + OVERLAY_ALPHA * np.array(colour)
        panels.append(rgb.astype(np.uint8))
    gap = np.zeros((panels[0].shape[0], 4, 3), np.uint8)
    return np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)


def write_volume_outputs(out: Path, stem: str, result: dict) -> list[Path]:
    """``<stem>_seg.nii.gz`` (the input's affine and header, uint8) and ``<stem>_overlay.png``;
    each created exclusively (never over an existing file)."""
    nii = result["nifti"]
    header = nii.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1, 0)
    seg = nib.Nifti1Image(result["labels"].transpose(2, 1, 0), nii.affine, header)
    paths = [out / f"{stem}_seg.nii.gz", out / f"{stem}_overlay.png"]
    with new_files(paths):
        nib.save(seg, paths[0])
        Image.fromarray(overlay_slices(result["image"], result["labels"])).save(paths[1])
    return paths


def score_volume(result: dict, label_path: Path) -> dict[str, float]:
    """Dice and HD95 (mm) per structure and their means, on the volume's own grid."""
    true = read_label_volume(label_path).transpose(2, 1, 0)
    pred = result["labels"]
    if true.shape != pred.shape:
        raise ValueError(
            f"{label_path}: label shape {true.shape[::-1]} differs from the image's "
            f"{pred.shape[::-1]} (x, y, z)"
        )
    spacing = result["spacing"]
    if pred.shape[0] == 1:  # a single slice is scored in 2D, as in training
        return volume_scores(pred[0], true[0], spacing[1:], ACDC_CLASSES)
    return volume_scores(pred, true, spacing, ACDC_CLASSES)
