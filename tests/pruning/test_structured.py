import pytest
import torch
from torch import nn

from medprune.models import TwoBranchUNet, UNet
from medprune.pruning.structured import (
    channel_widths,
    channels_to_keep,
    count_parameters,
    output_layers,
    prune_channels,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy machine the threads' sync
    costs more than the work (a 16 px U-Net forward: 0.5 s with 2 threads, 10 ms with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _x(size: int = 16, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, size, size)


@pytest.mark.parametrize(
    ("width", "ratio", "max_layer_ratio", "round_to", "keep"),
    [
        (4, 0.5, 0.95, None, 2),
        (3, 0.5, 0.95, None, 1),  # floor(1.5)
        (10, 0.9, 0.95, None, 1),  # 10 * (1 - 0.9) is 0.999...: must not floor to 0
        (4, 0.9, 0.95, None, 1),  # floor(0.4) = 0, but a layer keeps one channel
        (16, 0.9, 0.5, None, 8),  # capped by max_layer_ratio
        (32, 0.5, 0.95, 8, 16),
        (12, 0.5, 0.95, 8, 8),  # 6 rounds down to 0 < floor 1, so up to 8
        (5, 0.9, 0.95, 8, 5),  # cannot reach a multiple of 8: left as it is
    ],
)
def test_channels_to_keep_by_hand(width, ratio, max_layer_ratio, round_to, keep):
    assert channels_to_keep(width, ratio, max_layer_ratio, round_to) == keep


@pytest.mark.parametrize(
    ("width", "ratio", "min_channels", "round_to", "keep"),
    [(16, 0.9, 4, None, 4), (16, 0.5, 4, None, 8), (3, 0.5, 4, None, 3), (10, 0.9, 1, None, 1)]
    + [(16, 0.9, 6, 4, 8), (8, 0.9, 6, 4, 8)],  # rounded up to stay at or above the floor
)
def test_channels_to_keep_respects_min_channels(width, ratio, min_channels, round_to, keep):
    assert channels_to_keep(width, ratio, round_to=round_to, min_channels=min_channels) == keep


def test_uniform_half_gives_the_half_width_unet():
    torch.manual_seed(0)
    net = UNet(3, 4, base_channels=4, depth=3)
    before = count_parameters(net)
    assert prune_channels(net, _x(), 0.5, ranking="uniform") is net
    # every width halves (4->2, 8->4, 16->8) and the head keeps its 4 classes: the pruned net
    # has exactly the shapes of a UNet built with base_channels=2
    reference = UNet(3, 4, base_channels=2, depth=3)
    assert channel_widths(net) == channel_widths(reference)
    assert channel_widths(net)["encoder.2.3"] == 8 and net.head.out_channels == 4
    assert count_parameters(net) == count_parameters(reference) < before
    for block, level in zip(net.decoder, (1, 0)):
        skip = net.encoder[level][3].out_channels
        assert block.conv[0].in_channels == block.up.out_channels + skip
    assert net(_x(size=32, n=1)).shape == (1, 4, 32, 32)  # a new size divisible by 2 ** 2


@pytest.mark.parametrize("ranking", ["uniform", "global"])
def test_two_branch_keeps_both_heads(ranking):
    torch.manual_seed(0)
    net = TwoBranchUNet(3, base_channels=4, depth=3)
    before = count_parameters(net)
    prune_channels(net, _x(), 0.5, ranking=ranking)
    assert count_parameters(net) < before
    assert net.seg.head.out_channels == net.dist.head.out_channels == 1
    seg, dist = net(_x())
    assert seg.shape == dist.shape == (2, 1, 16, 16)
    if ranking == "uniform":
        assert count_parameters(net) == count_parameters(TwoBranchUNet(3, 2, 3))


def test_ignored_branch_stays_dense():
    torch.manual_seed(0)
    net = TwoBranchUNet(3, base_channels=4, depth=3)
    dense = {k: v for k, v in channel_widths(net).items() if k.startswith("dist.")}
    prune_channels(net, _x(), 0.5, ranking="uniform", ignored=["dist"])
    widths = channel_widths(net)
    assert {k: v for k, v in widths.items() if k.startswith("dist.")} == dense
    assert widths["seg.encoder.2.3"] == 8


@pytest.mark.parametrize("ranking", ["uniform", "global"])
def test_repeated_pruning_compounds_and_keeps_a_channel_per_layer(ranking):
    torch.manual_seed(0)
    net = UNet(3, 4, base_channels=4, depth=3)
    prune_channels(net, _x(), 0.5, ranking=ranking)
    # 92 prunable channels (4+4+8+8+16+16 encoder, 8+8+8 and 4+4+4 decoder): half of them go
    assert sum(w for name, w in channel_widths(net).items() if name != "head") == 46
    first = count_parameters(net)
    prune_channels(net, _x(), 0.5, ranking=ranking)
    assert count_parameters(net) < first
    for _ in range(4):
        prune_channels(net, _x(), 0.9, ranking=ranking)
    widths = channel_widths(net)
    assert widths.pop("head") == 4
    assert min(widths.values()) >= 1
    assert net(_x()).shape == (2, 4, 16, 16)


def test_max_layer_ratio_caps_each_layer():
    net = UNet(3, 1, base_channels=4, depth=3)
    prune_channels(net, _x(), 0.9, ranking="uniform", max_layer_ratio=0.5)
    assert channel_widths(net) == channel_widths(UNet(3, 1, base_channels=2, depth=3))


@pytest.mark.parametrize("ranking", ["uniform", "global", "cost"])
def test_min_channels_is_a_floor_across_steps(ranking):
    """Widths 4-8-16 with a floor of 6: repeated deep cuts stop every layer at 6 channels,
    and the 4-channel layers, already narrower, keep their 4."""
    torch.manual_seed(0)
    net = UNet(3, 1, base_channels=4, depth=3)
    for _ in range(3):
        prune_channels(net, _x(), 0.9, ranking=ranking, min_channels=6)
    widths = channel_widths(net)
    assert widths.pop("head") == 1
    expected = {name: min(w, 6) for name, w in channel_widths(UNet(3, 1, 4, 3)).items()}
    expected.pop("head")
    assert widths == expected
    assert net(_x()).shape == (2, 1, 16, 16)


def test_bad_arguments_are_named():
    x = _x()
    with pytest.raises(ValueError, match="head"):
        output_layers(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 1, 1)))
    with pytest.raises(ValueError, match="head"):
        prune_channels(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 1, 1)), x, 0.5)
    net = UNet(3, 1, base_channels=2, depth=2)
    for ratio in (0, 1, 1.5, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match="ratio"):
            prune_channels(net, x, ratio)
    with pytest.raises(ValueError, match="importance"):
        prune_channels(net, x, 0.5, importance="l3")
    with pytest.raises(ValueError, match="ranking"):
        prune_channels(net, x, 0.5, ranking="layerwise")
    with pytest.raises(ValueError, match="max_layer_ratio"):
        prune_channels(net, x, 0.5, max_layer_ratio=0)
    with pytest.raises(ValueError, match="round_to"):
        prune_channels(net, x, 0.5, round_to=0)
    with pytest.raises(ValueError, match="min_channels=0"):
        prune_channels(net, x, 0.5, min_channels=0)
    with pytest.raises(ValueError, match="ignored"):
        prune_channels(net, x, 0.5, ignored=["decoder.9"])
    assert channel_widths(net) == channel_widths(UNet(3, 1, base_channels=2, depth=2))


