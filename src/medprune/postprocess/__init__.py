"""Post-processing of network outputs into nucleus instances."""

from .watershed import (
    WatershedPostprocessor,
    foreground,
    instances_from_maps,
    markers_from_distance,
)

__all__ = ["WatershedPostprocessor", "foreground", "instances_from_maps", "markers_from_distance"]
