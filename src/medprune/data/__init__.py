"""Data: built-in generators, dataset readers, albumentations pipelines and DataModules.

The DataModules (torch, Lightning) are imported on first use, so the file readers
(``medprune.data.monuseg``, ``medprune.data.acdc``) load without torch for prediction.
"""

_LAZY = {
    "AcdcDataModule": "medprune.data.cardiac_datamodule",
    "CardiacSyntheticDataModule": "medprune.data.cardiac_datamodule",
    "NucleiFolderDataModule": "medprune.data.monuseg_datamodule",
    "NucleiSyntheticDataModule": "medprune.data.nuclei_datamodule",
    "NucleiTiles": "medprune.data.nuclei_datamodule",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medprune.data' has no attribute {name!r}")