def _silence_odd_channels(net: nn.Module) -> None:
    """Zero every weight that writes or reads an odd channel. With even widths the odd inputs
    of every layer, skip concatenations included, are exactly the silenced outputs, so those
    channels carry 0 in eval mode and score 0 under any magnitude criterion."""
    with torch.no_grad():
        for name, m in net.named_modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight[1::2] = 0
                m.bias[1::2] = 0
            elif isinstance(m, nn.ConvTranspose2d):  # weight is (in, out, k, k)
                m.weight[:, 1::2] = 0
                m.weight[1::2] = 0
                m.bias[1::2] = 0
            elif isinstance(m, nn.Conv2d):
                if not name.endswith("head"):
                    m.weight[1::2] = 0
                if not name.endswith("encoder.0.0"):  # image channels are not prunable
                    m.weight[:, 1::2] = 0


@pytest.mark.parametrize("ranking", ["uniform", "global"])
@pytest.mark.parametrize("importance", ["l1", "l2"])
def test_pruning_removes_exactly_the_silent_channels(ranking, importance):
    torch.manual_seed(0)
    net = UNet(3, 4, base_channels=4, depth=3)
    _silence_odd_channels(net)
    net.eval()
    x = _x()
    expected = net(x)
    old = {k: v.clone() for k, v in net.state_dict().items()}
    prune_channels(net, x, 0.5, importance=importance, ranking=ranking)
    assert channel_widths(net) == channel_widths(UNet(3, 4, base_channels=2, depth=3))
    torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-6)
    # the survivors are the even channels, at their original values, across the concatenation
    new = net.state_dict()
    assert torch.equal(new["encoder.0.0.weight"], old["encoder.0.0.weight"][0::2])
    assert torch.equal(new["encoder.1.4.running_var"], old["encoder.1.4.running_var"][0::2])
    assert torch.equal(new["decoder.0.up.weight"], old["decoder.0.up.weight"][0::2, 0::2])
    assert torch.equal(new["decoder.1.conv.0.weight"], old["decoder.1.conv.0.weight"][0::2, 0::2])
    assert torch.equal(new["head.weight"], old["head.weight"][:, 0::2])


def test_flags_are_restored_and_the_pruned_net_trains():
    torch.manual_seed(0)
    net = UNet(3, 1, base_channels=4, depth=3)
    net.encoder[0][1].eval()  # a frozen BatchNorm stays frozen
    net.encoder[0][0].weight.requires_grad_(False)
    with torch.no_grad():  # tracing needs autograd: prune_channels must turn it back on
        prune_channels(net, _x(), 0.5)
    assert net.training and not net.encoder[0][1].training
    assert not net.encoder[0][0].weight.requires_grad and net.head.weight.requires_grad
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    before = net.head.weight.detach().clone()
    loss = net(_x()).square().mean()
    loss.backward()
    optimizer.step()
    assert not torch.equal(net.head.weight, before)
    net.eval()
    prune_channels(net, _x(), 0.5)
    assert not net.training


def test_cost_ranking_removes_the_most_expensive_channels_first():
    """All weights equal: magnitudes tie, so "cost" removes channels by the parameters each
    one holds. In UNet(3, 1, 4, 3) a channel of encoder.1.3 holds the most, by hand: its own
    3x3x8 filter (72), BatchNorm (2), a 3x3 slice of each of encoder.2.0's 16 filters (144)
    and, through the skip, of decoder.0.conv.0's 8 filters (72): 290, against 218 for the
    next (encoder.2.0, decoder.0.conv.0). With 2 of the 92 prunable channels to go, both
    come from encoder.1.3."""
    net = UNet(3, 1, 4, 3)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
    before = channel_widths(net)
    prune_channels(net, _x(), 2 / 92, ranking="cost")
    after = channel_widths(net)
    changed = {name: (before[name], after[name]) for name in before if before[name] != after[name]}
    assert changed == {"encoder.1.3": (8, 6)}
