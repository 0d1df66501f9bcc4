"""Segmentation metrics: instance metrics (AJI, PQ) for nuclei."""

from medprune.metrics.instance import (
    InstanceMetrics,
    aggregated_jaccard_index,
    instance_scores,
    overlap_matrix,
    panoptic_quality,
)

__all__ = [
    "InstanceMetrics",
    "aggregated_jaccard_index",
    "instance_scores",
    "overlap_matrix",
    "panoptic_quality",
]
