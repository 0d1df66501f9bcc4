"""ACDC-layout fixtures: tiny NIfTI patients written with nibabel (used by several tests)."""

from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE_XYZ = (20, 24, 3)
SPACING_XYZ = (1.25, 1.5, 8.0)  # anisotropic, so any axis mix-up shows


def frame_data(frame: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y, z) image and label of one frame; the frame number is baked into the values."""
    i, j, k = np.indices(SHAPE_XYZ)
    image = 1000 * frame + 100 * k + 3 * j + i
    label = (i // 5 + j + k + frame) % 4
    return image, label


def write_nifti(path: Path, data: np.ndarray, dtype, spacing_in_affine: bool = True) -> None:
    """ACDC files keep the spacing in the header zooms with a unit affine; cover both."""
    if spacing_in_affine:
        nii = nib.Nifti1Image(data.astype(dtype), np.diag([*SPACING_XYZ, 1.0]))
    else:
        nii = nib.Nifti1Image(data.astype(dtype), np.diag([-1.0, -1.0, 1.0, 1.0]))
        nii.header.set_zooms(SPACING_XYZ)
    nib.save(nii, path)


def write_patient(
    root: Path, number: int, group: str = "NOR", ed: int = 1, es: int = 7, dtype=np.int16, **kw
) -> Path:
    """Info.cfg, the ED and ES frames with their _gt, and a decoy frame that must be ignored."""
    pid = f"patient{number:03d}"
    pdir = root / pid
    pdir.mkdir(parents=True)
    (pdir / "Info.cfg").write_text(
        f"ED: {ed}\nES: {es}\nGroup: {group}\nHeight: 184.0\nNbFrame: 10\nWeight: 95.0\n"
    )
    for frame in (ed, es, 4):
        image, label = frame_data(frame)
        write_nifti(pdir / f"{pid}_frame{frame:02d}.nii.gz", image, dtype, **kw)
        write_nifti(pdir / f"{pid}_frame{frame:02d}_gt.nii.gz", label, np.uint8, **kw)
    return pdir
