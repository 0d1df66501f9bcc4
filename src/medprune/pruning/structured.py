"""Structured (channel) pruning: remove whole filters so the network is physically smaller.

Unstructured masks (``medprune.pruning.masks``) zero weights but keep every tensor's shape, so
CPU inference is no faster. Removing a conv's output channel must also remove the matching
BatchNorm entries and the input slices of every layer that reads the channel: across U-Net
skip concatenations, max-pooling and transposed convs that is one coupled group. Torch-Pruning's
DependencyGraph (DepGraph, Fang et al. 2023) finds the groups; this module ranks and removes
channels.

What ``ratio`` means: a *prunable channel* is one output channel of a group's root conv (each
coupled group counted once; output heads excluded). ``ranking="uniform"`` removes ``ratio`` of
each group's channels (it keeps ``floor(C * (1 - ratio))``); ``ranking="global"`` removes
``ratio`` of all prunable channels in the network, picked by one ranking across layers, so
layers lose different fractions; ``ranking="cost"`` does the same with each channel's score
divided by the parameters it holds (relative to the network's mean channel), so channels of
the wide deep layers, where most parameters are, go first. Either way each layer keeps at least
``ceil(C * (1 - max_layer_ratio))`` and ``min_channels`` (never fewer than one channel).
Parameters shrink faster than channels (a 3x3 conv whose inputs and outputs both halve keeps a
quarter of its weights).

The channel selection is done here rather than by ``tp.pruner.BasePruner`` because, with one
pruning step, BasePruner skips a group entirely instead of capping it when the ratio would
empty it (``max_pruning_ratio`` does not clip), computes ``int(C * (1 - ratio))`` without a
float guard (``10 * (1 - 0.9)`` floors to 0), and its tracing leaves the model in eval mode.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch_pruning as tp
from torch import nn

from medprune.common.checks import check_choice, check_int, check_range
from medprune.inference.modes import eval_mode

#: Norm degree of each magnitude criterion, for ``tp.importance.GroupMagnitudeImportance``.
IMPORTANCES = {"l1": 1, "l2": 2}
RANKINGS = ("global", "cost", "uniform")
#: Every conv and transposed conv, 1d to 3d (torch's common base class).
_CONV = nn.modules.conv._ConvNd
# Keeps floor(C * (1 - ratio)) from losing a channel to float error: 10 * (1 - 0.9) = 0.99999...
_EPS = 1e-6


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def channel_widths(net: nn.Module) -> dict[str, int]:
    """``{module name: out_channels}`` of every conv and transposed conv, in module order."""
    return {name: m.out_channels for name, m in net.named_modules() if isinstance(m, _CONV)}


def output_layers(net: nn.Module) -> list[nn.Module]:
    """The output heads (modules named ``head`` or ``*.head``): their channel count is the
    number of classes or regression maps, so it must never change."""
    heads = [m for name, m in net.named_modules() if name == "head" or name.endswith(".head")]
    if not heads:
        raise ValueError(
            f"structured pruning needs the output layers: {type(net).__name__} has no module "
            f"named 'head' or '*.head' whose output channels must be kept"
        )
    return heads


def channels_to_keep(
    width: int,
    ratio: float,
    max_layer_ratio: float = 0.95,
    round_to: int | None = None,
    min_channels: int = 1,
) -> int:
    """Channels a layer of ``width`` keeps when ``ratio`` of them is to be removed."""
    floor = _min_keep(width, max_layer_ratio, min_channels)
    return _round_keep(max(math.floor(width * (1 - ratio) + _EPS), floor), width, floor, round_to)


def _min_keep(width: int, max_layer_ratio: float, min_channels: int = 1) -> int:
    """The per-layer floor: ``min_channels`` (a narrower layer keeps all it has), and at most
    ``max_layer_ratio`` of the layer in one call."""
    return max(min(min_channels, width), 1, math.ceil(width * (1 - max_layer_ratio) - _EPS))


def _round_keep(keep: int, width: int, min_keep: int, round_to: int | None) -> int:
    """Round down to a multiple of ``round_to`` (SIMD-friendly widths) without breaking the
    per-layer floor; a layer that cannot reach a multiple stays as it is."""
    if not round_to or round_to == 1:
        return keep
    down = keep - keep % round_to
    if down >= min_keep:
        return down
    return min(width, math.ceil(min_keep / round_to) * round_to)


def check_structured_arguments(
    ratio, importance, ranking, min_channels, round_to=None, max_layer_ratio=1.0
) -> None:
    """The settings of channel pruning, checked by ``prune_channels`` and, naming the keys
    (``pruning.step_ratio`` ...), by prune.py before anything is read."""
    check_range(ratio, "ratio", low_open=True, what="a fraction of channels")
    check_range(
        max_layer_ratio,
        "max_layer_ratio",
        low_open=True,
        high_open=False,
        what="a fraction of channels",
    )
    check_choice(importance, "importance", sorted(IMPORTANCES))
    check_choice(ranking, "ranking", RANKINGS)
    if round_to is not None:
        check_int(round_to, "round_to")
    check_int(min_channels, "min_channels")


def _ignored_modules(net: nn.Module, ignored: Iterable[nn.Module | str] | None) -> list:
    """Heads plus the user's modules (objects or qualified names), each with its submodules."""
    roots = list(output_layers(net))
    names = dict(net.named_modules())
    for item in ignored or []:
        if isinstance(item, str):
            if item not in names:
                raise ValueError(
                    f"ignored={item!r}: no such module in {type(net).__name__} "
                    f"(names look like {', '.join(list(names)[1:4])}, ...)"
                )
            item = names[item]
        if not isinstance(item, nn.Module):
            raise ValueError(f"ignored: expected modules or module names, got {item!r}")
        roots.append(item)
    return [sub for root in roots for sub in root.modules()]


