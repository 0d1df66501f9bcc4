"""Unstructured magnitude masks: the one place where medprune decides which weights go.

``magnitude_masks`` is called by the training callback, by ``prune.py`` and by the tests, so
"global" and "layerwise" mean the same thing everywhere. Counts follow
``torch.nn.utils.prune``: ``round(sparsity * n)`` weights with the smallest |w| are pruned,
so global masks equal ``prune.global_unstructured(..., L1Unstructured)`` on the same weights.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence

import torch
from torch import nn

SCOPES = ("global", "layerwise")
#: Module types whose ``weight`` is prunable by default; biases and norm parameters never are.
PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
    """Sparsity is a fraction of weights removed: 1.0 would delete the whole network."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise TypeError(f"{name}={sparsity!r}: expected a number in [0, 1)")
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"{name}={sparsity!r}: expected a value in [0, 1)")
    return float(sparsity)


def _pruned_count(sparsity: float, numel: int) -> int:
    # Python's round (half to even), exactly as torch.nn.utils.prune computes the amount.
    return round(sparsity * numel)


def magnitude_masks(
    params: Mapping[str, torch.Tensor], sparsity: float, scope: str
) -> dict[str, torch.Tensor]:
    """Boolean keep-masks (True = kept) pruning the smallest-magnitude weights.

    ``scope="global"`` ranks all weights together (one network-wide threshold, so layers end
    at different sparsities); ``scope="layerwise"`` prunes every tensor to ``sparsity``.
    Already-zero weights have the smallest magnitude, so masks only grow sparser as the
    target rises.
    """
    sparsity = check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ValueError(f"scope={scope!r}: expected one of {', '.join(SCOPES)}")
    if not params:
        raise ValueError("magnitude_masks: params is empty, nothing to prune")
    with torch.no_grad():
        if scope == "layerwise":
            return {
                name: _keep_mask(w.detach().abs().flatten(), sparsity).view_as(w)
                for name, w in params.items()
            }
        flat = torch.cat([w.detach().abs().flatten().float() for w in params.values()])
        keep = _keep_mask(flat, sparsity)
        masks, start = {}, 0
        for name, w in params.items():
            masks[name] = keep[start : start + w.numel()].view_as(w)
            start += w.numel()
        return masks


def _keep_mask(magnitudes: torch.Tensor, sparsity: float) -> torch.Tensor:
    keep = torch.ones_like(magnitudes, dtype=torch.bool)
    k = _pruned_count(sparsity, magnitudes.numel())
    if k:
        keep[torch.topk(magnitudes, k, largest=False).indices] = False
    return keep


def prunable_parameters(
    module: nn.Module, include: Sequence[str] = ("*",), exclude: Sequence[str] = ()
) -> dict[str, nn.Parameter]:
    """Weights of conv/linear layers whose parameter name (e.g. ``seg.encoder.0.0.weight``)
    matches an ``include`` glob and no ``exclude`` glob, in module order."""
    selected = {}
    for module_name, sub in module.named_modules():
        if not isinstance(sub, PRUNABLE_TYPES):
            continue
        name = f"{module_name}.weight" if module_name else "weight"
        if any(fnmatch.fnmatchcase(name, p) for p in include) and not any(
            fnmatch.fnmatchcase(name, p) for p in exclude
        ):
            selected[name] = sub.weight
    return selected


def sparsity_stats(params: Mapping[str, torch.Tensor]) -> dict[str, float | int]:
    """Measured from the weights themselves: zeros are what counts, not what a mask claims."""
    total = sum(w.numel() for w in params.values())
    nonzero = sum(int(torch.count_nonzero(w)) for w in params.values())
    return {
        "params": total,
        "nonzero": nonzero,
        "sparsity": 1.0 - nonzero / total if total else 0.0,
    }
