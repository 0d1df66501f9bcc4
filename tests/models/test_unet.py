import pytest
import torch

from medprune.models import TwoBranchUNet, UNet


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_paper_width_parameter_count():
    # 16-32-64-128-256: conv weights 1,939,392 + transposed-conv biases 240 + head bias 1
    # + BatchNorm (2 per channel) 2 * 2 * (16+32+64+128+256 + 128+64+32+16) = 2944
    assert n_params(UNet(3, 1, 16, 5)) == 1_942_577
    assert n_params(TwoBranchUNet(3, 16, 5)) == 2 * 1_942_577


def test_two_branch_output_shapes_and_names():
    net = TwoBranchUNet(base_channels=4, depth=3)
    seg, dist = net(torch.randn(2, 3, 16, 16))
    assert seg.shape == dist.shape == (2, 1, 16, 16)
    assert {k.split(".")[0] for k in net.state_dict()} == {"seg", "dist"}


def test_bad_sizes_fail_with_a_message():
    with pytest.raises(ValueError, match="divisible by 16"):
        UNet(depth=5)(torch.randn(1, 3, 40, 40))
    with pytest.raises(ValueError, match="depth=1"):
        UNet(depth=1)
