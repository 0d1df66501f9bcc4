"""Data: built-in generators, targets, albumentations pipelines and DataModules."""

from medprune.data.nuclei_datamodule import NucleiSyntheticDataModule, NucleiTiles

__all__ = ["NucleiSyntheticDataModule", "NucleiTiles"]