def _build_graph(net: nn.Module, example_input: torch.Tensor) -> tp.DependencyGraph:
    """Trace with autograd (Torch-Pruning's requirement), even under ``torch.no_grad`` or with
    frozen parameters; ``forward_fn`` passes the tensor whole, where Torch-Pruning would try
    ``net(*example_input)`` first and unpack the batch. Tuple outputs are traced as they are."""
    for p in net.parameters():
        p.requires_grad_(True)
    with torch.enable_grad():
        return tp.DependencyGraph().build_dependency(
            net, example_inputs=example_input, forward_fn=lambda model, x: model(x), verbose=False
        )


def _channel_cost(group) -> float:
    """Parameters one channel of the group holds: its slice of every coupled weight (output
    slices of the producing conv and norm, input slices of every consumer, across skip
    concatenations), plus the producer's bias."""
    cost = 0.0
    for dep, idxs in group:
        module, handler = dep.target.module, dep.handler.__name__
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or not idxs or weight.dim() == 0:
            continue
        transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)
        if handler == "prune_out_channels":
            cost += weight.numel() / weight.shape[1 if transposed else 0]
            cost += 1.0 if getattr(module, "bias", None) is not None else 0.0
        elif handler == "prune_in_channels" and weight.dim() > 1:
            cost += weight.numel() / weight.shape[0 if transposed else 1]
    return cost


def _scored_groups(graph: tp.DependencyGraph, ignored: list, p: int) -> list:
    """``[(root module, per-channel score, per-channel parameter cost)]``; scores are
    Torch-Pruning's group magnitude (mean over the coupled layers of the p-th power norms),
    divided by the group's mean so layers of different size and fan-in compare in a global
    ranking."""
    scorer = tp.importance.GroupMagnitudeImportance(p=p)
    roots = (tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR)
    scored = []
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=roots):
        with torch.no_grad():
            scores = scorer(group)
        if scores is not None:
            root = group[0].dep.target.module
            scored.append((root, scores.detach().cpu(), _channel_cost(group)))
    return scored


