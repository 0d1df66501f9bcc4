from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch

from acdc_fixtures import frame_data, write_nifti, write_patient
from medprune.data.acdc import (
    Volume,
    center_crop_or_pad,
    find_patients,
    load_patient,
    normalize_intensity,
    preprocess_volume,
    read_info,
    resample_inplane,
    split_patients,
)
from medprune.data.cardiac_datamodule import AcdcSlices
from medprune.data.transforms import cardiac_train_transform


def zyx(array_xyz: np.ndarray) -> np.ndarray:
    return array_xyz.transpose(2, 1, 0)


def test_read_info_types(tmp_path):
    pdir = write_patient(tmp_path, 1, group="DCM", ed=2, es=9)
    info = read_info(pdir / "Info.cfg")
    assert info == {
        "ED": 2,
        "ES": 9,
        "Group": "DCM",
        "Height": 184.0,
        "NbFrame": 10,
        "Weight": 95.0,
    }


@pytest.mark.parametrize("spacing_in_affine", [True, False])
def test_load_patient_picks_ed_es_frames_and_zyx_axes(tmp_path, spacing_in_affine):
    pdir = write_patient(tmp_path, 3, group="HCM", ed=2, es=9, spacing_in_affine=spacing_in_affine)
    ed, es = load_patient(pdir)
    assert (ed.phase, ed.frame, es.phase, es.frame) == ("ED", 2, "ES", 9)
    assert ed.patient_id == "patient003" and ed.group == "HCM"
    for volume, frame in ((ed, 2), (es, 9)):
        image, label = frame_data(frame)  # not the decoy frame 4
        assert volume.image.shape == volume.label.shape == (3, 24, 20)
        assert volume.image.dtype == np.float32 and volume.label.dtype == np.uint8
        np.testing.assert_array_equal(volume.image, zyx(image))
        np.testing.assert_array_equal(volume.label, zyx(label))
        assert volume.spacing == (8.0, 1.5, 1.25)  # (z, y, x) mm


def test_int16_and_float32_images_load_the_same(tmp_path):
    a = load_patient(write_patient(tmp_path, 1, dtype=np.int16))
    b = load_patient(write_patient(tmp_path, 2, dtype=np.float32))
    for va, vb in zip(a, b):
        assert va.image.dtype == vb.image.dtype == np.float32
        np.testing.assert_array_equal(va.image, vb.image)


def test_resample_inplane_shape_spacing_and_labels(tmp_path):
    volume = load_patient(write_patient(tmp_path, 1))[0]
    out = resample_inplane(volume, (1.0, 1.0))
    # y: 24 px * 1.5 mm = 36 mm, x: 20 px * 1.25 mm = 25 mm; z untouched
    assert out.image.shape == out.label.shape == (3, 36, 25)
    assert out.spacing == (8.0, 1.0, 1.0)
    assert out.image.dtype == np.float32 and out.label.dtype == np.uint8
    assert set(np.unique(out.label)) <= {0, 1, 2, 3}
    assert volume.image.min() <= out.image.min() and out.image.max() <= volume.image.max()
    assert resample_inplane(volume, None) is volume
    assert resample_inplane(volume, (1.5, 1.25)) is volume  # already there


def test_normalize_intensity_robust_zscore():
    rng = np.random.default_rng(0)
    image = rng.normal(300.0, 40.0, (4, 50, 50)).astype(np.float32)
    image[0, 0, :20] = 1e5  # outliers must not set the scale
    out = normalize_intensity(image)
    lo, hi = np.percentile(image, [0.5, 99.5])
    inside = (image >= lo) & (image <= hi)
    assert out.dtype == np.float32
    assert abs(out[inside].mean()) < 1e-4 and abs(out[inside].std() - 1) < 1e-4
    assert out.max() < 4  # the outliers are clipped to the 99.5th percentile
    np.testing.assert_array_equal(normalize_intensity(np.full((2, 3, 3), 7.0)), 0)


