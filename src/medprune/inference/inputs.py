"""Which files a prediction reads: the inputs of a file or folder, and each one's label.

Torch-free. Nuclei: H&E images (PNG, TIFF, JPEG) in a folder, or in its ``images/`` or
``Tissue Images/`` subfolder (the image/label-folder and the official MoNuSeg layouts).
Cardiac: the ED and ES frames of an ACDC layout (``patientNNN/Info.cfg``), or every 3D
NIfTI (``.nii``/``.nii.gz``) of a plain folder except ``*_gt`` label files. Labels, when a
``labels`` folder is given: nuclei ``<stem>.xml`` (Aperio) or an instance map
``<stem>.png|tif|tiff|npy`` (also in ``Annotations/`` or ``labels/``); cardiac
``<stem>_gt.nii.gz`` (beside the frame, in ACDC's layout) or ``<stem>.nii.gz``. A file is
never its own label.
"""

from __future__ import annotations

from pathlib import Path

from medprune.data.acdc import read_info
from medprune.data.monuseg import IMAGE_SUFFIXES
from medprune.inference.cardiac import NIFTI_SUFFIXES, nifti_stem
from medprune.inference.nuclei import LABEL_FILES

NUCLEI_IMAGE_FOLDERS = ("images", "Tissue Images")
NUCLEI_LABEL_FOLDERS = ("labels", "Annotations")


def stem_of(path: Path, task: str) -> str:
    return nifti_stem(path) if task == "cardiac" else path.stem


def _is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(NIFTI_SUFFIXES)


def _acdc_frames(patient: Path, problems: list[tuple[Path, str]]) -> list[Path]:
    """The ED and ES frames of one patient; a bad Info.cfg or a missing frame is recorded
    in ``problems`` (reported as a failed input) and the other patients still run."""
    try:
        info = read_info(patient / "Info.cfg")
    except (OSError, ValueError) as err:
        problems.append((patient / "Info.cfg", f"{type(err).__name__}: {err}"))
        return []
    frames = []
    for phase in ("ED", "ES"):
        stem = f"{patient.name}_frame{int(info[phase]):02d}"
        found = [patient / f"{stem}{ext}" for ext in NIFTI_SUFFIXES]
        found = [p for p in found if p.is_file()]
        if found:
            frames.append(found[0])
        else:
            message = f"FileNotFoundError: {patient / stem}.nii.gz (the {phase} frame of Info.cfg)"
            problems.append((patient / f"{stem}.nii.gz", message))
    return frames


def _cardiac_inputs(folder: Path, problems: list[tuple[Path, str]]) -> list[Path]:
    if (folder / "Info.cfg").is_file():  # one ACDC patient
        return _acdc_frames(folder, problems)
    patients = sorted(p for p in folder.iterdir() if (p / "Info.cfg").is_file())
    if patients:  # ACDC's layout: the frames its labels exist for
        return [frame for patient in patients for frame in _acdc_frames(patient, problems)]
    return sorted(p for p in folder.iterdir() if _is_nifti(p) and not nifti_stem(p).endswith("_gt"))


def _nuclei_inputs(folder: Path) -> list[Path]:
    def images(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

    found = images(folder)
    for name in NUCLEI_IMAGE_FOLDERS:
        if not found and (folder / name).is_dir():
            found = images(folder / name)
    return found


def find_inputs(source: str | Path, task: str) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The input files, sorted, and the (path, error) of inputs found broken while listing
    (an ACDC patient whose Info.cfg or frame is bad). Refuses a missing path, a folder
    without inputs, a file of the wrong kind, and two inputs with one stem (their outputs
    would collide)."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"input={source}: no such file or folder")
    suffixes = NIFTI_SUFFIXES if task == "cardiac" else IMAGE_SUFFIXES
    if source.is_file():
        if not source.name.lower().endswith(suffixes):
            raise ValueError(f"input={source}: expected a {'/'.join(suffixes)} file ({task})")
        return [source], []
    problems: list[tuple[Path, str]] = []
    found = _cardiac_inputs(source, problems) if task == "cardiac" else _nuclei_inputs(source)
    if not found and not problems:
        raise FileNotFoundError(f"input={source}: no {'/'.join(suffixes)} files ({task} model)")
    seen: dict[str, Path] = {}
    for path in found:
        stem = stem_of(path, task)
        if stem in seen:
            raise ValueError(f"input={source}: {seen[stem]} and {path} share the name {stem!r}")
        seen[stem] = path
    return found, problems


def find_label(image: Path, labels: Path, task: str) -> Path:
    """The label file of ``image`` in ``labels`` (module docstring); FileNotFoundError
    naming the places looked at when there is none."""
    stem = stem_of(image, task)
    if task == "cardiac":
        folders = [labels / image.parent.name, labels]
        names = [f"{stem}_gt{ext}" for ext in NIFTI_SUFFIXES]
        names += [f"{stem}{ext}" for ext in NIFTI_SUFFIXES]
    else:
        folders = [labels, *(labels / name for name in NUCLEI_LABEL_FOLDERS)]
        names = [f"{stem}{ext}" for ext in LABEL_FILES]
    for name in names:  # a better-named label anywhere before a worse-named one
        for folder in folders:
            candidate = folder / name
            if candidate.is_file() and candidate.resolve() != image.resolve():
                return candidate
    raise FileNotFoundError(
        f"{image}: no label found in labels={labels} (looked for {', '.join(names)})"
    )
