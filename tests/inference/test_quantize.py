"""Static int8 quantization of an exported U-Net: QDQ nodes, outputs near fp32, clear errors."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from medprune.inference.export import save_onnx
from medprune.inference.quantize import qdq_counts, quantize_onnx
from medprune.models import UNet


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    torch.manual_seed(0)
    net = UNet(1, 4, 4, 3).eval()
    path = tmp_path_factory.mktemp("fp32") / "model.onnx"
    return save_onnx(net, torch.randn(1, 1, 32, 32), path)


def run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_int8_model_has_qdq_nodes_and_matches_fp32(fp32, tmp_path):
    rng = np.random.default_rng(0)
    calibration = [rng.standard_normal((4, 1, 32, 32)).astype(np.float32) for _ in range(4)]
    int8 = quantize_onnx(fp32, tmp_path / "model.int8.onnx", calibration)
    counts = qdq_counts(int8)
    # every conv's input and weights go through a Quantize/Dequantize pair (11 convs here)
    assert counts["QuantizeLinear"] >= 11 and counts["DequantizeLinear"] >= 22
    assert qdq_counts(fp32) == {"QuantizeLinear": 0, "DequantizeLinear": 0}
    # on inputs like the calibration data (and another size: the axes stay dynamic) the int8
    # logits stay within 5 % of the fp32 logits' range
    for shape in ((1, 1, 32, 32), (2, 1, 48, 64)):
        x = rng.standard_normal(shape).astype(np.float32)
        want, got = run(fp32, x), run(int8, x)
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()
    assert int8.stat().st_size < fp32.stat().st_size


def test_a_graph_the_quantizer_refuses_names_the_key_and_leaves_nothing(tmp_path):
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx graph")
    out = tmp_path / "model.int8.onnx"
    with pytest.raises(ValueError, match=r"export.int8=true: onnxruntime's quantizer refused"):
        quantize_onnx(broken, out, [np.zeros((1, 1, 32, 32), np.float32)], key="export.int8")
    assert not out.exists()


def test_no_calibration_data_or_an_existing_file_is_refused(fp32, tmp_path):
    with pytest.raises(ValueError, match="no calibration batches"):
        quantize_onnx(fp32, tmp_path / "a.onnx", [])
    existing = tmp_path / "b.onnx"
    existing.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="nothing overwritten"):
        quantize_onnx(fp32, existing, [np.zeros((1, 1, 32, 32), np.float32)])
    assert existing.read_bytes() == b"mine"
    with pytest.raises(ValueError, match="export.calibration_method='kl': expected one of"):
        quantize_onnx(fp32, tmp_path / "c.onnx", [np.zeros((1, 1, 32, 32), np.float32)], "kl")
