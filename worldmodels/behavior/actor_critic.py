"""Actor and critic trained on imagined rollouts: REINFORCE (DreamerV3, both action kinds), the
gradient of the imagined return through the model (Dreamer V1/V2), or a mix of both."""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..nn.dists import (
    TwoHotSymlog,
    bounded_normal,
    categorical_entropy,
    mode_onehot,
    sample_onehot,
    straight_through,
    symlog_bins,
    unimix_logits,
    wide,
)
from ..nn.layers import MLP, SparseFeat, time_slice

Feat = Tensor | SparseFeat


class Actor(nn.Module):
    """Policy over model features: a 1%-unimix categorical (one-hot actions) or a bounded normal."""

    def __init__(
        self,
        feat_dim: int,
        action_dim: int,
        discrete: bool,
        *,
        units: int,
        layers: int,
        unimix: float,
        onehot: tuple[int, int] | None = None,
    ):
        super().__init__()
        self.discrete, self.action_dim, self.unimix = discrete, action_dim, unimix
        out = action_dim if discrete else 2 * action_dim
        self.net = MLP(feat_dim, out, units=units, layers=layers, onehot=onehot, out_scale=0.01)

    def _params(self, feat: Feat):
        out = self.net(feat)
        if self.discrete:
            return unimix_logits(out, self.unimix)
        return out.chunk(2, -1)

    @torch.no_grad()
    def act(self, feat: Feat, mode: bool = False, clip: bool = True) -> Tensor:
        """Action ``(..., A)``: one-hot for discrete, a bounded-normal sample for continuous.

        ``clip`` limits continuous actions to [-1, 1] for the environment. Imagination passes
        ``clip=False`` so that the action the model sees and the action whose log-probability
        the actor is trained on are the same sample; scoring a clipped value would bias the
        policy gradient (it is not a point the density produced).
        """
        params = self._params(feat)
        if self.discrete:
            probs = params.exp()
            return mode_onehot(probs) if mode else sample_onehot(probs)
        dist = bounded_normal(*params)
        action = dist.mean if mode else dist.sample()
        return action.clamp(-1, 1) if clip else action

    def rsample(self, feat: Tensor) -> Tensor:
        """A sample ``(..., A)`` that carries the gradient back to the policy: reparameterised for
        continuous actions (unclipped, as in imagination), straight-through one-hot for discrete."""
        params = self._params(feat)
        if self.discrete:
            probs = params.exp()
            return straight_through(sample_onehot(probs.detach()), probs)
        return bounded_normal(*params).rsample()

    def probs(self, feat: Feat) -> Tensor:
        """Action probabilities ``(..., A)`` of a discrete policy (unimix included)."""
        assert self.discrete, "probs is defined for discrete actions"
        return self._params(feat).exp()

    def log_prob_entropy(self, feat: Feat, action: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probability of ``action`` and the policy entropy, both ``(...)``."""
        params = self._params(feat)
        if self.discrete:
            logp = (wide(params) * action.to(wide(params).dtype)).sum(-1)
            return logp, categorical_entropy(params)
        dist = bounded_normal(*params)
        return dist.log_prob(action.to(dist.mean.dtype)).sum(-1), dist.entropy().sum(-1)


class Critic(nn.Module):
    """Two-hot symlog value head; its output layer starts at zero (DreamerV3)."""

    def __init__(self, feat_dim: int, *, units: int, layers: int, bins: int, onehot: tuple[int, int] | None = None):
        super().__init__()
        self.net = MLP(feat_dim, bins, units=units, layers=layers, zero_init=True, onehot=onehot)
        self.register_buffer("bins", symlog_bins(bins), persistent=False)

    def forward(self, feat: Feat) -> TwoHotSymlog:
        return TwoHotSymlog(self.net(feat), self.bins)


class SlowCritic(nn.Module):
    """An EMA copy of the critic; the critic is regularised towards it."""

    def __init__(self, critic: Critic):
        super().__init__()
        self.net = copy.deepcopy(critic)
        self.net.requires_grad_(False)

    @torch.no_grad()
    def update(self, critic: Critic, fraction: float) -> None:
        for slow, fast in zip(self.net.parameters(), critic.parameters()):
            slow.lerp_(fast, fraction)

    def forward(self, feat: Feat) -> TwoHotSymlog:
        return self.net(feat)


class CostTerms(NamedTuple):
    """The cost side of constrained actor-critic training (behavior/constraints.py)."""

    critic: Critic  # the cost critic: the discounted cost return of a state
    slow_critic: SlowCritic
    returns: Tensor  # (N, H) cost lambda-returns
    value: Tensor  # (N, H+1) the cost critic's values (bootstrap and baseline)
    scale: Tensor  # () percentile scale of the cost returns, >= 1
    multiplier: Tensor  # () the Lagrange multiplier, >= 0


def value_loss(critic: Critic, slow_critic: SlowCritic, feat_k: Feat, returns: Tensor, weight: Tensor, slow_reg: float):
    """The two-hot critic loss on ``sg(returns)`` plus the pull towards the slow critic."""
    dist = critic(feat_k)
    slow_target = slow_critic(feat_k).mean().detach()
    return -(weight * (dist.log_prob(returns.detach()) + slow_reg * dist.log_prob(slow_target))).mean()


def actor_critic_losses(
    *,
    actor: Actor,
    critic: Critic,
    slow_critic: SlowCritic,
    feat: Feat,  # (N, H+1, F) imagined states s_0..s_H (carrying gradients only for the dynamics estimator)
    action: Tensor,  # (N, H, A) action taken at s_0..s_{H-1}
    returns: Tensor,  # (N, H) lambda-returns R_0..R_{H-1}
    value: Tensor,  # (N, H+1) the critic's values: the returns' bootstrap and the baseline
    weight: Tensor,  # (N, H) cumulative continue probability up to s_k
    scale: Tensor,  # () percentile return scale, >= 1
    entropy: float,
    slow_reg: float,
    reinforce: float = 1.0,  # share of REINFORCE in the actor's objective; the rest is the return's gradient
    cost: CostTerms | None = None,  # constrained learning: the cost critic's terms and the multiplier
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Scalar actor and critic losses plus diagnostics.

    The actor maximises ``reinforce * logp(a) sg(R - v) + (1 - reinforce) * R`` per step, both in
    units of the return scale, plus the entropy bonus: the first term is the score-function
    estimator, the second backpropagates the return through the differentiable rollout
    (``returns`` must then carry gradients). The critic fits ``sg(R)`` on detached states.

    With ``cost``, the return is the Lagrangian ``(R / S - lambda R_c / S_c) / (1 + lambda)``
    (each in its own scale; dividing by ``1 + lambda`` keeps the step size as the multiplier
    grows, as PPO-Lagrangian does), and the cost critic fits ``sg(R_c)`` (loss ``cost_critic``)."""
    feat_k = time_slice(feat, slice(None, -1))
    feat_k = feat_k.detach() if isinstance(feat_k, Tensor) else feat_k.map(lambda x: x.detach())
    weight = weight.detach()
    advantage = (returns - value[:, :-1]).detach() / scale
    scaled_return = returns / scale
    if cost is not None:
        lam = cost.multiplier.detach()
        cost_advantage = (cost.returns - cost.value[:, :-1]).detach() / cost.scale
        advantage = (advantage - lam * cost_advantage) / (1 + lam)
        scaled_return = (scaled_return - lam * cost.returns / cost.scale) / (1 + lam)
    logp, ent = actor.log_prob_entropy(feat_k, action.detach())
    objective = entropy * ent
    if reinforce > 0:
        objective = objective + reinforce * logp * advantage
    if reinforce < 1:
        objective = objective + (1 - reinforce) * scaled_return
    actor_loss = -(weight * objective).mean()
    losses = {"actor": actor_loss, "critic": value_loss(critic, slow_critic, feat_k, returns, weight, slow_reg)}
    metrics = {
        "entropy": ent.mean().detach(),
        "return": returns.mean().detach(),
        "advantage": advantage.mean(),
        "return_scale": scale.detach(),
        "value": value.mean().detach(),
    }
    if cost is not None:
        losses["cost_critic"] = value_loss(cost.critic, cost.slow_critic, feat_k, cost.returns, weight, slow_reg)
        metrics.update(
            {"cost_return": cost.returns.mean().detach(), "cost_value": cost.value.mean().detach(), "lagrange": lam}
        )
    return losses, metrics
