"""Sliding-window inference: run a tile-trained network on an image of any size.

Networks are trained on fixed-size tiles (and a U-Net needs sizes divisible by
``2 ** (depth - 1)``), while test images are larger and of arbitrary size. The image is cut
into overlapping windows on a regular grid, each window goes through the network, and the
window outputs are blended back by a weighted average. All sizes are in pixels.

* Grid: along each axis the first window starts at 0 and the last ends exactly at the
  border; the windows in between are spread evenly, so neighbours overlap by at least
  ``overlap`` of the window (never less, sometimes a little more after rounding).
* Blending: ``"constant"`` weighs every pixel of a window equally; ``"gaussian"`` weighs
  window centres more than window borders (sigma = window / 8 per axis, as in nnU-Net),
  because a convolutional network sees less context near a window border and is less
  reliable there. Weights are floored at ``_MIN_WEIGHT`` (relative to the peak 1.0) so an
  image corner, covered by a single window corner only, keeps a well-conditioned weight.
* Images smaller than the window are padded (reflect, or zeros when an axis is too short to
  reflect) to the window size and the outputs cropped back.

When the whole (padded) image is one window the network output is returned as is, so the
result equals ``net(image)`` bitwise. Gradients flow when the caller has them enabled and
module modes (train/eval) are left alone: wrap the call in ``torch.no_grad()`` and call
``net.eval()`` for inference.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["sliding_window_inference", "window_starts", "blend_weights"]

NetOutput = torch.Tensor | tuple[torch.Tensor, ...] | list[torch.Tensor]

_MIN_WEIGHT = 1e-3  # floor of the Gaussian weights, relative to its peak of 1
_BLENDS = ("constant", "gaussian")


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_window(window, multiple: int) -> tuple[int, int]:
    """``window`` as (height, width) in pixels, each a positive multiple of ``multiple``."""
    if isinstance(window, numbers.Integral) and not isinstance(window, bool):
        window = (window, window)
    if (
        not isinstance(window, Sequence)
        or len(window) != 2
        or any(isinstance(w, bool) or not isinstance(w, numbers.Integral) for w in window)
        or any(w < 1 for w in window)
    ):
        raise ValueError(f"window must be a positive int or a (height, width) pair, got {window!r}")
    size = (int(window[0]), int(window[1]))
    if any(w % multiple for w in size):
        raise ValueError(f"window {size} must be divisible by multiple={multiple} on both axes")
    return size


def _check_overlap(overlap) -> float:
    if (
        isinstance(overlap, bool)
        or not isinstance(overlap, numbers.Real)
        or not 0.0 <= float(overlap) < 1.0
    ):
        raise ValueError(f"overlap must be a fraction in [0, 1), got {overlap!r}")
    return float(overlap)


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


def blend_weights(
    window: tuple[int, int], blend: str, device=None, dtype=torch.float32
) -> torch.Tensor:
    """(h, w) per-pixel weights of one window, peak 1; see the module docstring."""
    if blend not in _BLENDS:
        raise ValueError(f"blend must be one of {_BLENDS}, got {blend!r}")
    if blend == "constant":
        return torch.ones(window, device=device, dtype=dtype)
    axes = []
    for n in window:
        pos = torch.arange(n, device=device, dtype=torch.float64) - (n - 1) / 2
        axes.append(torch.exp(-0.5 * (pos / (n / 8)) ** 2))
    weights = torch.outer(axes[0], axes[1])
    weights = (weights / weights.max()).clamp_min(_MIN_WEIGHT)
    return weights.to(dtype)


def _pad_to(image: torch.Tensor, window: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (N, C, H, W) centrally up to at least ``window``; return it and the (top, left) pads."""
    h, w = image.shape[-2:]
    dh, dw = max(0, window[0] - h), max(0, window[1] - w)
    if dh == 0 and dw == 0:
        return image, (0, 0)
    top, left = dh // 2, dw // 2
    pads = (left, dw - left, top, dh - top)  # F.pad order: last axis first
    # Reflect padding needs every pad to be shorter than the axis it mirrors.
    reflect = max(left, dw - left) < w and max(top, dh - top) < h
    mode = "reflect" if reflect and image.is_floating_point() else "constant"
    return F.pad(image, pads, mode=mode), (top, left)


