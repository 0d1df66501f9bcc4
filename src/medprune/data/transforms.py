"""Albumentations pipelines applied to an image and its label map together (H&E tiles, MRI slices).

For nuclei only exact pixel-grid transforms touch the instance map (flips, 90-degree
rotations), so targets computed afterwards stay consistent; cardiac label maps go through
affine and elastic warps with nearest-neighbour interpolation, so they keep their class values.
Pipelines are ``SeededCompose``: they follow ``seed_everything``, per rank and loader worker.
"""

from __future__ import annotations

import math

import albumentations as A

from medprune.data.seeding import SeededCompose


def nuclei_train_transform(crop: int | None = None, augment: bool = True) -> A.Compose | None:
    """Random ``crop`` x ``crop`` px patches (None: whole tiles), then if ``augment`` flips,
    rot90 and mild colour jitter (stain and scanner variation). None when there is nothing to do.
    """
    steps: list[A.BasicTransform] = [A.RandomCrop(crop, crop)] if crop else []
    if augment:
        steps += [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=12, val_shift_limit=8, p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
        ]
    return SeededCompose(steps) if steps else None


def cardiac_train_transform(augment: bool = True, crop: int | None = None) -> A.Compose | None:
    """MRI slices with their label map, the image mapped to [0, 1] (``AcdcSlices`` does it:
    fill 0 is the volume's darkest value). If ``augment``: affine (rotation, scale, shift) and
    occasional elastic deformation of the whole slice, labels warped with nearest-neighbour.
    If ``crop``: a random ``crop`` x ``crop`` px window, padded where the slice is smaller, so
    over an epoch the network sees the whole field of view it is evaluated on, not only its
    centre. Then if ``augment``: intensity changes (contrast, brightness, noise), the variation
    between scanners and patients. None when there is nothing to do."""
    steps: list[A.BasicTransform] = []
    if augment:
        steps += [
            A.Affine(rotate=(-15, 15), scale=(0.85, 1.15), translate_percent=(-0.05, 0.05), p=0.7),
            A.ElasticTransform(alpha=20, sigma=5, p=0.2),
        ]
    if crop:
        steps += [
            A.PadIfNeeded(crop, crop, border_mode=0, fill=0, fill_mask=0),
            A.RandomCrop(crop, crop),
        ]
    if augment:
        steps += [
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.15, p=0.5),
            A.GaussNoise(std_range=(0.01, 0.05), p=0.3),
        ]
    return SeededCompose(steps) if steps else None


def he_patch_margin(patch: int, augment: bool) -> int:
    """Side (px) of the window cut from a tile so that ``he_train_transform`` can rotate and
    scale it and still crop a ``patch`` px centre without empty corners: a 10° rotation of a
    square needs cos 10° + sin 10° = 1.16x, and zooming out to 0.95x needs 1/0.95 more."""
    return math.ceil(patch * 1.25) if augment else patch


def he_train_transform(patch: int, augment: bool = True) -> A.Compose:
    """Real H&E training patches from a ``he_patch_margin`` window: if ``augment``, flips and
    90-degree rotations (slides have no orientation), a small affine warp (±10°, 0.95-1.1x)
    and occasional elastic deformation (instance maps warped nearest-neighbour, so ids
    survive; targets are computed afterwards), then the centre ``patch`` px, then stain
    variation in H&E space (albumentations' ``HEStain``: stain vectors from a random preset,
    concentrations scaled 0.7-1.3 and shifted ±0.1; p 0.7) and brightness/contrast."""
    steps: list[A.BasicTransform] = []
    if augment:
        steps += [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.Affine(rotate=(-10, 10), scale=(0.95, 1.1), p=0.5),
            A.ElasticTransform(alpha=15, sigma=5, p=0.2),
        ]
    steps.append(A.CenterCrop(patch, patch))
    if augment:
        steps += [
            A.HEStain(
                method="random_preset",
                intensity_scale_range=(0.7, 1.3),  # paler and darker hematoxylin, as between
                intensity_shift_range=(-0.1, 0.1),  # labs and scanners (and vesicular nuclei)
                p=0.7,
            ),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
        ]
    return SeededCompose(steps)
