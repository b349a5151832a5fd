"""The probabilistic ensemble on a known linear system: it predicts it, and it knows where it does not."""

import torch

from worldmodels.models.ensemble import GaussianEnsemble, Normalizer

A = torch.tensor([[0.9, 0.2], [-0.1, 0.8]])
B = torch.tensor([[0.0], [0.5]])
C = torch.tensor([1.0, -2.0])


def linear_data(n, scale=1.0, noise=0.01):
    s = (torch.rand(n, 2) * 2 - 1) * scale
    a = torch.rand(n, 1) * 2 - 1
    nxt = s @ A.T + a @ B.T + noise * torch.randn(n, 2)
    return s, a, nxt, s @ C


def fit(members=4, steps=1500):
    ens = GaussianEnsemble(2, 1, members=members, units=32, layers=2)
    s, a, nxt, r = linear_data(4000)
    ens.inputs.update(torch.cat([s, a], -1))
    ens.targets.update(torch.cat([nxt - s, r[:, None]], -1))
    opt = torch.optim.Adam(ens.parameters(), lr=3e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(s), (members, 128))  # each member its own bootstrap draw
        loss, _ = ens.transition_loss(
            s[idx], a[idx], r[idx], nxt[idx], torch.zeros(members, 128), torch.ones(members, 128, dtype=bool)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return ens


def test_ensemble_learns_a_linear_system_and_its_uncertainty_grows_off_data():
    ens = fit()
    s, a, nxt, r = linear_data(500)
    mean, var = ens.predict_members(s, a)
    assert (mean.mean(0) - nxt).abs().max() < 0.1
    assert (mean.mean(0) - nxt).pow(2).mean() < 2e-3
    # Aleatoric variance is learned near the true noise (0.01^2), bounded far below the data's spread.
    assert var.mean() < 1e-2
    inside = ens.disagreement(s, a).mean()
    far = ens.disagreement(s * 6, a).mean()  # states 6x outside the training box
    assert far > 10 * inside, (float(inside), float(far))
    # The reward head too: one step's reward is c . s.
    _, reward, cont = ens.step(s.expand(4, -1, -1), a.expand(4, -1, -1), sample=False)
    assert (reward.mean(0) - r).abs().max() < 0.15
    assert cont.min() > 0.9  # nothing ever terminated


def test_trajectory_sampling_shapes_and_member_spread():
    ens = GaussianEnsemble(2, 1, members=3, units=16, layers=1)
    roll = ens.rollout(torch.ones(2), torch.ones(7, 5, 1), particles_per_member=4)
    assert roll.rewards.shape == (7, 3, 4, 5) and roll.states.shape == (7, 3, 4, 5, 2)
    mean_roll = ens.rollout(torch.ones(2), torch.ones(7, 5, 1), particles_per_member=4, sample=False)
    # Without sampling, particles of one member agree; untrained members disagree with each other.
    assert torch.allclose(mean_roll.states[:, :, :1].expand_as(mean_roll.states), mean_roll.states)
    assert not torch.allclose(mean_roll.states[:, 0], mean_roll.states[:, 1])


def test_normalizer_matches_full_data_statistics():
    data = torch.randn(1000, 3) * torch.tensor([1.0, 5.0, 0.1]) + 2
    norm = Normalizer(3)
    for chunk in data.split(77):
        norm.update(chunk)
    assert torch.allclose(norm.mean, data.mean(0), atol=1e-4)
    assert torch.allclose(norm.std, data.std(0, unbiased=False), atol=1e-4)


def test_planning_rollout_equals_the_step_it_is_folded_from():
    """``rollout`` folds both normalisations into the weights for speed: it must be the same
    function as repeated ``step`` calls (exactly without noise, same spread with it)."""
    torch.manual_seed(0)
    ens = GaussianEnsemble(3, 1, members=4, units=16, layers=2)
    ens.inputs.update(torch.randn(500, 4) * torch.tensor([1.0, 2.0, 3.0, 0.5]) + 1)
    ens.targets.update(torch.randn(500, 4) * torch.tensor([0.1, 0.2, 0.3, 2.0]) - 0.5)
    obs, actions = torch.randn(3), torch.rand(6, 5, 1) * 2 - 1
    roll = ens.rollout(obs, actions, particles_per_member=2, sample=False)
    x, acts = obs.expand(4, 12, 3), actions.repeat_interleave(2, 0)
    with torch.no_grad():
        for t in range(5):
            x, r, c = ens.step(x, acts[:, t].expand(4, -1, -1), sample=False)
            torch.testing.assert_close(roll.states[..., t, :], x.reshape(4, 6, 2, 3).transpose(0, 1))
            torch.testing.assert_close(roll.rewards[..., t], r.reshape(4, 6, 2).transpose(0, 1))
            torch.testing.assert_close(roll.conts[..., t], c.reshape(4, 6, 2).transpose(0, 1))
        one = torch.zeros(1, 1, 1).expand(20_000, 1, 1)
        sampled = ens.rollout(obs, one).states[:, :, 0, 0]  # (N, K, D)
        reference, _, _ = ens.step(obs.expand(4, 20_000, 3), one[:, 0].expand(4, -1, -1))
    torch.testing.assert_close(sampled.std(0), reference.std(1), rtol=0.05, atol=0)
    torch.testing.assert_close(sampled.mean(0), reference.mean(1), rtol=0, atol=0.02)


def test_closed_loop_rollout_applies_the_law_to_every_particle_state():
    """A feedback law sees each particle's own predicted state at each step: the rollout must
    equal stepping the members by hand with the law's action in between."""
    torch.manual_seed(1)
    ens = GaussianEnsemble(3, 1, members=4, units=16, layers=2)
    ens.inputs.update(torch.randn(500, 4))
    ens.targets.update(torch.randn(500, 4) * 0.3)
    obs, gains = torch.randn(3), torch.randn(6 * 2, 3)  # 6 candidates x 2 particles

    def law(states):  # (K, N*M, D) -> (K, N*M, 1)
        return torch.tanh((states * gains).sum(-1, keepdim=True))

    roll = ens.rollout(obs, law, particles_per_member=2, sample=False, candidates=6, horizon=5)
    x = obs.expand(4, 12, 3)
    with torch.no_grad():
        for t in range(5):
            x, r, _ = ens.step(x, law(x), sample=False)
            torch.testing.assert_close(roll.states[..., t, :], x.reshape(4, 6, 2, 3).transpose(0, 1))
            torch.testing.assert_close(roll.rewards[..., t], r.reshape(4, 6, 2).transpose(0, 1))


def test_runaway_predictions_stay_finite_within_the_state_limits():
    """A model whose predicted change is ~1e18 per step would overflow to inf within two
    steps, and NaN would follow; rollouts and steps hold states within STATE_LIMIT standard
    deviations of the data instead, so planning over long horizons always gets finite scores."""
    torch.manual_seed(2)
    ens = GaussianEnsemble(3, 1, members=2, units=16, layers=2)
    ens.inputs.update(torch.randn(500, 4))
    ens.targets.var[:-1] = 1e36  # predicted deltas of ~1e18
    low, high = ens.state_limits()
    roll = ens.rollout(torch.zeros(3), torch.ones(4, 50, 1), sample=True)
    assert bool(torch.isfinite(roll.states).all() and torch.isfinite(roll.rewards).all())
    assert bool(((roll.states >= low) & (roll.states <= high)).all())
    with torch.no_grad():
        x, _, _ = ens.step(torch.zeros(2, 4, 3), torch.ones(2, 4, 1))
    assert bool(((x >= low) & (x <= high)).all()) and float(x.abs().max()) > 1
