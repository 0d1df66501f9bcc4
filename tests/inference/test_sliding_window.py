import pytest
import torch
from torch import nn

from medprune.inference.sliding_window import blend_weights, sliding_window_inference, window_starts
from medprune.models import TwoBranchUNet

BLENDS = ("constant", "gaussian")


def pointwise_net(seed=0, in_channels=3, out_channels=2):
    """1x1 conv: translation-equivariant with no context, so windows cannot change its output."""
    torch.manual_seed(seed)
    return nn.Conv2d(in_channels, out_channels, 1)


class PointwiseTwoBranch(nn.Module):
    """Returns a (seg, distance) tuple like TwoBranchUNet, from two 1x1 convs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.seg, self.dist = nn.Conv2d(3, 1, 1), nn.Conv2d(3, 1, 1)

    def forward(self, x):
        return self.seg(x), self.dist(x)


class Recorder(nn.Module):
    """Identity that records the batch shape of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return x.clone()


@pytest.mark.parametrize("blend", BLENDS)
def test_one_window_reproduces_the_net_exactly(blend):
    net = TwoBranchUNet(base_channels=4, depth=3).eval()
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = net(image)
        out = sliding_window_inference(net, image, 32, blend=blend, multiple=4)
    assert isinstance(out, tuple) and len(out) == 2
    for a, b in zip(out, expected):
        assert a.shape == b.shape == (2, 1, 32, 32) and a.dtype == b.dtype
        assert torch.equal(a, b)


@pytest.mark.parametrize("blend", BLENDS)
def test_one_window_tensor_output(blend):
    net = pointwise_net()
    image = torch.randn(1, 3, 16, 24)
    with torch.no_grad():
        out = sliding_window_inference(net, image, (16, 24), blend=blend)
        assert isinstance(out, torch.Tensor)
        assert torch.equal(out, net(image))


@pytest.mark.parametrize("blend", BLENDS)
@pytest.mark.parametrize("shape", [(50, 50), (64, 40), (33, 97)])
def test_pointwise_net_matches_whole_image(blend, shape):
    net = pointwise_net()
    image = torch.randn(2, 3, *shape)
    with torch.no_grad():
        expected = net(image)
        out = sliding_window_inference(net, image, 32, overlap=0.25, blend=blend, batch_size=3)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("blend", BLENDS)
def test_tuple_and_list_outputs_keep_their_structure(blend):
    net = PointwiseTwoBranch()
    image = torch.randn(1, 3, 70, 45)
    with torch.no_grad():
        expected = net(image)
        out = sliding_window_inference(net, image, 16, overlap=0.5, blend=blend)
        listed = sliding_window_inference(lambda x: list(net(x)), image, 16, blend=blend)
    assert isinstance(out, tuple) and isinstance(listed, list)
    for a, b, c in zip(out, listed, expected):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(b, c, rtol=1e-5, atol=1e-5)


def test_windows_cover_the_border():
    # H = 50, window 32, overlap 0.25: stride <= 24, so starts 0 and 18 (last ends at 50).
    assert window_starts(50, 32, 0.25) == [0, 18]
    assert window_starts(32, 32, 0.25) == [0]
    assert window_starts(100, 32, 0.0) == [0, 23, 45, 68]
    for size, window, overlap in [(50, 32, 0.25), (257, 64, 0.5), (40, 8, 0.9), (9, 8, 0.0)]:
        starts = window_starts(size, window, overlap)
        assert starts[0] == 0 and starts[-1] == size - window
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        assert all(0 < g <= max(1, int(window * (1 - overlap))) for g in gaps)

    # Identity net: every pixel, borders included, comes back unchanged.
    rec = Recorder()
    image = torch.randn(1, 2, 50, 50)
    out = sliding_window_inference(rec, image, 32, overlap=0.25, batch_size=4)
    torch.testing.assert_close(out, image)
    assert rec.shapes == [(4, 2, 32, 32)]  # the 2 x 2 windows in a single forward


def test_batching_splits_windows_and_keeps_every_image():
    rec = Recorder()
    image = torch.randn(3, 1, 50, 50)
    out = sliding_window_inference(rec, image, 32, blend="constant", batch_size=3)
    assert rec.shapes == [(9, 1, 32, 32), (3, 1, 32, 32)]  # 4 windows x 3 images
    torch.testing.assert_close(out, image)


