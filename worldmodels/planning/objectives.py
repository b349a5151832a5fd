"""Turning imagined rollouts into planner scores.

A model's rollout gives, per candidate, returns of shape ``(N, K, M)``: K ensemble members
(1 for a single latent model) times M particles each. ``summarize`` reduces them to ``(N,)``:

* ``mean``: expected return;
* ``risk``: mean minus ``beta`` times the spread of the members' mean returns (epistemic risk);
* ``cvar``: mean of the worst ``alpha`` fraction of all particle returns (tail risk);
* ``optimistic``: mean plus ``beta`` times the members' spread (explores where models disagree).
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
