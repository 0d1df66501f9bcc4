import pytest

from medprune.models import TwoBranchUNet, UNet
from medprune.pruning.selection import ALL, DEFAULT_EXCLUDE, describe_selection, select_groups


def test_default_exclude_keeps_first_conv_and_heads_dense_in_both_models():
    for net, firsts in [
        (
            TwoBranchUNet(base_channels=2, depth=3),
            {"seg.encoder.0.0.weight", "dist.encoder.0.0.weight"},
        ),
        (UNet(in_channels=1, out_channels=4, base_channels=2, depth=3), {"encoder.0.0.weight"}),
    ]:
        groups = select_groups(net, ["*"], DEFAULT_EXCLUDE, {}, 0.5)
        (target, params) = groups[ALL]
        assert target == 0.5
        assert not firsts & set(params)
        assert not any(n.endswith("head.weight") for n in params)
        assert any(n.endswith("encoder.1.0.weight") for n in params)


def test_branch_targets_split_the_selection():
    net = TwoBranchUNet(base_channels=2, depth=3)
    groups = select_groups(net, ["*"], DEFAULT_EXCLUDE, {"seg": 0.9375, "dist": 0.95}, 0.5)
    assert list(groups) == ["seg", "dist"]
    assert groups["seg"][0] == 0.9375 and groups["dist"][0] == 0.95
    assert all(n.startswith("seg.") for n in groups["seg"][1])
    only_seg = select_groups(net, ["*"], [], {"seg": 0.9}, 0.5)
    assert list(only_seg) == ["seg"]  # dist has no target: it stays dense
    listing = describe_selection(net, only_seg)
    assert "seg.encoder.1.0.weight" in listing and "prune  seg -> 0.9000" in listing
    dist_line = next(line for line in listing.splitlines() if "dist.encoder.1.0.weight" in line)
    assert dist_line.rstrip().endswith("dense")


@pytest.mark.parametrize(
    ("include", "exclude", "targets", "match"),
    [
        (["seg.*", "sge.*"], [], {}, r"pruning.include pattern 'sge.\*' matches no prunable layer"),
        (["*"], ["*.nope.weight"], {}, r"pruning.exclude pattern '\*.nope.weight' matches no"),
        (["seg.*"], ["seg.*"], {}, "pruning selects no weights"),
        (["*"], [], {"cls": 0.9}, r"pruning.targets.cls: the network has no branch 'cls'"),
        (["seg.*"], [], {"dist": 0.9}, "include/exclude leave no layer of branch 'dist'"),
        (["*"], [], {"seg": 1.0}, r"pruning.targets.seg=1.0: expected a number in \[0, 1\)"),
    ],
)
def test_bad_selection_names_the_key(include, exclude, targets, match):
    net = TwoBranchUNet(base_channels=2, depth=3)
    with pytest.raises(ValueError, match=match):
        select_groups(net, include, exclude, targets, 0.5)
