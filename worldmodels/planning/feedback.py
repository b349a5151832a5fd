"""Closed-loop plans: a planner optimises the gains of a state-feedback law instead of actions.

An open-loop action sequence cannot hold an unstable system (a pole on a cart) for long: every
small model error grows, and almost every sampled sequence falls within a second, so the
horizon must stay short. A short horizon cannot see slow costs, such as a cart wandering into
the end of its rail on a survival-only task. A feedback law reacts to the predicted state at
every step, so its rollouts stay upright and long horizons become useful (PILCO's linear
controller, planned over by CEM or MPPI and re-planned before every action as MPC).

The law is time-invariant and linear in the normalised state:
``a = clip(W (s - mean) / std + b, -1, 1)``. A candidate is the flat vector ``[W, b]`` of
``A * (D + 1)`` numbers, which a shooting planner treats as a one-step "plan".
"""

from __future__ import annotations

import torch
from torch import Tensor

# Bounds of every gain and offset a planner samples: the initial sampling std (a fraction of
# the half-range, 0.5 by default) is then 1 action unit per state std.
GAIN_LIMIT = 2.0


class LinearFeedback:
    """Maps parameter vectors ``(N, A*(D+1))`` to laws ``states (K, N, D) -> actions (K, N, A)``.

    States are normalised by the caller's ``state_mean`` and ``state_std`` (a model's input
    statistics), so one gain scale suits every state dimension.
    """

    def __init__(self, state_dim: int, action_dim: int):
        self.state_dim, self.action_dim = state_dim, action_dim

    @property
    def size(self) -> int:
        """Parameters per candidate."""
        return self.action_dim * (self.state_dim + 1)

    def split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """``(N, P)`` -> gains ``(N, D, A)`` and offsets ``(N, A)``."""
        if params.ndim != 2 or params.shape[-1] != self.size:
            raise ValueError(
                f"linear feedback takes (N, {self.size}) parameters (A*(D+1) for A={self.action_dim} actions, "
                f"D={self.state_dim} state dims), got {tuple(params.shape)}"
            )
        d, a = self.state_dim, self.action_dim
        return params[:, : d * a].reshape(-1, d, a), params[:, d * a :]

    def law(self, params: Tensor, state_mean: Tensor, state_std: Tensor):
        """The feedback laws of ``params (N, P)``, applied to states ``(K, N, D)`` of every member."""
        gains, offsets = self.split(params.float())
        mean, std = state_mean.float(), state_std.float()

        def act(states: Tensor) -> Tensor:
            x = (states - mean) / std
            return (torch.einsum("knd,nda->kna", x, gains) + offsets).clamp_(-1.0, 1.0)

        return act

    def action(self, params: Tensor, state: Tensor, state_mean: Tensor, state_std: Tensor) -> Tensor:
        """The action ``(A,)`` that one parameter vector ``(P,)`` takes in one state ``(D,)``."""
        return self.law(params.reshape(1, -1), state_mean, state_std)(state.float().reshape(1, 1, -1))[0, 0]
