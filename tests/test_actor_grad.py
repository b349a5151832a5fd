"""The actor's three estimators (--dreamer.actor-grad): the dynamics estimator is the true
gradient of the imagined return, checked against finite differences on a tiny differentiable model."""

import pytest
import torch
from torch import nn

from tests.plugins import LinearGaussian, LinearState
from worldmodels.agents.dreamer import Dreamer
from worldmodels.specs import ActionSpec, ObsSpec


def tiny_agent(actor_grad: str, discrete: bool = False) -> Dreamer:
    torch.manual_seed(0)
    wm = LinearGaussian(ObsSpec(vector=3), action_dim=2, latent=4, noise=0.1)
    # A constant continue probability: the loss weights (cumulative continues) are constants, so
    # the finite differences see exactly the objective the estimator differentiates.
    nn.init.zeros_(wm.cont_head.weight)
    nn.init.constant_(wm.cont_head.bias, 2.0)
    agent = Dreamer(
        wm, ActionSpec(dim=2, discrete=discrete), units=16, layers=1, unimix=0.01, bins=31, model_lr=1e-3,
        model_clip=100.0, horizon=5, gamma=0.9, lam=0.8, entropy=0.0, actor_lr=1e-3, critic_lr=1e-3, ac_clip=100.0,
        slow_critic_fraction=0.02, slow_critic_reg=1.0, return_decay=0.99, actor_grad=actor_grad, replay_value=0.0,
    )  # fmt: skip
    for p in agent.critic.parameters():  # a critic with opinions, so the bootstrap carries gradient too
        nn.init.normal_(p, std=0.3)
    agent.double()
    agent.return_scale.update = lambda returns: torch.tensor(2.0, dtype=returns.dtype)  # a fixed scale
    return agent


def actor_loss(agent: Dreamer, start: LinearState) -> torch.Tensor:
    torch.manual_seed(1)  # the same action noise and model noise at every evaluation
    losses, _, _ = agent._imagination_losses(start, torch.ones(start.z.shape[0], dtype=torch.float64))
    return losses["actor"]


def test_dynamics_gradient_matches_finite_differences():
    agent = tiny_agent("dynamics")
    start = LinearState(torch.randn(6, 4, dtype=torch.float64))
    params = list(agent.actor.parameters())
    grads = torch.autograd.grad(actor_loss(agent, start), params)
    assert all(p.grad is None for p in agent.world_model.parameters())  # the model is not trained by it
    assert sum(float(g.abs().sum()) for g in grads) > 1e-3
    gen = torch.Generator().manual_seed(2)
    eps = 1e-6
    for _ in range(3):
        direction = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.add_(eps * d)
            up = actor_loss(agent, start)
            for p, d in zip(params, direction):
                p.sub_(2 * eps * d)
            down = actor_loss(agent, start)
            for p, d in zip(params, direction):
                p.add_(eps * d)
        numeric = float((up - down) / (2 * eps))
        analytic = float(sum((g * d).sum() for g, d in zip(grads, direction)))
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_reinforce_has_no_gradient_through_the_rollout():
    # REINFORCE's actor loss depends on the policy only through log-probabilities of the sampled
    # actions: perturbing the actor moves the loss, but the gradient is the score function's,
    # which differs from the return's gradient that the dynamics estimator follows.
    start = LinearState(torch.randn(6, 4, dtype=torch.float64))
    reinforce, dynamics = tiny_agent("reinforce"), tiny_agent("dynamics")
    g_r = torch.autograd.grad(actor_loss(reinforce, start), list(reinforce.actor.parameters()))
    g_d = torch.autograd.grad(actor_loss(dynamics, start), list(dynamics.actor.parameters()))
    flat_r, flat_d = torch.cat([g.flatten() for g in g_r]), torch.cat([g.flatten() for g in g_d])
    assert not torch.allclose(flat_r, flat_d)


@pytest.mark.parametrize("actor_grad", ["dynamics", "mix"])
@pytest.mark.parametrize("discrete", [False, True])
def test_train_step_with_gradients_through_the_dream(actor_grad, discrete):
    agent = tiny_agent(actor_grad, discrete).float()
    B, T = 3, 6
    batch = {
        "vector": torch.randn(B, T, 3),
        "action": torch.nn.functional.one_hot(torch.randint(0, 2, (B, T)), 2).float()
        if discrete
        else torch.rand(B, T, 2),
        "reward": torch.randn(B, T),
        "is_first": torch.zeros(B, T, dtype=torch.bool),
        "is_terminal": torch.zeros(B, T, dtype=torch.bool),
    }
    before = [p.detach().clone() for p in agent.actor.parameters()]
    metrics = agent.train_step(batch)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert any(not torch.equal(a, p) for a, p in zip(before, agent.actor.parameters()))


def test_the_published_update_trains_every_part():
    # LaProp + AGC + replay value loss + critic targets, one backward pass: every parameter set
    # moves, the replay value loss is reported, and a second agent restores the optimiser state.
    torch.manual_seed(0)
    wm = LinearGaussian(ObsSpec(vector=3), action_dim=2, latent=4, noise=0.1)
    kwargs = dict(
        units=16, layers=1, unimix=0.01, bins=31, model_lr=1e-3, model_clip=100.0, horizon=5, gamma=0.9, lam=0.8,
        entropy=3e-4, actor_lr=1e-3, critic_lr=1e-3, ac_clip=100.0, slow_critic_fraction=0.02, slow_critic_reg=1.0,
        return_decay=0.99, optimizer="laprop", agc=0.3, warmup=10, replay_value=0.3, slow_targets=False,
    )  # fmt: skip
    agent = Dreamer(wm, ActionSpec(dim=2, discrete=True), **kwargs)
    B, T = 3, 6
    batch = {
        "vector": torch.randn(B, T, 3),
        "action": torch.nn.functional.one_hot(torch.randint(0, 2, (B, T)), 2).float(),
        "reward": torch.randn(B, T),
        "is_first": torch.zeros(B, T, dtype=torch.bool),
        "is_terminal": torch.zeros(B, T, dtype=torch.bool),
    }
    before = {
        n: [p.detach().clone() for p in m.parameters()]
        for n, m in (("wm", wm), ("actor", agent.actor), ("critic", agent.critic))
    }
    metrics = agent.train_step(batch)
    assert (
        "loss/replay_value" in metrics and {"grad_norm/model", "grad_norm/actor", "grad_norm/critic"} <= metrics.keys()
    )
    for name, module in (("wm", wm), ("actor", agent.actor), ("critic", agent.critic)):
        assert any(not torch.equal(a, p) for a, p in zip(before[name], module.parameters())), name
    twin = Dreamer(
        LinearGaussian(ObsSpec(vector=3), action_dim=2, latent=4), ActionSpec(dim=2, discrete=True), **kwargs
    )
    twin.load_optimizer_state(agent.optimizer_state())
    assert twin.optimizers["model"].state_dict()["state"][0]["step"] == 1
