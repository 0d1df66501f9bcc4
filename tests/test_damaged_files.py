"""Every reader names the file on any decode error: a valid file of each format, truncated to
half its bytes (or replaced by text), fails with a message that starts with the file's path."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from acdc_fixtures import write_patient
from medprune.data.acdc import load_patient, read_info, read_nifti_volume
from medprune.data.monuseg import parse_aperio_xml, read_label_map, read_rgb_image, read_rgb_tiff
from medprune.inference.checkpoint import load_trained
from medprune.inference.export import load_program, save_onnx, save_program
from medprune.inference.settings import read_settings
from medprune.pruning.sparse_file import load_sparse, save_sparse
from monuseg_fixtures import tile_image, write_tiff, write_xml


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def nifti(tmp: Path) -> tuple[Path, object]:
    path = tmp / "volume.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(4000, dtype=np.int16).reshape(10, 20, 20), np.eye(4)), path)
    return truncate(path), read_nifti_volume


def patient_frame(tmp: Path) -> tuple[Path, object]:
    pdir = write_patient(tmp, 1)
    return truncate(pdir / "patient001_frame07_gt.nii.gz"), lambda _: load_patient(pdir)


def info(tmp: Path) -> tuple[Path, object]:
    path = tmp / "Info.cfg"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00binary")
    return path, read_info


def tiff(tmp: Path) -> tuple[Path, object]:
    return truncate(write_tiff(tmp / "t.tif", tile_image((64, 64)))), read_rgb_tiff


def png(tmp: Path) -> tuple[Path, object]:
    path = tmp / "t.png"
    Image.fromarray(tile_image((64, 64))).save(path)
    return truncate(path), read_rgb_image


def xml(tmp: Path) -> tuple[Path, object]:
    return truncate(write_xml(tmp / "t.xml")), parse_aperio_xml


def npy(tmp: Path) -> tuple[Path, object]:
    path = tmp / "label.npy"
    np.save(path, np.zeros((64, 64), np.int32))
    return truncate(path), read_label_map


def png_label(tmp: Path) -> tuple[Path, object]:
    path = tmp / "label.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(path)
    return truncate(path), read_label_map


def settings(tmp: Path) -> tuple[Path, object]:
    (tmp / "inference.json").write_text(json.dumps({"task": "nuclei"})[:10])
    return tmp / "inference.json", lambda _: read_settings(tmp)


def net_and_input():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1)).eval()
    return net, torch.zeros(1, 1, 8, 8)


def program(tmp: Path) -> tuple[Path, object]:
    path = tmp / "model.pt2"
    save_program(*net_and_input(), path)
    return truncate(path), load_program


def onnx(tmp: Path) -> tuple[Path, object]:
    from medprune.inference.onnx_network import OnnxNetwork

    path = tmp / "model.onnx"
    save_onnx(*net_and_input(), path)
    return truncate(path), OnnxNetwork


def sparse(tmp: Path) -> tuple[Path, object]:
    path = tmp / "model.sparse"
    save_sparse({"w": torch.zeros(40, 40)}, path, "float32")
    return truncate(path), load_sparse


def checkpoint(tmp: Path) -> tuple[Path, object]:
    path = tmp / "last.ckpt"
    torch.save({"state_dict": {"net.w": torch.zeros(100, 100)}}, path)
    return truncate(path), load_trained


READERS = [nifti, patient_frame, info, tiff, png, xml, npy, png_label, settings, program, onnx,
           sparse, checkpoint]  # fmt: skip


@pytest.mark.parametrize("make", READERS, ids=[f.__name__ for f in READERS])
def test_a_damaged_file_is_named(tmp_path, make):
    path, read = make(tmp_path)
    with pytest.raises((ValueError, OSError)) as err:
        read(path)
    assert str(path) in str(err.value)
    assert not isinstance(err.value, FileNotFoundError)  # the file is there: a decode error