def _global_counts(widths: list[int], scores: list, ratio: float, caps: list[int]) -> list[int]:
    """How many channels each group loses when the ``ratio`` least important channels of the
    whole network go, skipping channels of groups already at their cap."""
    total = sum(widths)
    to_remove = total - math.floor(total * (1 - ratio) + _EPS)
    owner = torch.cat([torch.full((w,), g) for g, w in enumerate(widths)])
    order = torch.argsort(torch.cat(scores), stable=True)
    counts = [0] * len(widths)
    removed = 0
    for g in owner[order].tolist():
        if removed == to_remove:
            break
        if counts[g] < caps[g]:
            counts[g] += 1
            removed += 1
    return counts


def _removal_counts(scored, ratio, ranking, max_layer_ratio, round_to, min_channels) -> list[int]:
    widths = [len(scores) for _, scores, _ in scored]
    if ranking == "uniform":
        return [
            w - channels_to_keep(w, ratio, max_layer_ratio, round_to, min_channels) for w in widths
        ]
    floors = [_min_keep(w, max_layer_ratio, min_channels) for w in widths]
    scores = [s for _, s, _ in scored]
    if ranking == "cost":  # importance per parameter: expensive channels rank lower
        mean_cost = sum(c * w for (_, _, c), w in zip(scored, widths)) / sum(widths)
        scores = [s * mean_cost / max(c, 1e-12) for s, (_, _, c) in zip(scores, scored)]
    counts = _global_counts(widths, scores, ratio, [w - f for w, f in zip(widths, floors)])
    return [w - _round_keep(w - n, w, f, round_to) for w, f, n in zip(widths, floors, counts)]


def prune_channels(
    net: nn.Module,
    example_input: torch.Tensor,
    ratio: float,
    importance: str = "l2",
    ranking: str = "global",
    ignored: Iterable[nn.Module | str] | None = None,
    round_to: int | None = None,
    max_layer_ratio: float = 0.95,
    min_channels: int = 1,
) -> nn.Module:
    """Remove about ``ratio`` of the prunable output channels of ``net`` in place; returns ``net``.

    ``ratio`` is a fraction in (0, 1): per group for ``ranking="uniform"``, network-wide for
    ``ranking="global"`` (see the module docstring). ``importance`` ranks channels by the
    ``"l1"`` or ``"l2"`` magnitude of all coupled weights. Output heads and ``ignored``
    (modules or qualified names such as ``"dist"``) keep their output channels. Each call
    traces a fresh dependency graph on ``example_input`` (a batch the net accepts), so it can
    be repeated between fine-tuning rounds; ratios compound over the current widths.

    Pruned layers get new ``nn.Parameter`` objects: build optimizers (and anything else that
    holds parameters) after pruning. Per-module training flags and ``requires_grad`` are
    restored, and BatchNorm running statistics are untouched (tracing runs in eval mode).
    No layer is cut below ``min_channels`` (a narrower one keeps its width): a layer squeezed
    to one or two channels, e.g. at full resolution, bottlenecks the whole network.
    """
    check_structured_arguments(ratio, importance, ranking, min_channels, round_to, max_layer_ratio)
    if not isinstance(example_input, torch.Tensor):
        raise ValueError(f"example_input: expected a tensor batch, got {type(example_input)}")
    ignored_modules = _ignored_modules(net, ignored)
    trainable = {name: p.requires_grad for name, p in net.named_parameters()}
    with eval_mode(net):  # tracing needs it; every module gets its own flag back
        try:
            graph = _build_graph(net, example_input)
            scored = _scored_groups(graph, ignored_modules, IMPORTANCES[importance])
            counts = _removal_counts(
                scored, ratio, ranking, max_layer_ratio, round_to, min_channels
            )
            for (root, scores, _), n in zip(scored, counts):
                if n <= 0:
                    continue
                idxs = torch.argsort(scores, stable=True)[:n].tolist()
                prune_out = graph.get_pruner_of_module(root).prune_out_channels
                group = graph.get_pruning_group(root, prune_out, idxs)
                if graph.check_pruning_group(group):  # Torch-Pruning: never empty a layer
                    group.prune()
        finally:  # pruned layers get new parameters, trainable by default
            _restore_trainable(net, trainable)
    return net


def _restore_trainable(net: nn.Module, trainable: dict[str, bool]) -> None:
    for name, p in net.named_parameters():
        p.requires_grad_(trainable.get(name, True))
