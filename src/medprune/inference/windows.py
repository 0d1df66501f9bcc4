"""Sliding-window geometry, shared by the torch and the numpy (ONNX Runtime) executors.

Networks are trained on fixed-size tiles (and a U-Net needs sides divisible by
``2 ** (depth - 1)``), while images to predict are larger and of any size. An image is cut
into overlapping windows on a regular grid, each window goes through the network, and the
window outputs are blended back by a weighted average. All sizes are in pixels.

* Grid: along each axis the first window starts at 0 and the last ends exactly at the
  border; the windows in between are spread evenly, so neighbours overlap by at least
  ``overlap`` of the window (never less, sometimes a little more after rounding).
* Blending: ``"constant"`` weighs every pixel of a window equally; ``"gaussian"`` weighs
  window centres more than window borders (sigma = window / 8 per axis, as in nnU-Net),
  because a convolutional network sees less context near a window border and is less
  reliable there. Weights are floored at ``MIN_WEIGHT`` (relative to the peak 1.0) so an
  image corner, covered by a single window corner only, keeps a well-conditioned weight.
* Images smaller than the window are padded centrally (reflect, or zeros when an axis is too
  short to reflect) to the window size and the outputs cropped back.
* ``whole_image_window``: an image whose sides already suit the network and fit one window
  runs in one forward pass, identical to the network's own output.

This module is numpy-only: ``sliding_window_numpy`` runs any callable on numpy batches (an
ONNX Runtime session); ``medprune.inference.sliding_window`` runs torch modules on the same
grid with the same weights.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np

from medprune.common.checks import check_choice, check_int, check_ints, check_range

__all__ = [
    "BLENDS",
    "blend_weights_array",
    "check_window",
    "pad_plan",
    "sliding_window_numpy",
    "whole_image_window",
    "window_starts",
]

MIN_WEIGHT = 1e-3  # floor of the Gaussian weights, relative to its peak of 1
BLENDS = ("constant", "gaussian")
_WINDOW = "a positive integer or a (height, width) pair of them, in px"


def check_window(window, multiple: int) -> tuple[int, int]:
    """``window`` as (height, width) in pixels, each a positive multiple of ``multiple``."""
    if isinstance(window, numbers.Integral) and not isinstance(window, bool):
        window = (check_int(window, "window", what=_WINDOW),) * 2
    height, width = check_ints(window, "window", 2, what=_WINDOW)
    size = (height, width)
    if any(w % multiple for w in size):
        raise ValueError(f"window {size} must be divisible by multiple={multiple} on both axes")
    return size


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start offsets along one axis of length ``size`` >= ``window``, first 0, last size-window.

    The stride is at most ``window * (1 - overlap)`` (at least 1 px), and the starts are spread
    evenly between the two ends, so every pixel is covered and consecutive windows overlap by
    at least ``overlap``.
    """
    if size < window:
        raise ValueError(f"size must be >= window, got size={size} and window={window}")
    span = size - window
    if span == 0:
        return [0]
    stride = max(1, math.floor(window * (1.0 - overlap)))
    n = math.ceil(span / stride) + 1
    return [round(i * span / (n - 1)) for i in range(n)]


def blend_weights_array(window: tuple[int, int], blend: str) -> np.ndarray:
    """(h, w) float64 per-pixel weights of one window, peak 1; see the module docstring."""
    check_choice(blend, "blend", BLENDS)
    if blend == "constant":
        return np.ones(window, dtype=np.float64)
    axes = []
    for n in window:
        pos = np.arange(n, dtype=np.float64) - (n - 1) / 2
        axes.append(np.exp(-0.5 * (pos / (n / 8)) ** 2))
    weights = np.outer(axes[0], axes[1])
    return np.maximum(weights / weights.max(), MIN_WEIGHT)


