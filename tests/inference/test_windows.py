"""The numpy executor (ONNX Runtime path) against the torch one, and the numpy resize and
activation against torch's, on small known inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medprune.inference.onnx_network import resize_bilinear, sigmoid, softmax
from medprune.inference.sliding_window import blend_weights, sliding_window_inference
from medprune.inference.windows import (
    blend_weights_array,
    pad_plan,
    sliding_window_numpy,
    whole_image_window,
)


def two_output_net():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 2, 3, padding=1).eval()

    def net(x):
        y = conv(x)
        return y[:, :1], torch.tanh(y[:, 1:])

    return net


@pytest.mark.parametrize("shape", [(1, 3, 70, 45), (2, 3, 20, 13), (1, 3, 32, 32)])
def test_numpy_executor_matches_torch(shape):
    net = two_output_net()
    image = torch.rand(shape, generator=torch.Generator().manual_seed(1))

    def run(batch: np.ndarray):
        with torch.no_grad():
            return [o.numpy() for o in net(torch.from_numpy(batch))]

    with torch.no_grad():
        want = sliding_window_inference(net, image, 32, 0.25, multiple=4, batch_size=3)
    got = sliding_window_numpy(run, image.numpy(), 32, 0.25, multiple=4, batch_size=3)
    assert len(got) == 2
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape) == (shape[0], 1, *shape[-2:])
        np.testing.assert_allclose(g, w.numpy(), atol=2e-6)


def test_one_window_is_the_network_output_itself():
    net = two_output_net()
    image = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    calls = []

    def run(batch):
        calls.append(batch.shape)
        with torch.no_grad():
            return [o.numpy() for o in net(torch.from_numpy(batch))]

    got = sliding_window_numpy(run, image, 32, 0.5)
    assert calls == [(1, 3, 32, 32)]
    np.testing.assert_array_equal(got[0], run(image)[0])


def test_blend_weights_agree_and_geometry_rules():
    for blend in ("gaussian", "constant"):
        w = blend_weights_array((16, 24), blend)
        assert w.max() == 1.0 and w.min() >= 1e-3
        np.testing.assert_array_equal(blend_weights((16, 24), blend).numpy(), w.astype(np.float32))
    assert pad_plan(10, 7, (16, 16)) == (3, 3, 4, 5)
    assert pad_plan(20, 16, (16, 16)) == (0, 0, 0, 0)
    assert whole_image_window(64, 32, 64, 16) is None  # fits: one pass as it is
    assert whole_image_window(64, 33, 64, 16) == (64, 64)  # 33 px: windows, padded
    assert whole_image_window(80, 80, 64, 16) == (64, 64)  # larger than one window
    assert whole_image_window(16, 16, 64, 16) == (64, 64)  # one block: under the export minimum
    assert whole_image_window(81, 7, None, 16) == (96, 32)  # no window: one padded pass
    assert whole_image_window(96, 32, None, 16) is None


def test_resize_bilinear_matches_interpolate():
    rng = np.random.default_rng(2)
    prob = rng.random((2, 4, 9, 13)).astype(np.float32)
    for grid in ((9, 13), (20, 31), (5, 6)):
        want = F.interpolate(
            torch.from_numpy(prob), size=grid, mode="bilinear", align_corners=False
        )
        np.testing.assert_allclose(resize_bilinear(prob, grid), want.numpy(), atol=1e-6)


def test_activations_match_torch():
    x = np.linspace(-100, 100, 41, dtype=np.float32)
    np.testing.assert_allclose(sigmoid(x), torch.sigmoid(torch.from_numpy(x)).numpy(), atol=1e-7)
    logits = np.random.default_rng(3).normal(size=(2, 4, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(
        softmax(logits), torch.from_numpy(logits).softmax(dim=1).numpy(), atol=1e-6
    )
