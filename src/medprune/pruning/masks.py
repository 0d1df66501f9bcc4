"""Unstructured magnitude masks: the one place where medprune decides which weights go.

``magnitude_masks`` is called by the training callback, by ``prune.py`` and by the tests, so
"global" and "layerwise" mean the same thing everywhere. Counts follow
``torch.nn.utils.prune``: ``round(sparsity * n)`` weights with the smallest |w| are pruned,
so global masks equal ``prune.global_unstructured(..., L1Unstructured)`` on the same weights.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from medprune.common.checks import check_choice, check_range

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
    return check_range(sparsity, name)


def _pruned_count(sparsity: float, numel: int) -> int:
    # Python's round (half to even), exactly as torch.nn.utils.prune computes the amount.
    return round(sparsity * numel)


def magnitude_masks(
    params: Mapping[str, torch.Tensor],
    sparsity: float,
    scope: str,
    previous: Mapping[str, torch.Tensor] | None = None,
    min_density: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Boolean keep-masks (True = kept) pruning the smallest-magnitude weights.

    ``scope="global"`` ranks all weights together (one network-wide threshold, so layers end
    at different sparsities); ``scope="layerwise"`` prunes every tensor to ``sparsity``.
    Weights pruned in ``previous`` masks rank below every other weight, so masks only grow
    sparser as the target rises (no regrowth, even among tied zeros). ``min_density`` keeps
    at least ``ceil(min_density * n)`` weights in every tensor; under ``global`` the weights it
    saves are pruned elsewhere, so the total still meets ``sparsity`` exactly.
    """
    sparsity = check_sparsity(sparsity)
    check_choice(scope, "scope", SCOPES)
    if not params:
        raise ValueError("magnitude_masks: params is empty, nothing to prune")
    check_density_floor(params, sparsity, scope, min_density)
    with torch.no_grad():
        scores = {n: _scores(w, (previous or {}).get(n)) for n, w in params.items()}
        floors = {n: _min_kept(min_density, s.numel()) for n, s in scores.items()}
        if scope == "layerwise":
            return {
                n: _keep_mask(
                    s, min(_pruned_count(sparsity, s.numel()), s.numel() - floors[n])
                ).view_as(params[n])
                for n, s in scores.items()
            }
        return _global_masks(scores, params, sparsity, floors)


def _scores(weight: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
    magnitude = weight.detach().abs().flatten().float()
    if previous is None:
        return magnitude
    return torch.where(previous.flatten().to(magnitude.device), magnitude, -1.0)


def _min_kept(min_density: float, numel: int) -> int:
    return min(numel, math.ceil(min_density * numel - 1e-9)) if min_density > 0 else 0


def _global_masks(scores, params, sparsity, floors) -> dict[str, torch.Tensor]:
    """One threshold over all tensors; a tensor that would fall below its floor keeps its
    floor's best weights and drops out of the ranking, and the rest is ranked again."""
    total = sum(s.numel() for s in scores.values())
    to_prune = _pruned_count(sparsity, total)
    floored: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    while True:
        free = [n for n in scores if n not in floored]
        if not free:
            break
        budget = max(0, to_prune - sum(scores[n].numel() - floors[n] for n in floored))
        keep = _keep_mask(torch.cat([scores[n] for n in free]), budget)
        masks, start = {}, 0
        for n in free:
            masks[n] = keep[start : start + scores[n].numel()]
            start += scores[n].numel()
        below = [n for n in free if int(torch.count_nonzero(masks[n])) < floors[n]]
        if not below:
            break
        for n in below:
            floored[n] = _keep_mask(scores[n], scores[n].numel() - floors[n])
    masks.update(floored)
    return {n: masks[n].view_as(params[n]) for n in params}


def check_density_floor(
    params: Mapping[str, torch.Tensor], sparsity: float, scope: str, min_density: float
) -> None:
    """Fail before training when ``min_density`` makes ``sparsity`` unreachable."""
    check_range(min_density, "min_density", high_open=False, what="a fraction")
    if scope == "layerwise":
        limit = 1.0 - min_density
    else:
        total = sum(w.numel() for w in params.values())
        limit = 1.0 - sum(_min_kept(min_density, w.numel()) for w in params.values()) / total
    if sparsity > limit + 1e-12:
        raise ValueError(
            f"sparsity={sparsity} is unreachable with min_density={min_density}: at most "
            f"{limit:.6f} of these weights can be pruned ({scope})"
        )


def _keep_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Prune exactly the ``k`` lowest scores. A selection (``kthvalue``, linear time) rather
    than ``topk``: with millions of weights and k near n, topk is ~10x slower. Among weights
    tied at the threshold the first ones in order are pruned."""
    n = scores.numel()
    if k <= 0:
        return torch.ones_like(scores, dtype=torch.bool)
    if k >= n:
        return torch.zeros_like(scores, dtype=torch.bool)
    threshold = torch.kthvalue(scores, k).values
    keep = scores > threshold
    surplus = n - int(torch.count_nonzero(keep)) - k  # ties pruned beyond k: keep the last
    if surplus > 0:
        tied = torch.nonzero(scores == threshold).flatten()
        keep[tied[-surplus:]] = True
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
