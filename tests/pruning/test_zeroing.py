import torch

from medprune.pruning.zeroing import mask_gradients, zero_pruned_state


def _adam_with_history(weight):
    opt = torch.optim.Adam([weight], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (weight**2).sum().backward()
        opt.step()
    return opt


def test_moment_buffers_zeroed_where_pruned_and_kept_elsewhere():
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0, -4.0]))
    opt = _adam_with_history(weight)
    state = opt.state[weight]
    assert torch.all(state["exp_avg"] != 0) and torch.all(state["exp_avg_sq"] != 0)
    before = {k: v.clone() for k, v in state.items() if k != "step"}
    mask = torch.tensor([True, False, True, False])
    assert zero_pruned_state([opt], {"w": weight}, {"w": mask}) == 2
    for key in ("exp_avg", "exp_avg_sq"):
        assert state[key][~mask].eq(0).all()
        assert torch.equal(state[key][mask], before[key][mask])


def test_masked_gradients_and_zeroed_moments_keep_a_pruned_weight_at_zero():
    # without masking, Adam's remembered momentum moves a zeroed weight off zero next step
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = _adam_with_history(weight)
    mask = {"w": torch.tensor([True, False])}
    with torch.no_grad():
        weight.mul_(mask["w"])
    naive = weight.detach().clone()
    opt_naive = torch.optim.Adam([torch.nn.Parameter(naive)], lr=0.1)
    opt_naive.load_state_dict(opt.state_dict())
    p = opt_naive.param_groups[0]["params"][0]
    opt_naive.zero_grad()
    (p**2).sum().backward()
    opt_naive.step()
    assert p[1] != 0  # momentum revived it

    zero_pruned_state([opt], {"w": weight}, mask)
    for _ in range(3):
        opt.zero_grad()
        ((weight - 5.0) ** 2).sum().backward()  # a gradient that pulls the pruned weight away
        mask_gradients({"w": weight}, mask)
        opt.step()
        assert weight[1] == 0
    assert weight[0] != 0


def test_sgd_momentum_buffer_is_zeroed_too():
    weight = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    (weight.sum()).backward()
    opt.step()
    zero_pruned_state([opt], {"w": weight}, {"w": torch.tensor([True, False, False])})
    assert opt.state[weight]["momentum_buffer"].tolist() == [1.0, 0.0, 0.0]
