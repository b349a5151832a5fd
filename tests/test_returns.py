import torch

from worldmodels.behavior.returns import ReturnScale, lambda_returns


def naive_lambda_returns(reward, cont, value, gamma, lam):
    N, H = reward.shape
    out = torch.zeros(N, H)
    for n in range(N):
        nxt = value[n, H].item()
        for k in reversed(range(H)):
            disc = gamma * cont[n, k].item()
            nxt = reward[n, k].item() + disc * ((1 - lam) * value[n, k + 1].item() + lam * nxt)
            out[n, k] = nxt
    return out


def test_lambda_returns_match_plain_loop():
    g = torch.Generator().manual_seed(1)
    reward, cont = torch.randn(5, 7, generator=g), (torch.rand(5, 7, generator=g) > 0.2).float()
    value = torch.randn(5, 8, generator=g)
    got = lambda_returns(reward, cont, value, gamma=0.97, lam=0.9)
    torch.testing.assert_close(got, naive_lambda_returns(reward, cont, value, 0.97, 0.9))


def test_lambda_one_is_discounted_sum_and_zero_is_td():
    reward, cont, value = torch.ones(1, 3), torch.ones(1, 3), torch.full((1, 4), 2.0)
    mc = lambda_returns(reward, cont, value, gamma=0.5, lam=1.0)
    assert abs(mc[0, 0].item() - (1 + 0.5 + 0.25 + 0.125 * 2)) < 1e-6
    td = lambda_returns(reward, cont, value, gamma=0.5, lam=0.0)
    torch.testing.assert_close(td, torch.full((1, 3), 2.0))


def test_return_scale_leaves_small_returns_alone_and_shrinks_large():
    scale = ReturnScale(decay=0.0)
    assert scale.update(torch.linspace(0, 0.5, 100)).item() == 1.0
    assert abs(scale.update(torch.linspace(0, 100, 1001)).item() - 90.0) < 0.5
