import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from medprune.models import TwoBranchUNet
from medprune.pruning import magnitude_masks, prunable_parameters, sparsity_stats


def test_global_masks_equal_torch_global_unstructured():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Linear(8, 5))
    params = prunable_parameters(net)
    masks = magnitude_masks(params, 0.7, "global")
    ref = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.Linear(8, 5))
    ref.load_state_dict(net.state_dict())
    prune.global_unstructured(
        [(m, "weight") for m in ref], pruning_method=prune.L1Unstructured, amount=0.7
    )
    for i, m in enumerate(ref):
        assert torch.equal(masks[f"{i}.weight"], m.weight_mask.bool())


def test_layerwise_prunes_every_layer_to_the_same_count():
    torch.manual_seed(0)
    params = {"a": torch.randn(10, 10), "b": torch.randn(3, 7) * 100}
    masks = magnitude_masks(params, 0.5, "layerwise")
    assert int((~masks["a"]).sum()) == 50
    assert int((~masks["b"]).sum()) == round(0.5 * 21)  # 10: Python rounds half to even


def test_global_uses_one_threshold():
    # the small layer holds all of the smallest weights, so global prunes only it
    params = {"small": torch.full((4,), 0.1), "big": torch.arange(1.0, 5.0)}
    masks = magnitude_masks(params, 0.5, "global")
    assert masks["small"].sum() == 0 and masks["big"].all()


def test_known_mask_and_already_zero_weights_go_first():
    w = torch.tensor([[0.0, -3.0], [0.5, 2.0]])
    assert magnitude_masks({"w": w}, 0.25, "global")["w"].tolist() == [[False, True], [True, True]]
    assert magnitude_masks({"w": w}, 0.5, "global")["w"].tolist() == [[False, True], [False, True]]


@pytest.mark.parametrize(
    ("sparsity", "scope", "error", "match"),
    [
        (1.0, "global", ValueError, r"sparsity=1.0: expected a number in \[0, 1\)"),
        (-0.1, "global", ValueError, r"sparsity=-0.1"),
        ("0.5", "global", TypeError, "expected a number"),
        (0.5, "channel", ValueError, "scope='channel': expected one of global, layerwise"),
    ],
)
def test_bad_arguments(sparsity, scope, error, match):
    with pytest.raises(error, match=match):
        magnitude_masks({"w": torch.ones(3)}, sparsity, scope)


def test_prunable_selection_by_type_and_branch_glob():
    net = TwoBranchUNet(base_channels=2, depth=3)
    names = list(prunable_parameters(net))
    assert all(n.endswith(".weight") for n in names)
    # 3 encoder blocks x 2 convs + 2 up-blocks x (1 transposed + 2 convs) + head, per branch
    assert len(names) == 2 * (6 + 6 + 1)
    seg = prunable_parameters(net, include=["seg.*"])
    assert len(seg) == 13 and all(n.startswith("seg.") for n in seg)
    no_head = prunable_parameters(net, exclude=["*.head.weight"])
    assert len(no_head) == 24


def test_sparsity_stats_counts_zeros():
    stats = sparsity_stats({"a": torch.tensor([0.0, 1.0, 0.0, 2.0]), "b": torch.zeros(4)})
    assert stats == {"params": 8, "nonzero": 2, "sparsity": 0.75}


def test_previously_pruned_weights_never_come_back():
    # the pruned weight has since grown large (as momentum would push it): it stays pruned,
    # and the next-smallest live weight goes instead
    w = torch.tensor([5.0, 0.1, 0.2, 3.0])
    previous = {"w": torch.tensor([False, True, True, True])}
    masks = magnitude_masks({"w": w}, 0.5, "global", previous=previous)
    assert masks["w"].tolist() == [False, False, True, True]
    # ties among zeros: without previous masks either zero may go; with them, the pruned one
    z = torch.zeros(4)
    prev = {"z": torch.tensor([True, True, False, True])}
    assert magnitude_masks({"z": z}, 0.25, "layerwise", previous=prev)["z"].tolist() == [
        True,
        True,
        False,
        True,
    ]


def test_min_density_keeps_a_floor_and_global_still_meets_the_target():
    # "small" holds the smallest weights: plain global pruning would empty it
    params = {"small": torch.full((10,), 0.01), "big": torch.arange(1.0, 91.0)}
    plain = magnitude_masks(params, 0.5, "global")
    assert int(plain["small"].sum()) == 0
    floored = magnitude_masks(params, 0.5, "global", min_density=0.2)
    assert int(floored["small"].sum()) == 2  # ceil(0.2 * 10)
    # the 2 weights saved in "small" are pruned in "big" instead: still 50 of 100 pruned
    assert int((~floored["small"]).sum() + (~floored["big"]).sum()) == 50
    assert int((~floored["big"]).sum()) == 42 and not floored["big"][-48:].logical_not().any()
    layerwise = magnitude_masks({"w": torch.arange(1.0, 11.0)}, 0.95, "layerwise", min_density=0.0)
    assert int(layerwise["w"].sum()) == 0  # round(9.5) = 10 (half to even): layer emptied
    with pytest.raises(ValueError, match="unreachable with min_density=0.1"):
        magnitude_masks({"w": torch.arange(1.0, 11.0)}, 0.95, "layerwise", min_density=0.1)
    with pytest.raises(ValueError, match="unreachable with min_density=0.5"):
        magnitude_masks(params, 0.6, "global", min_density=0.5)
