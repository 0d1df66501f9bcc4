"""Static int8 post-training quantization of an exported ONNX model with onnxruntime's tools.

QDQ format (QuantizeLinear/DequantizeLinear pairs around each quantized operator, which
onnxruntime fuses into int8 kernels on the CPU), weights int8 per output channel, activations
uint8 per tensor with ranges calibrated on the batches given. Calibration data must be
training items: scales fitted on val/test would leak the data the model is scored on.
numpy and onnxruntime only, no torch.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from medprune.common.checks import check_choice

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


class _Batches:
    """onnxruntime's CalibrationDataReader protocol: ``get_next()`` -> feed dict or None."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._feeds = iter([{input_name: np.ascontiguousarray(b, np.float32)} for b in batches])

    def get_next(self):
        return next(self._feeds, None)


def quantize_onnx(
    fp32_path: str | Path,
    int8_path: str | Path,
    batches: Iterable[np.ndarray],
    method: str = "minmax",
    key: str = "export.int8",
) -> Path:
    """Write the int8 QDQ model of ``fp32_path`` to ``int8_path`` (a new file), calibrated on
    ``batches`` of (N, C, H, W) float32 inputs. A graph the quantizer refuses raises
    ValueError naming ``key`` and the file; nothing is left at ``int8_path`` then."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    check_choice(method, "export.calibration_method", CALIBRATION_METHODS)
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    if int8_path.exists():
        raise FileExistsError(
            f"{int8_path}: already exists; choose a new path (nothing overwritten)"
        )
    batches = list(batches)
    if not batches:
        raise ValueError(f"{key}: no calibration batches (expected at least one training item)")
    calibration = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    # the quantizer writes helper files beside its input: work in a folder of our own and
    # move the result into place only when it is complete
    with tempfile.TemporaryDirectory(prefix="medprune-int8-") as tmp:
        prepared, result = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        try:
            session = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
            input_name = session.get_inputs()[0].name
            # graph optimisations that make quantization work better (e.g. Conv+Relu fused);
            # the symbolic shape pass cannot follow the exported dims "8*height_blocks"
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(result),
                _Batches(input_name, batches),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=calibration,
            )
        except Exception as err:  # the quantizer's own errors are of many kinds
            raise ValueError(
                f"{key}=true: onnxruntime's quantizer refused {fp32_path} ({type(err).__name__}: "
                f"{err}); use export.int8=false for this model"
            ) from err
        shutil.move(str(result), str(int8_path))
    return int8_path


def qdq_counts(path: str | Path) -> dict[str, int]:
    """How many QuantizeLinear and DequantizeLinear nodes the model at ``path`` holds."""
    import onnx

    ops = Counter(node.op_type for node in onnx.load(str(path)).graph.node)
    return {op: ops[op] for op in ("QuantizeLinear", "DequantizeLinear")}