def test_center_crop_or_pad_exact_and_invertible():
    a = np.arange(12).reshape(3, 4)
    out = center_crop_or_pad(a, (5, 2), fill=-1)
    expected = np.array([[-1, -1], [1, 2], [5, 6], [9, 10], [-1, -1]])
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == a.dtype
    # odd differences: crop 7 -> 4 starts at 1, pad 4 -> 7 puts 1 before and 2 after
    b = np.arange(49).reshape(7, 7)
    np.testing.assert_array_equal(center_crop_or_pad(b, 4), b[1:5, 1:5])
    back = center_crop_or_pad(center_crop_or_pad(b, 4), (7, 7))
    np.testing.assert_array_equal(back[1:5, 1:5], b[1:5, 1:5])
    assert back.sum() == b[1:5, 1:5].sum()


def test_dataset_items_and_volume_index(tmp_path):
    volumes = [
        preprocess_volume(v, target_spacing=(1.25, 1.25))
        for n in (1, 2, 3)
        for v in load_patient(write_patient(tmp_path, n))
    ]
    assert volumes[0].image.shape == (3, 29, 20)
    ds = AcdcSlices(volumes, size=(32, 16))
    assert len(ds) == 6 * 3
    item = ds[4]
    image, label = item["image"], item["label"]
    assert image.shape == (1, 32, 16) and image.dtype == torch.float32
    assert label.shape == (32, 16) and label.dtype == torch.int64
    assert ds.slices_of(1) == range(3, 6)
    v, k = ds.index[4]
    assert (v, k) == (1, 1)
    # rows 0-1 are padding: the volume's minimum for the image, 0 for the label
    assert torch.all(image[0, :1] == float(volumes[1].image.min())) and torch.all(label[:1] == 0)
    expected = center_crop_or_pad(volumes[1].label[1], (32, 16))
    np.testing.assert_array_equal(label.numpy(), expected)


def test_augmentation_keeps_the_z_scored_intensity_range():
    """albumentations clips float images to [0, 1]; slices go through it mapped to [0, 1] and
    come back in their own range, so the negative half of a z-scored slice survives."""
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 32, 32)).astype(np.float32)  # z-scored: about half negative
    label = np.zeros((1, 32, 32), np.uint8)
    vol = Volume("p", "ED", 1, None, image, label, (10.0, 1.5, 1.5))

    identity = A.Compose([A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=0, p=1)])
    out = AcdcSlices([vol], None, identity)[0]["image"][0].numpy()
    np.testing.assert_allclose(out, image[0], atol=1e-5)

    brighter = A.Compose([A.RandomBrightnessContrast((0.1, 0.1), (0, 0), p=1)])
    out = AcdcSlices([vol], None, brighter)[0]["image"][0].numpy()
    span = float(image.max() - image.min())
    # +0.1 of the [0, 1] range is +0.1 * span in z units; values pushed past the max saturate
    expected = np.minimum(image[0] + 0.1 * span, image.max())
    np.testing.assert_allclose(out, expected, atol=1e-4)

    shipped = AcdcSlices([vol], None, cardiac_train_transform(True))
    outs = np.stack([shipped[0]["image"][0].numpy() for _ in range(20)])
    assert outs.min() < -1.0 and outs.max() > 1.0  # not squashed into [0, 1]


def test_training_crops_are_random_windows_padded_with_the_volume_minimum():
    image = np.arange(20 * 12, dtype=np.float32).reshape(1, 20, 12) - 100.0
    label = np.ones((1, 20, 12), np.uint8)
    vol = Volume("p", "ED", 1, None, image, label, (10.0, 1.5, 1.5))
    ds = AcdcSlices([vol], None, cardiac_train_transform(augment=False, crop=16))
    corners = set()
    for _ in range(40):
        item = ds[0]
        img, lab = item["image"][0].numpy(), item["label"].numpy()
        assert img.shape == lab.shape == (16, 16)
        # 12 px wide -> 2 px of padding either side, image at the volume minimum, label 0
        np.testing.assert_allclose(img[:, :2], -100.0, atol=1e-4)
        assert (lab[:, :2] == 0).all() and (lab[:, 2:14] == 1).all()
        corners.add(float(img[0, 2]))
    assert len(corners) > 1  # the 16 px window moves along the 20 px axis


