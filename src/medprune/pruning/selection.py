"""Which weights a pruning run touches, and with which target.

Layers are picked by glob over parameter names (``seg.encoder.0.0.weight``); a pattern that
matches no prunable layer is an error, since it is almost always a typo that would silently
prune something else. Per-branch targets split the selection by the network's top-level
children (``seg``/``dist`` in the two-branch model): each branch is pruned to its own target
and a branch without a target stays dense.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence

from torch import nn

from medprune.pruning.masks import check_sparsity, prunable_parameters

#: The first conv and the output heads stay dense by default (config): they hold few weights
#: and carry the network's input and output (both medprune U-Nets name them this way).
DEFAULT_EXCLUDE = ("*encoder.0.0.weight", "*head.weight")
#: Group name used when one target covers the whole selection.
ALL = "all"


def branch_of(name: str) -> str:
    return name.split(".", 1)[0]


def shape_str(weight) -> str:
    """``"32x16x3x3"``: how tables and listings show a weight's shape."""
    return "x".join(str(d) for d in weight.shape)


def check_globs(module: nn.Module, include: Sequence[str], exclude: Sequence[str]) -> None:
    candidates = list(prunable_parameters(module))
    for key, patterns in (("include", include), ("exclude", exclude)):
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(name, pattern) for name in candidates):
                raise ValueError(
                    f"pruning.{key} pattern {pattern!r} matches no prunable layer; prunable "
                    f"conv/linear weights are named like {', '.join(candidates[:3])}, ..."
                )


def select_groups(
    module: nn.Module,
    include: Sequence[str],
    exclude: Sequence[str],
    targets: Mapping[str, float],
    target_sparsity: float,
) -> dict[str, tuple[float, dict[str, nn.Parameter]]]:
    """``{group: (target sparsity, {parameter name: weight})}`` in module order.

    Without ``targets`` there is one group, ``"all"``, at ``target_sparsity``. With
    ``targets`` (``{"seg": 0.9375, "dist": 0.95}``) each named branch is its own group.
    """
    check_globs(module, include, exclude)
    selected = prunable_parameters(module, include, exclude)
    if not selected:
        raise ValueError(
            f"pruning selects no weights: include={list(include)} exclude={list(exclude)} "
            f"leave no conv/linear layer to prune"
        )
    if not targets:
        return {ALL: (check_sparsity(target_sparsity, "pruning.target_sparsity"), selected)}
    branches = list(dict.fromkeys(branch_of(n) for n in prunable_parameters(module)))
    groups = {}
    for branch, target in targets.items():
        if branch not in branches:
            raise ValueError(
                f"pruning.targets.{branch}: the network has no branch {branch!r} with "
                f"prunable layers (branches: {', '.join(branches)})"
            )
        params = {n: w for n, w in selected.items() if branch_of(n) == branch}
        if not params:
            raise ValueError(
                f"pruning.targets.{branch}: include/exclude leave no layer of branch {branch!r}"
            )
        groups[branch] = (check_sparsity(target, f"pruning.targets.{branch}"), params)
    return groups


def describe_selection(
    module: nn.Module, groups: Mapping[str, tuple[float, Mapping[str, nn.Parameter]]]
) -> str:
    """The resolved prunable list, printed at start so users see what will be pruned."""
    chosen = {n: g for g, (_, params) in groups.items() for n in params}
    lines = ["pruning: resolved layers (prunable -> group and target; kept dense -> dense)"]
    for name, weight in prunable_parameters(module).items():
        shape = shape_str(weight)
        if name in chosen:
            group = chosen[name]
            what = f"prune  {group} -> {groups[group][0]:.4f}"
        else:
            what = "dense"
        lines.append(f"  {name:<40} {shape:>16} {weight.numel():>10,}  {what}")
    count = sum(len(p) for _, p in groups.values())
    total = sum(w.numel() for _, p in groups.values() for w in p.values())
    lines.append(f"  {count} layers, {total:,} weights prunable")
    return "\n".join(lines)
