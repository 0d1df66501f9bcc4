"""Sliding-window inference in torch: run a tile-trained network on an image of any size.

The grid, padding and blending weights are ``medprune.inference.windows`` (see there); this
module runs torch modules on them, so val/test in training and ``python -m medprune.predict``
with a checkpoint give the same outputs, and ONNX Runtime (``sliding_window_numpy``) the same
up to float rounding.

When the whole (padded) image is one window the network output is returned as is, so the
result equals ``net(image)`` bitwise. Gradients flow when the caller has them enabled and
module modes (train/eval) are left alone: wrap the call in ``torch.no_grad()`` and call
``net.eval()`` for inference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from medprune.common.checks import check_choice, check_int, check_range
from medprune.inference.windows import (
    BLENDS,
    blend_weights_array,
    can_reflect,
    check_window,
    pad_plan,
    whole_image_window,
    window_starts,
)

__all__ = ["sliding_window_inference", "whole_image_outputs", "window_starts", "blend_weights"]

NetOutput = torch.Tensor | tuple[torch.Tensor, ...] | list[torch.Tensor]


def blend_weights(
    window: tuple[int, int], blend: str, device=None, dtype=torch.float32
) -> torch.Tensor:
    """(h, w) per-pixel weights of one window, peak 1 (``blend_weights_array`` as a tensor)."""
    return torch.from_numpy(blend_weights_array(window, blend)).to(device=device, dtype=dtype)


def _pad_to(image: torch.Tensor, window: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (N, C, H, W) centrally up to at least ``window``; return it and the (top, left) pads."""
    h, w = image.shape[-2:]
    plan = pad_plan(h, w, window)
    if not any(plan):
        return image, (0, 0)
    top, bottom, left, right = plan
    reflect = can_reflect(h, w, plan) and image.is_floating_point()
    mode = "reflect" if reflect else "constant"
    return F.pad(image, (left, right, top, bottom), mode=mode), (top, left)


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
    multiple = check_int(multiple, "multiple")
    size = check_window(window, multiple)
    overlap = check_range(overlap, "overlap", what="a fraction")
    check_choice(blend, "blend", BLENDS)
    batch_size = check_int(batch_size, "batch_size")

    n, height, width = image.shape[0], image.shape[-2], image.shape[-1]
    padded, (top, left) = _pad_to(image, size)
    ph, pw = padded.shape[-2:]
    crop = (slice(None), slice(None), slice(top, top + height), slice(left, left + width))

    if (ph, pw) == size:  # one window: nothing to blend
        raw = net(padded)
        outs = _as_tuple(raw, padded.shape, None)
        # contiguous: a crop of a padded pass is a strided view, which .view() refuses
        return _restore([o[crop].contiguous() for o in outs], raw)

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

    blended = [(acc / weight_sum)[crop].to(o.dtype).contiguous() for acc, o in zip(sums, outs)]
    return _restore(blended, like)


def whole_image_outputs(
    net: Callable[[torch.Tensor], NetOutput],
    image: torch.Tensor,
    window: int | None,
    overlap: float,
    multiple: int,
    batch_size: int = 4,
    blend: str = "gaussian",
) -> NetOutput:
    """The network on whole images (N, C, H, W): in one pass when they fit, else by blended
    sliding windows (``whole_image_window`` decides; the numpy executor decides the same)."""
    size = whole_image_window(image.shape[-2], image.shape[-1], window, multiple)
    if size is None:
        return net(image)
    return sliding_window_inference(
        net, image, size, overlap, blend=blend, multiple=multiple, batch_size=batch_size
    )