def fake_patients(root: Path, groups: dict[str, int]) -> list[Path]:
    dirs, number = [], 1
    for group, count in groups.items():
        for _ in range(count):
            pdir = root / f"patient{number:03d}"
            pdir.mkdir()
            (pdir / "Info.cfg").write_text(f"ED: 1\nES: 5\nGroup: {group}\n")
            dirs.append(pdir)
            number += 1
    return dirs


def test_split_patients_stratified_deterministic_no_leakage(tmp_path):
    dirs = fake_patients(tmp_path, {"DCM": 6, "NOR": 4, "RV": 2, "HCM": 1})
    train, val = split_patients(dirs, val_fraction=0.25, seed=0)
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(dirs)
    groups = {p: read_info(p / "Info.cfg")["Group"] for p in dirs}
    n_val = {g: sum(groups[p] == g for p in val) for g in ("DCM", "NOR", "RV", "HCM")}
    # round(1.5) = 2, round(1.0) = 1, round(0.5) = 1 (>= 1 for >= 2 patients), lone patient: 0
    assert n_val == {"DCM": 2, "NOR": 1, "RV": 1, "HCM": 0}
    assert split_patients(dirs[::-1], 0.25, seed=0) == (train, val)
    assert any(split_patients(dirs, 0.25, seed=s)[1] != val for s in range(1, 6))


def test_find_patients(tmp_path):
    fake_patients(tmp_path, {"NOR": 2})
    (tmp_path / "README.md").write_text("not a patient")
    assert [p.name for p in find_patients(tmp_path)] == ["patient001", "patient002"]


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_root"):
        find_patients(tmp_path / "missing_root")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: no patient"):
        find_patients(tmp_path / "empty")

    pdir = write_patient(tmp_path, 1, ed=1, es=7)
    (pdir / "patient001_frame07_gt.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="patient001_frame07_gt.nii.gz"):
        load_patient(pdir)

    cfg = tmp_path / "Info.cfg"
    cfg.write_text("ED: 1\nGroup: NOR\n")
    with pytest.raises(ValueError, match=r"Info.cfg: missing ES"):
        read_info(cfg)
    cfg.write_text("ED: first\nES: 3\n")
    with pytest.raises(ValueError, match=r"Info.cfg: ED='first' is not an integer"):
        read_info(cfg)

    pdir = write_patient(tmp_path, 2, ed=1, es=7)
    label = frame_data(1)[1]
    label[0, 0, 0], label[1, 0, 0] = 5, 7
    write_nifti(pdir / "patient002_frame01_gt.nii.gz", label, np.uint8)
    with pytest.raises(ValueError, match=r"patient002_frame01_gt.nii.gz: label values \[5, 7\]"):
        load_patient(pdir)

    pdir = write_patient(tmp_path, 3, ed=1, es=7)
    write_nifti(pdir / "patient003_frame07_gt.nii.gz", np.zeros((20, 24, 2)), np.uint8)
    with pytest.raises(ValueError, match="patient003_frame07.nii.gz and .*shape"):
        load_patient(pdir)


def test_labels_stored_as_float_load_as_uint8(tmp_path):
    pdir = write_patient(tmp_path, 1, ed=1, es=7)
    write_nifti(pdir / "patient001_frame01_gt.nii.gz", frame_data(1)[1], np.float32)
    ed = load_patient(pdir)[0]
    assert ed.label.dtype == np.uint8
    np.testing.assert_array_equal(ed.label, zyx(frame_data(1)[1]))
    label = frame_data(1)[1].astype(np.float32)
    label[0, 0, 0] = 1.5
    write_nifti(pdir / "patient001_frame01_gt.nii.gz", label, np.float32)
    with pytest.raises(ValueError, match=r"frame01_gt.nii.gz: label values \[1.5\]"):
        load_patient(pdir)
