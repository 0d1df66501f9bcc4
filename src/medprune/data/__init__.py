"""Data: built-in generators, dataset readers, albumentations pipelines and DataModules."""

from medprune.data.cardiac_datamodule import AcdcDataModule, CardiacSyntheticDataModule
from medprune.data.monuseg_datamodule import NucleiFolderDataModule
from medprune.data.nuclei_datamodule import NucleiSyntheticDataModule, NucleiTiles

__all__ = [
    "AcdcDataModule",
    "CardiacSyntheticDataModule",
    "NucleiFolderDataModule",
    "NucleiSyntheticDataModule",
    "NucleiTiles",
]