@pytest.mark.parametrize("shape", [(20, 28), (5, 40), (1, 1)])
def test_input_smaller_than_the_window_is_padded_and_cropped(shape):
    rec = Recorder()
    net = pointwise_net(in_channels=1, out_channels=1)
    image = torch.randn(2, 1, *shape)

    def both(x):
        rec(x)
        return net(x)

    with torch.no_grad():
        out = sliding_window_inference(both, image, 32, multiple=16)
        expected = net(image)
    assert rec.shapes[0][-2:] == (32, 32)
    assert out.shape == (2, 1, *shape)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_dtype_follows_the_net_and_gradients_flow():
    net = pointwise_net().double()
    image = torch.randn(1, 3, 40, 40, dtype=torch.float64, requires_grad=True)
    out = sliding_window_inference(net, image, 16)
    assert out.dtype == torch.float64 and out.requires_grad
    out.sum().backward()
    assert image.grad is not None and image.grad.shape == image.shape


def test_module_mode_is_left_alone():
    net = TwoBranchUNet(base_channels=4, depth=3).train()
    with torch.no_grad():
        sliding_window_inference(net, torch.randn(1, 3, 40, 40), 16, multiple=4)
    assert all(m.training for m in net.modules())


def test_gaussian_weights_peak_in_the_centre_and_never_vanish():
    w = blend_weights((32, 16), "gaussian")
    assert w.shape == (32, 16) and w.max() == 1.0
    assert w[16, 8] > w[8, 8] > w[4, 8] > w[0, 8]  # decays from the centre ...
    assert w.min() == pytest.approx(1e-3)  # ... down to a floor, never to 0
    torch.testing.assert_close(w, w.flip(0).flip(1))
    assert torch.equal(blend_weights((4, 4), "constant"), torch.ones(4, 4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 0}, r"window=0: expected a positive integer or a \(height, width\) pair"),
        ({"window": (32,)}, r"window=\(32,\): expected a positive integer or a \(height, width\)"),
        ({"window": 32.0}, r"window=32.0: expected a positive integer or a \(height, width\)"),
        ({"window": True}, r"window=True: expected a positive integer or a \(height, width\)"),
        ({"window": 24, "multiple": 16}, "divisible by multiple=16"),
        ({"multiple": 0}, "multiple=0: expected an integer >= 1"),
        ({"overlap": 1.0}, r"overlap=1.0: expected a fraction in \[0, 1\)"),
        ({"overlap": -0.1}, r"overlap=-0.1: expected a fraction in \[0, 1\)"),
        ({"blend": "linear"}, "blend='linear': expected one of constant, gaussian"),
        ({"batch_size": 0}, "batch_size=0: expected an integer >= 1"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    args = {"window": 32, **kwargs}
    with pytest.raises(ValueError, match=match):
        sliding_window_inference(nn.Identity(), torch.randn(1, 1, 40, 40), **args)


def test_bad_image_and_bad_net_outputs_raise():
    with pytest.raises(ValueError, match="image must be"):
        sliding_window_inference(nn.Identity(), torch.randn(3, 40, 40), 32)
    with pytest.raises(ValueError, match="net must be callable"):
        sliding_window_inference("net", torch.randn(1, 1, 40, 40), 32)
    with pytest.raises(ValueError, match="net output 0 must have shape"):
        sliding_window_inference(nn.MaxPool2d(2), torch.randn(1, 1, 40, 40), 32)
    with pytest.raises(ValueError, match="floating point"):
        sliding_window_inference(lambda x: x.long(), torch.randn(1, 1, 40, 40), 32)
    with pytest.raises(ValueError, match="tensor or a tuple"):
        sliding_window_inference(lambda x: {"seg": x}, torch.randn(1, 1, 40, 40), 32)


class WindowMean(torch.nn.Module):
    """Position-dependent on purpose: each window's output is its own input mean everywhere,
    so the blend of overlapping windows is visible in the result."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()


def test_overlapping_windows_are_blended_where_they_overlap():
    # columns 0..47 hold their own index; windows 32 px at overlap 0.5 start at 0 and 16
    image = torch.arange(48.0).expand(1, 1, 32, 48).clone()
    out = sliding_window_inference(WindowMean(), image, 32, overlap=0.5, blend="constant")
    row = out[0, 0, 0]
    first, second = 15.5, 31.5  # mean column index of each window
    assert torch.allclose(row[:16], torch.tensor(first))
    assert torch.allclose(row[16:32], torch.tensor((first + second) / 2))
    assert torch.allclose(row[32:], torch.tensor(second))
    out = sliding_window_inference(WindowMean(), image, 32, overlap=0.5, blend="gaussian")
    row = out[0, 0, 16]  # the windows' middle row (at row 0 both weights sit at the floor)
    assert torch.allclose(row[:16], torch.tensor(first)) and torch.allclose(
        row[32:], torch.tensor(second)
    )
    # Gaussian weights hand the overlap over from the first window to the second smoothly
    assert torch.all(row[16:32].diff() > 0) and first < row[16] < row[31] < second
