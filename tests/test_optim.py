"""LaProp and adaptive gradient clipping against their published update rules, step by step."""

import math

import pytest
import torch

from worldmodels.nn.optim import LaProp, clip_by_agc_, make_optimizer


def laprop_by_hand(p0, grads, lr, b1, b2, eps, warmup):
    """The update rule of the LaProp paper (Ziyin et al. 2020, Algorithm 1) with bias correction
    and DreamerV3's linear warm-up, one float at a time."""
    p, m, v, out = p0, 0.0, 0.0, []
    for t, g in enumerate(grads, start=1):
        v = b2 * v + (1 - b2) * g * g
        u = g / (math.sqrt(v / (1 - b2**t)) + eps)
        m = b1 * m + (1 - b1) * u
        rate = lr * min(1.0, t / warmup) if warmup else lr
        p = p - rate * m / (1 - b1**t)
        out.append(p)
    return out


@pytest.mark.parametrize("warmup", [0, 3])
def test_laprop_follows_the_published_rule(warmup):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, generator=gen, dtype=torch.float64)
    grads = [torch.randn(5, generator=gen, dtype=torch.float64) * 10**k for k in (0, -3, 2, 0, -1, 1)]
    p = torch.nn.Parameter(x0.clone())
    opt = LaProp([p], lr=0.1, betas=(0.8, 0.95), eps=1e-3, warmup=warmup)
    trace = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        trace.append(p.detach().clone())
    for i in range(5):
        expected = laprop_by_hand(float(x0[i]), [float(g[i]) for g in grads], 0.1, 0.8, 0.95, 1e-3, warmup)
        assert [float(t[i]) for t in trace] == pytest.approx(expected, rel=1e-12, abs=1e-14)


def test_laprop_first_step_is_the_sign_times_lr():
    # With bias correction the first normalised gradient is g / |g|: every coordinate moves by lr.
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([1e-6, -3.0, 5e4])
    LaProp([p], lr=0.01).step()
    assert p.detach().tolist() == pytest.approx([-0.01, 0.01, -0.01], rel=1e-5)


def test_laprop_minimises_a_quadratic_and_its_state_round_trips():
    torch.manual_seed(0)
    target = torch.randn(10)
    w = torch.nn.Parameter(torch.zeros(10))
    opt = make_optimizer("laprop", [w], lr=0.05, eps=1e-20, warmup=10)
    for _ in range(400):
        opt.zero_grad()
        ((w - target) ** 2).sum().backward()
        opt.step()
    assert torch.allclose(w.detach(), target, atol=0.05)
    fresh = make_optimizer("laprop", [w], lr=0.05, eps=1e-20, warmup=10)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.state[w]["step"] == 400 and torch.equal(fresh.state[w]["mu"], opt.state[w]["mu"])


def test_agc_clips_each_tensor_to_its_share_of_the_weight_norm():
    big = torch.nn.Parameter(torch.full((4,), 2.0))  # norm 4
    small = torch.nn.Parameter(torch.zeros(3))  # norm 0: pmin applies
    fine = torch.nn.Parameter(torch.ones(2))  # norm sqrt(2)
    big.grad = torch.full((4,), 10.0)  # norm 20 > 0.3 * 4
    small.grad = torch.tensor([3.0, 0.0, 4.0])  # norm 5 > 0.3 * 1e-3
    fine.grad = torch.tensor([0.1, 0.0])  # norm 0.1 < 0.3 * sqrt(2): untouched
    norm = clip_by_agc_([big, small, fine], 0.3, pmin=1e-3)
    assert float(norm) == pytest.approx(math.sqrt(400 + 25 + 0.01))
    assert float(big.grad.norm()) == pytest.approx(0.3 * 4) and torch.allclose(big.grad / big.grad[0], torch.ones(4))
    assert float(small.grad.norm()) == pytest.approx(0.3e-3)
    assert fine.grad.tolist() == pytest.approx([0.1, 0.0])


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="laprop or adam"):
        make_optimizer("sgd", [torch.nn.Parameter(torch.zeros(1))], lr=1.0, eps=1e-8, warmup=0)
