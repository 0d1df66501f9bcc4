"""Post-processing of network outputs: nucleus instances, cardiac structures."""

from .components import keep_largest_component
from .watershed import (
    WatershedPostprocessor,
    foreground,
    instances_from_maps,
    markers_from_distance,
)

__all__ = [
    "WatershedPostprocessor",
    "foreground",
    "instances_from_maps",
    "keep_largest_component",
    "markers_from_distance",
]