def _as_tuple(out, expected_shape: tuple[int, ...], n_outputs: int | None) -> tuple:
    """Validate one network output against (batch, *, h, w); return it as a tuple of tensors."""
    outs = (out,) if isinstance(out, torch.Tensor) else out
    if not isinstance(outs, (tuple, list)) or not all(isinstance(o, torch.Tensor) for o in outs):
        raise ValueError(
            f"net must return a tensor or a tuple/list of tensors, got {type(out).__name__}"
        )
    if n_outputs is not None and len(outs) != n_outputs:
        raise ValueError(f"net returned {len(outs)} outputs, earlier calls returned {n_outputs}")
    for i, o in enumerate(outs):
        if o.ndim != 4 or o.shape[0] != expected_shape[0] or o.shape[-2:] != expected_shape[-2:]:
            raise ValueError(
                f"net output {i} must have shape (batch={expected_shape[0]}, K, "
                f"{expected_shape[-2]}, {expected_shape[-1]}) for a window batch of shape "
                f"{tuple(expected_shape)}, got {tuple(o.shape)}"
            )
        if not o.is_floating_point():
            raise ValueError(f"net output {i} must be floating point to blend, got {o.dtype}")
    return tuple(outs)


def _restore(outs: Sequence[torch.Tensor], like) -> NetOutput:
    """Give the blended outputs the container type the network returned."""
    if isinstance(like, torch.Tensor):
        return outs[0]
    return list(outs) if isinstance(like, list) else tuple(outs)


def sliding_window_inference(
    net: Callable[[torch.Tensor], NetOutput],
    image: torch.Tensor,
    window: int | tuple[int, int],
    overlap: float = 0.25,
    blend: str = "gaussian",
    multiple: int = 1,
    batch_size: int = 4,
) -> NetOutput:
    """Run ``net`` on overlapping windows of ``image`` (N, C, H, W) and blend the outputs.

    ``net`` maps (B, C, h, w) to a tensor (B, K, h, w) or a tuple/list of such tensors (the
    two-branch nuclei model returns ``(seg_logits, distance)``); the result has the same
    structure at (N, K, H, W) and in the network's output dtype (blending itself runs in at
    least float32). ``window`` is in pixels, an int or (height, width), and must be divisible
    by ``multiple`` (e.g. 16 for a depth-5 U-Net). ``overlap`` is the minimum fraction of a
    window shared with its neighbour. ``batch_size`` windows go through ``net`` per call,
    each holding all N images, so one forward sees up to ``batch_size * N`` samples.
    """
    if not callable(net):
        raise ValueError(f"net must be callable, got {type(net).__name__}")
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or 0 in image.shape:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a non-empty (N, C, H, W) tensor, got {shape}")
    multiple = _check_int("multiple", multiple, 1)
    size = _check_window(window, multiple)
    overlap = _check_overlap(overlap)
    if blend not in _BLENDS:
        raise ValueError(f"blend must be one of {_BLENDS}, got {blend!r}")
    batch_size = _check_int("batch_size", batch_size, 1)

    n, height, width = image.shape[0], image.shape[-2], image.shape[-1]
    padded, (top, left) = _pad_to(image, size)
    ph, pw = padded.shape[-2:]
    crop = (slice(None), slice(None), slice(top, top + height), slice(left, left + width))

    if (ph, pw) == size:  # one window: nothing to blend
        raw = net(padded)
        outs = _as_tuple(raw, padded.shape, None)
        return _restore([o[crop] for o in outs], raw)

    starts = [
        (y, x)
        for y in window_starts(ph, size[0], overlap)
        for x in window_starts(pw, size[1], overlap)
    ]
    like = None
    sums: list[torch.Tensor] = []
    weights = weight_sum = None
    for first in range(0, len(starts), batch_size):
        chunk = starts[first : first + batch_size]
        batch = torch.cat([padded[..., y : y + size[0], x : x + size[1]] for y, x in chunk])
        raw = net(batch)
        outs = _as_tuple(raw, batch.shape, None if like is None else len(sums))
        if like is None:
            like = raw
            acc_dtype = torch.float32
            for o in outs:
                acc_dtype = torch.promote_types(acc_dtype, o.dtype)
            device = outs[0].device
            weights = blend_weights(size, blend, device=device, dtype=acc_dtype)
            weight_sum = torch.zeros((ph, pw), device=device, dtype=acc_dtype)
            sums = [
                torch.zeros((n, o.shape[1], ph, pw), device=device, dtype=acc_dtype) for o in outs
            ]
        for i, (acc, o) in enumerate(zip(sums, outs)):
            if o.shape[1] != acc.shape[1]:
                raise ValueError(
                    f"net output {i} has {o.shape[1]} channels, earlier calls gave {acc.shape[1]}"
                )
        for j, (y, x) in enumerate(chunk):
            region = (Ellipsis, slice(y, y + size[0]), slice(x, x + size[1]))
            weight_sum[region] += weights
            for acc, o in zip(sums, outs):
                acc[region] += o[j * n : (j + 1) * n] * weights

    blended = [(acc / weight_sum)[crop].to(o.dtype) for acc, o in zip(sums, outs)]
    return _restore(blended, like)
