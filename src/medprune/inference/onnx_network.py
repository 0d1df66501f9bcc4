"""The network as an ONNX Runtime session: the deployment path, numpy only, no torch.

Same steps as the torch path (``medprune.inference.torch_network``) and as val/test in
training: nuclei tiles in one pass when they fit, else Gaussian-blended sliding windows; a
sigmoid for the foreground probability. Cardiac volumes: all slices of a padded volume in
one pass, the padding cut off, softmax probabilities resized bilinearly onto the volume's
own grid (pixel centres, as ``F.interpolate(align_corners=False)``), then the argmax.
Results equal the torch path up to float rounding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medprune.inference.windows import sliding_window_numpy, whole_image_window


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)  # no overflow for large |x|


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def resize_bilinear(prob: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(Z, C, h, w) -> (Z, C, *grid) by bilinear interpolation on pixel centres, edges
    extended: what ``F.interpolate(mode="bilinear", align_corners=False)`` computes."""
    z, c, h, w = prob.shape
    rows = np.clip((np.arange(grid[0]) + 0.5) * (h / grid[0]) - 0.5, 0, None)
    cols = np.clip((np.arange(grid[1]) + 0.5) * (w / grid[1]) - 0.5, 0, None)
    r, q = np.meshgrid(rows, cols, indexing="ij")
    out = np.empty((z, c, *grid), dtype=np.float32)
    for k in range(z):
        for j in range(c):
            out[k, j] = ndimage.map_coordinates(prob[k, j], [r, q], order=1, mode="nearest")
    return out


class OnnxNetwork:
    """``model.onnx`` on the CPU with ``threads`` intra-op threads (None: onnxruntime's)."""

    runtime = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ONNX model file")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # a corrupt or foreign file: name it
            raise ValueError(f"{path}: onnxruntime cannot load it ({err})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.path = path

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})

    def nuclei_maps(self, image: np.ndarray, pre: dict[str, Any]) -> tuple[np.ndarray, ...]:
        """(H, W, 3) uint8 -> foreground probability and distance map, (H, W) float32."""
        x = image.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(pre["scale"])
        multiple = pre["size_multiple"]
        size = whole_image_window(x.shape[-2], x.shape[-1], pre["window"], multiple)
        if size is None:
            seg, distance = self.run(x)
        else:
            seg, distance = sliding_window_numpy(
                self.run, x, size, pre["overlap"], pre.get("blend", "gaussian"), multiple,
                pre.get("batch_size", 4),
            )  # fmt: skip
        return sigmoid(seg[0, 0]), np.asarray(distance[0, 0], dtype=np.float32)

    def cardiac_labels(
        self, padded: np.ndarray, size: tuple[int, int], grid: tuple[int, int]
    ) -> np.ndarray:
        """(Z, H', W') padded volume -> (Z, *grid) class map of the volume as read."""
        (logits,) = self.run(padded[:, None])
        h, w = size
        top, left = (logits.shape[-2] - h) // 2, (logits.shape[-1] - w) // 2
        logits = logits[..., top : top + h, left : left + w]
        if (h, w) == tuple(grid):
            return logits.argmax(axis=1)
        return resize_bilinear(softmax(logits), tuple(grid)).argmax(axis=1)
