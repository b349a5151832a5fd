"""Turning imagined rollouts into planner scores.

A model's rollout gives, per candidate, returns of shape ``(N, K, M)``: K ensemble members
(1 for a single latent model) times M particles each. ``summarize`` reduces them to ``(N,)``:

* ``mean``: expected return;
* ``risk``: mean minus ``beta`` times the spread of the members' mean returns (epistemic risk);
* ``cvar``: mean of the worst ``alpha`` fraction of all particle returns (tail risk);
* ``optimistic``: mean plus ``beta`` times the members' spread (explores where models disagree).

``constrained`` (:func:`constrained`) also reads the predicted costs: feasible plans first.
"""

from __future__ import annotations

import torch
from torch import Tensor


def discounted_return(rewards: Tensor, conts: Tensor, discount: float, bootstrap: Tensor | None = None) -> Tensor:
    """``sum_t discount^t r_t * P(alive before t)`` plus ``discount^H P(alive) V`` for ``(..., H)`` inputs.

    ``conts[..., t]`` is the probability the episode goes on after step ``t``; the reward of the
    step that ends the episode still counts.
    """
    horizon = rewards.shape[-1]
    alive = torch.cumprod(torch.cat([torch.ones_like(conts[..., :1]), conts[..., :-1]], -1), -1)
    powers = discount ** torch.arange(horizon, dtype=rewards.dtype, device=rewards.device)
    ret = (rewards * alive * powers).sum(-1)
    if bootstrap is not None:
        ret = ret + discount**horizon * alive[..., -1] * conts[..., -1] * bootstrap
    return ret


def summarize(returns: Tensor, kind: str = "mean", beta: float = 1.0, alpha: float = 0.1) -> Tensor:
    """Scores ``(N,)`` from returns ``(N, K, M)`` (see the module docstring)."""
    n = returns.shape[0]
    returns = returns.float()
    mean = returns.mean((1, 2))
    if kind == "mean":
        return mean
    if kind in ("risk", "optimistic"):
        spread = returns.mean(2).std(1, unbiased=False)  # across members
        return mean - beta * spread if kind == "risk" else mean + beta * spread
    if kind == "cvar":
        flat = returns.reshape(n, -1)
        worst = max(1, int(round(alpha * flat.shape[1])))
        return flat.topk(worst, dim=1, largest=False).values.mean(1)
    raise ValueError(f"objective must be one of mean, risk, cvar, optimistic; got {kind!r}")


def cost_budget(limit: float, horizon: int, episode_length: int, slack: float) -> float:
    """The predicted cost a plan of ``horizon`` steps may carry: its share of an episode's
    ``limit`` spread over ``episode_length`` steps, plus ``slack`` for the model's noise (with a
    limit of 0 no prediction is exactly 0, so no plan would ever be feasible without it)."""
    return limit * min(horizon, episode_length) / episode_length + slack


def pessimistic_cost(costs: Tensor, quantile: float) -> Tensor:
    """Costs ``(N, K, M)`` -> ``(N,)``: the ``quantile`` of the members' mean costs, so uncertainty
    about danger counts as danger; a single model (K = 1) takes it over its particles."""
    per = costs.float().mean(2) if costs.shape[1] > 1 else costs.float().reshape(costs.shape[0], -1)
    return torch.quantile(per, quantile, dim=1)


def constrained(returns: Tensor, costs: Tensor, budget: float, quantile: float = 0.9) -> Tensor:
    """Scores ``(N,)`` ranking feasible plans (pessimistic cost ``<= budget``) above every infeasible
    one, the feasible by expected return, the infeasible by how far their cost exceeds the budget
    (least first), so a planner with no feasible candidate moves towards safety. ``returns`` and
    ``costs`` ``(N, K, M)``."""
    expected = returns.float().mean((1, 2))
    cost = pessimistic_cost(costs, quantile)
    feasible = cost <= budget
    span = (expected.max() - expected.min()).clamp_min(1.0)
    floor = expected.min() - span  # below every feasible score
    excess = (cost - budget).clamp_min(0)
    infeasible = floor - span * excess / excess.max().clamp_min(1e-6)
    return torch.where(feasible, expected, infeasible)
