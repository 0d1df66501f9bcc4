import pytest
import torch
from torch import nn

from medprune.models import UNet
from medprune.pruning import magnitude_masks, prunable_parameters
from medprune.pruning.sparse_file import dense_state_dict_bytes, load_sparse, save_sparse


def prune_(net: nn.Module, sparsity: float) -> nn.Module:
    """Zero the smallest conv weights in place, as the pruning callback leaves them."""
    params = prunable_parameters(net)
    masks = magnitude_masks(params, sparsity, "global")
    with torch.no_grad():
        for name, weight in params.items():
            weight.mul_(masks[name])
    return net


def small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.ConvTranspose2d(32, 4, 2, stride=2),
    )


@pytest.fixture
def pruned():
    """A pruned conv net in eval mode with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    net = small_net()
    with torch.no_grad():
        net.train()(torch.randn(4, 3, 8, 8))  # running stats and num_batches_tracked move
    return prune_(net, 0.9).eval()


def fresh_copy(state_dict) -> nn.Module:
    torch.manual_seed(1)  # different init, so a missing tensor would show
    net = small_net()
    net.load_state_dict(state_dict, strict=True)
    return net.eval()


def test_float32_round_trip_is_exact(pruned, tmp_path):
    original = pruned.state_dict()
    size = save_sparse(original, tmp_path / "model.mps")
    assert size == (tmp_path / "model.mps").stat().st_size
    loaded = load_sparse(tmp_path / "model.mps")
    assert list(loaded) == list(original)
    for name, tensor in original.items():
        assert loaded[name].dtype == tensor.dtype, name
        assert loaded[name].shape == tensor.shape, name
        assert torch.equal(loaded[name], tensor), name
    assert loaded["1.num_batches_tracked"].dtype == torch.int64
    assert int(loaded["1.num_batches_tracked"]) == 1
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(fresh_copy(loaded)(x), pruned(x))


def test_float16_keeps_the_zero_pattern(pruned, tmp_path):
    original = pruned.state_dict()
    save_sparse(original, tmp_path / "model.mps", dtype="float16")
    loaded = load_sparse(tmp_path / "model.mps")
    for name, tensor in original.items():
        assert loaded[name].dtype == tensor.dtype, name
        assert torch.equal(loaded[name] == 0, tensor == 0), name
        assert torch.allclose(loaded[name].double(), tensor.double(), rtol=1e-3, atol=0), name
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(fresh_copy(loaded)(x), pruned(x), rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("dtype, min_ratio", [("float32", 12), ("float16", 20)])
def test_size_ratio_at_93_75_percent_global_sparsity(tmp_path, dtype, min_ratio):
    # ~120 k weights: big enough that per-tensor overhead is small, fast to compress.
    # The default two-branch model (base 16, depth 5) measures 14.4x and 26.1x.
    torch.manual_seed(0)
    state_dict = prune_(UNet(3, 1, base_channels=8, depth=4), 0.9375).state_dict()
    ratio = dense_state_dict_bytes(state_dict) / save_sparse(state_dict, tmp_path / "m", dtype)
    assert ratio >= min_ratio


def test_dense_state_dict_bytes_is_the_torch_save_size(pruned, tmp_path):
    # torch.save names the zip records after the file stem ("archive" for a buffer), so the
    # sizes agree byte for byte only for a file of that stem
    torch.save(pruned.state_dict(), tmp_path / "archive.pt")
    size = (tmp_path / "archive.pt").stat().st_size
    assert dense_state_dict_bytes(pruned.state_dict()) == size


def test_tensor_without_zeros_is_stored_dense(tmp_path):
    weight = torch.rand(1000) + 0.5  # no zeros: a mask would only add bytes
    size = save_sparse({"w": weight}, tmp_path / "m", dtype="float16")
    assert size > weight.numel() * 4  # kept in float32, not narrowed to float16
    assert torch.equal(load_sparse(tmp_path / "m")["w"], weight)


def test_all_zero_and_edge_tensors_round_trip(tmp_path):
    state_dict = {
        "zeros": torch.zeros(64, 32, 3, 3),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "half": torch.tensor([0.0, 1.5, 0.0, 0.0] * 50, dtype=torch.float16),
        "double": torch.tensor([0.0, 1 / 3, 0.0, 0.0] * 50, dtype=torch.float64),
        "flags": torch.tensor([True, False]),
    }
    size = save_sparse(state_dict, tmp_path / "m")
    assert size < 1000  # 18 432 zeros cost a few dozen bytes, not 72 kB
    loaded = load_sparse(tmp_path / "m")
    for name, tensor in state_dict.items():
        assert loaded[name].dtype == tensor.dtype and loaded[name].shape == tensor.shape, name
    for name in ("zeros", "scalar", "empty", "half", "flags"):
        assert torch.equal(loaded[name], state_dict[name]), name
    # float64 values are narrowed to the requested float32, zeros stay exact
    assert torch.equal(loaded["double"], state_dict["double"].float().double())


def test_negative_zero_counts_as_zero(tmp_path):
    # w * mask leaves -0.0 where w < 0; it must not be stored as a non-zero value
    weight = torch.tensor([-1.0, 2.0, 3.0, -4.0] * 256) * torch.tensor([0.0, 0.0, 0.0, 1.0] * 256)
    save_sparse({"w": weight}, tmp_path / "m")
    loaded = load_sparse(tmp_path / "m")["w"]
    assert torch.equal(loaded, weight) and not torch.signbit(loaded[0])


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "m.mps"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="m.mps"):
        save_sparse({"w": torch.zeros(3)}, path)
    assert path.read_bytes() == b"keep me"


@pytest.mark.parametrize("dtype", ["bfloat16", "fp16", torch.float16, None])
def test_rejects_unknown_value_dtype(tmp_path, dtype):
    with pytest.raises(ValueError, match=r"dtype=.*float32, float16"):
        save_sparse({"w": torch.zeros(3)}, tmp_path / "m", dtype=dtype)
    assert not (tmp_path / "m").exists()


def test_float16_overflow_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="w: values overflow"):
        save_sparse({"w": torch.tensor([0.0, 0.0, 0.0, 1e6] * 64)}, tmp_path / "m", "float16")
    assert not (tmp_path / "m").exists()


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.mps"):
        load_sparse(tmp_path / "nothing.mps")


def test_foreign_files_are_rejected(pruned, tmp_path):
    torch.save(pruned.state_dict(), tmp_path / "dense.pt")
    (tmp_path / "short").write_bytes(b"MP")
    for name in ("dense.pt", "short"):
        with pytest.raises(ValueError, match=rf"{name}: not a medprune sparse export"):
            load_sparse(tmp_path / name)


def test_truncated_file_is_rejected(pruned, tmp_path):
    save_sparse(pruned.state_dict(), tmp_path / "m")
    data = (tmp_path / "m").read_bytes()
    (tmp_path / "cut").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="cut: corrupt medprune sparse export"):
        load_sparse(tmp_path / "cut")
