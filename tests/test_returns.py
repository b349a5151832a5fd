import torch

from worldmodels.behavior.returns import ReturnScale, lambda_returns, replay_lambda_returns


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


def test_replay_lambda_returns_stop_at_episode_ends():
    """Rows: s0 s1 s2(terminal) | s3(first) s4 (truncated by the sequence's end).

    Monte Carlo (lam=1, gamma=0.5): R0 = r1 + 0.5 r2 = 1 + 0.5 = 1.5 and R1 = r2 = 1 (the
    terminal state is worth 0 whatever the net says); R3 = r4 + 0.5 V(s4) = 1 + 0.5 * 4 = 3.
    Row 2 is terminal and row 2 -> 3 crosses episodes: neither is a target.
    """
    reward = torch.tensor([[0.0, 1.0, 1.0, 9.0, 1.0]])
    terminal = torch.tensor([[False, False, True, False, False]])
    first = torch.tensor([[True, False, False, True, False]])
    value = torch.tensor([[7.0, 7.0, 7.0, 7.0, 4.0]])
    ret, valid = replay_lambda_returns(reward, terminal, first, value, gamma=0.5, lam=1.0)
    assert valid.tolist() == [[True, True, False, True]]
    torch.testing.assert_close(ret[valid], torch.tensor([1.5, 1.0, 3.0]))
    td, _ = replay_lambda_returns(reward, terminal, first, value, gamma=0.5, lam=0.0)
    torch.testing.assert_close(td[valid], torch.tensor([1.0 + 0.5 * 7.0, 1.0, 3.0]))