def pad_plan(height: int, width: int, window: tuple[int, int]) -> tuple[int, int, int, int]:
    """Central padding (top, bottom, left, right) that brings an image up to ``window``."""
    dh, dw = max(0, window[0] - height), max(0, window[1] - width)
    return dh // 2, dh - dh // 2, dw // 2, dw - dw // 2


def can_reflect(height: int, width: int, pads: tuple[int, int, int, int]) -> bool:
    """Reflect padding needs every pad to be shorter than the axis it mirrors."""
    top, bottom, left, right = pads
    return max(left, right) < width and max(top, bottom) < height


def whole_image_window(
    height: int, width: int, window: int | None, multiple: int
) -> tuple[int, int] | None:
    """How a whole image goes through the network: ``None`` for one pass as it is (its sides
    are multiples of ``multiple``, at least two of them, the smallest an exported U-Net takes,
    and it fits one ``window``); otherwise the window size for ``sliding_window_*``: ``window``,
    or with ``window=None`` the image's own size rounded up to the size rule (one padded pass)."""
    fits = height % multiple == 0 and width % multiple == 0 and min(height, width) >= 2 * multiple
    if fits and (window is None or max(height, width) <= window):
        return None
    if window is None:
        return tuple(max(2, -(-n // multiple)) * multiple for n in (height, width))
    return (window, window)


def sliding_window_numpy(
    run: Callable[[np.ndarray], Sequence[np.ndarray]],
    image: np.ndarray,
    window: int | tuple[int, int],
    overlap: float = 0.25,
    blend: str = "gaussian",
    multiple: int = 1,
    batch_size: int = 4,
) -> list[np.ndarray]:
    """Run ``run`` on overlapping windows of ``image`` (N, C, H, W) and blend its outputs.

    ``run`` maps a float32 (B, C, h, w) batch to a list of (B, K, h, w) arrays (an ONNX
    Runtime session's outputs); the result is that list at (N, K, H, W), float32. Same grid,
    padding and weights as ``medprune.inference.sliding_window.sliding_window_inference``.
    """
    image = np.asarray(image)
    if image.ndim != 4 or 0 in image.shape:
        raise ValueError(f"image must be a non-empty (N, C, H, W) array, got {image.shape}")
    multiple = check_int(multiple, "multiple")
    size = check_window(window, multiple)
    overlap = check_range(overlap, "overlap", what="a fraction")
    batch_size = check_int(batch_size, "batch_size")
    n, height, width = image.shape[0], image.shape[-2], image.shape[-1]
    pads = pad_plan(height, width, size)
    top, bottom, left, right = pads
    if any(pads):
        mode = "reflect" if can_reflect(height, width, pads) else "constant"
        image = np.pad(image, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=mode)
    ph, pw = image.shape[-2:]
    crop = (slice(None), slice(None), slice(top, top + height), slice(left, left + width))
    if (ph, pw) == size:  # one window: nothing to blend
        return [np.asarray(o, dtype=np.float32)[crop] for o in run(image)]
    weights = blend_weights_array(size, blend).astype(np.float32)
    starts = [
        (y, x)
        for y in window_starts(ph, size[0], overlap)
        for x in window_starts(pw, size[1], overlap)
    ]
    sums: list[np.ndarray] = []
    weight_sum = np.zeros((ph, pw), dtype=np.float32)
    for first in range(0, len(starts), batch_size):
        chunk = starts[first : first + batch_size]
        batch = np.concatenate([image[..., y : y + size[0], x : x + size[1]] for y, x in chunk])
        outs = [np.asarray(o, dtype=np.float32) for o in run(np.ascontiguousarray(batch))]
        if not sums:
            sums = [np.zeros((n, o.shape[1], ph, pw), dtype=np.float32) for o in outs]
        for j, (y, x) in enumerate(chunk):
            region = (Ellipsis, slice(y, y + size[0]), slice(x, x + size[1]))
            weight_sum[region] += weights
            for acc, o in zip(sums, outs):
                acc[region] += o[j * n : (j + 1) * n] * weights
    return [(acc / weight_sum)[crop] for acc in sums]
