"""Pruning: schedules, mask computation and the training callback. Knows nothing of tasks."""

from medprune.pruning.callback import GradualMagnitudePruning
from medprune.pruning.masks import magnitude_masks, prunable_parameters, sparsity_stats
from medprune.pruning.schedule import cubic_sparsity, update_steps

__all__ = [
    "GradualMagnitudePruning",
    "cubic_sparsity",
    "magnitude_masks",
    "prunable_parameters",
    "sparsity_stats",
    "update_steps",
]
