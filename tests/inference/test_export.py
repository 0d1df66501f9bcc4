import pytest
import torch
from torch import nn

from medprune.inference.export import check_onnx, load_program, save_onnx, save_program
from medprune.models import TwoBranchUNet, UNet

GUARD_ERRORS = (AssertionError, RuntimeError, ValueError)  # torch 2.13 raises AssertionError


def trained_like(net: nn.Module) -> nn.Module:
    """Eval-mode net with moved BatchNorm statistics, so a lost buffer would show."""
    with torch.no_grad():
        net.train()(torch.randn(4, 3, 16, 16))
    return net.eval()


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return trained_like(UNet(3, 4, base_channels=3, depth=3))  # widths 3-6-12: no preset


@pytest.fixture(scope="module")
def two_branch():
    torch.manual_seed(1)
    return trained_like(TwoBranchUNet(3, base_channels=2, depth=2))


@pytest.fixture(scope="module")
def unet_files(unet, tmp_path_factory):
    folder = tmp_path_factory.mktemp("unet")
    example = torch.randn(1, 3, 16, 16)
    return save_program(unet, example, folder / "unet.pt2"), save_onnx(
        unet, example, folder / "unet.onnx"
    )


@pytest.fixture(scope="module")
def two_branch_files(two_branch, tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_branch")
    example = torch.randn(2, 3, 8, 8)
    names = ["seg_logits", "distance"]
    return save_program(two_branch, example, folder / "tb.pt2"), save_onnx(
        two_branch, example, folder / "tb.onnx", output_names=names
    )


@pytest.fixture(scope="module")
def loaded_unet(unet_files):
    return load_program(unet_files[0])


def test_program_runs_without_the_model_code(unet, loaded_unet):
    assert not isinstance(loaded_unet, UNet)  # a graph module: no UNet constructor, no widths
    # batch and size both differ from the example (1x16x16): dynamic axes
    for shape in [(2, 3, 8, 8), (3, 3, 24, 32)]:
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(loaded_unet(x), unet(x), rtol=1e-5, atol=1e-6)


def test_program_keeps_the_shape_rules(loaded_unet):
    for shape in [(1, 3, 18, 16), (1, 3, 4, 16), (1, 2, 16, 16)]:  # not /4, < 8, 2 channels
        with pytest.raises(GUARD_ERRORS):
            loaded_unet(torch.randn(shape))


def test_two_branch_program_returns_both_outputs(two_branch, two_branch_files):
    loaded = load_program(two_branch_files[0])
    x = torch.randn(1, 3, 12, 6)
    with torch.no_grad():
        seg, dist = loaded(x)
        want_seg, want_dist = two_branch(x)
    torch.testing.assert_close(seg, want_seg, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(dist, want_dist, rtol=1e-5, atol=1e-6)


def test_onnx_matches_torch_at_new_batch_and_size(unet, unet_files):
    onnx_path = unet_files[1]
    assert sorted(p.name for p in onnx_path.parent.iterdir()) == [
        "unet.onnx",
        "unet.pt2",
    ]  # no .data
    for shape in [(1, 3, 16, 16), (2, 3, 8, 24)]:
        assert check_onnx(unet, onnx_path, torch.randn(shape)) < 1e-4


def test_two_branch_onnx_has_two_named_outputs(two_branch, two_branch_files):
    import onnxruntime as ort

    session = ort.InferenceSession(str(two_branch_files[1]), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["seg_logits", "distance"]
    (image,) = session.get_inputs()
    assert (image.name, image.shape) == ("image", ["batch", 3, "2*height_blocks", "2*width_blocks"])
    assert check_onnx(two_branch, two_branch_files[1], torch.randn(3, 3, 4, 10)) < 1e-4


def test_check_onnx_rejects_a_different_model(unet, unet_files):
    torch.manual_seed(5)
    other = trained_like(UNet(3, 4, base_channels=3, depth=3))
    with pytest.raises(ValueError, match=r"unet\.onnx.*differs from torch by up to"):
        check_onnx(other, unet_files[1], torch.randn(1, 3, 16, 16))
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        check_onnx(unet, unet_files[1].parent / "missing.onnx", torch.randn(1, 3, 16, 16))


def test_static_export_fixes_the_shape(tmp_path):
    torch.manual_seed(0)
    net = trained_like(UNet(3, 1, base_channels=2, depth=2))
    x = torch.randn(1, 3, 2, 2)  # too small for the dynamic rules, fine when static
    loaded = load_program(save_program(net, x, tmp_path / "static.pt2", dynamic=False))
    torch.testing.assert_close(loaded(x), net(x))
    with pytest.raises(GUARD_ERRORS):
        loaded(torch.randn(2, 3, 2, 2))
    with pytest.raises(ValueError, match="dynamic=False"):
        save_program(net, x, tmp_path / "dynamic.pt2")
    assert not (tmp_path / "dynamic.pt2").exists()


def test_model_without_depth_gets_dynamic_batch_only(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5))
    net[1].eval()  # frozen statistics inside a training net
    loaded = load_program(save_program(net, torch.randn(1, 3, 6, 6), tmp_path / "conv.pt2"))
    assert net.training and not net[1].training  # each module's flag given back
    net.eval()
    x = torch.randn(3, 3, 6, 6)
    torch.testing.assert_close(loaded(x), net(x))
    with pytest.raises(GUARD_ERRORS):
        loaded(torch.randn(1, 3, 8, 6))


def test_existing_files_are_never_overwritten(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 2, 1)).eval()
    x = torch.randn(1, 3, 4, 4)
    for name, save in [("m.pt2", save_program), ("m.onnx", save_onnx)]:
        path = tmp_path / name
        path.write_bytes(b"user data")
        with pytest.raises(FileExistsError, match=name):
            save(net, x, path)
        assert path.read_bytes() == b"user data"


def test_bad_arguments_fail_early(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 2, 1)).eval()
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match="path="):
        save_program(net, x, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="output_names"):
        save_onnx(net, x, tmp_path / "m.onnx", output_names=["a", "b"])
    with pytest.raises(ValueError, match="example_input"):
        save_program(net, x[0], tmp_path / "m.pt2")
    with pytest.raises(FileNotFoundError, match="none.pt2"):
        load_program(tmp_path / "none.pt2")
    assert list(tmp_path.iterdir()) == []
