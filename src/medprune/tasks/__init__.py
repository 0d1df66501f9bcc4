"""LightningModules: losses, metrics and logging per task. They know nothing of pruning."""

from medprune.tasks.cardiac import CardiacSegmentationTask
from medprune.tasks.nuclei import NucleiSegmentationTask

__all__ = ["CardiacSegmentationTask", "NucleiSegmentationTask"]
