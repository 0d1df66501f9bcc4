"""Albumentations pipelines for H&E tiles; applied to the image and its instance map together.

Only label-preserving geometric transforms touch the instance map (flips, 90-degree
rotations are exact on a pixel grid), so targets computed afterwards stay consistent.
"""

from __future__ import annotations

import albumentations as A


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
    return A.Compose(steps) if steps else None
