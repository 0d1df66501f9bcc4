"""Segmentation metrics: instance metrics (AJI, PQ) for nuclei, Dice and HD95 for volumes.

The score functions are numpy only; the torchmetrics wrappers (``InstanceMetrics``,
``VolumeMetrics``) are imported on first use, so the torch-free prediction path can score.
"""

from medprune.metrics.instance import (
    aggregated_jaccard_index,
    instance_scores,
    overlap_matrix,
    panoptic_quality,
)

__all__ = [
    "InstanceMetrics",
    "VolumeMetrics",
    "aggregated_jaccard_index",
    "instance_scores",
    "overlap_matrix",
    "panoptic_quality",
]


def __getattr__(name: str):
    if name == "InstanceMetrics":
        from medprune.metrics.tiles import InstanceMetrics

        return InstanceMetrics
    if name == "VolumeMetrics":
        from medprune.metrics.volume import VolumeMetrics

        return VolumeMetrics
    raise AttributeError(f"module 'medprune.metrics' has no attribute {name!r}")
