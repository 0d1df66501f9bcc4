"""Data: built-in generators, dataset readers, albumentations pipelines and DataModules."""

from medprune.data.cardiac_datamodule import CardiacSyntheticDataModule
from medprune.data.nuclei_datamodule import NucleiSyntheticDataModule, NucleiTiles

__all__ = ["CardiacSyntheticDataModule", "NucleiSyntheticDataModule", "NucleiTiles"]
