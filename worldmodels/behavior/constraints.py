"""Constrained learning in imagination: a PID Lagrange multiplier on the imagined cost.

The actor maximises the imagined return minus ``lambda`` times the imagined cost return; the
multiplier rises while the policy's expected cost per episode is above ``--cost-limit`` and
falls (never below 0) once it is under. The multiplier is a PID controller on the constraint's
violation (Stooke, Achiam & Abbeel 2020, "Responsive Safety in Reinforcement Learning by PID
Lagrangian Methods"), the Lagrangian of SafeDreamer's OSRP-Lag variant (Huang et al. 2024).

Why PID rather than the plain gradient-ascent multiplier (integral only) or SafeDreamer's
augmented Lagrangian: the integral term alone lags the cost by as long as it took to build up,
so the policy overshoots the limit and oscillates around it, paying real cost on every swing;
the proportional term reacts to a violation the update it appears and the derivative term
damps the swings. With ``kp = kd = 0`` it is the plain Lagrangian. The augmented Lagrangian
needs a penalty schedule of its own and gives no faster response on these budgets.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..nn.distributed import sum_over_ranks, world_size


def episode_cost(cost: Tensor, weight: Tensor, episode_length: int) -> Tensor:
    """What the policy is expected to pay per episode: the predicted cost per imagined step
    ``(N, H)``, averaged with the probability ``weight`` that the episode is still going there,
    times the episode's length. Averaged over every rank's rollouts (one multiplier for all).

    Why the imagined steps themselves and not the cost critic's discounted return: the critic
    starts at zero and learns slowly, and a measure that leaned on it saw 2 per episode where the
    policy paid 73 (CartPoleZone, 4k env steps), so the multiplier never rose."""
    weight = weight.detach().float()
    total = torch.stack([(weight * cost.detach().float()).sum(), weight.sum()])
    if world_size() > 1:
        total = sum_over_ranks(total)
    return total[0] / total[1].clamp_min(1e-8) * episode_length


class PIDLagrangian(nn.Module):
    """``lambda = clip(kp * e + ki * sum(e) + kd * max(0, e - e_prev), 0, ceiling)`` for the relative
    violation ``e = (J - limit) / max(limit, 1)``, J the measured cost per episode. The integral
    is kept within ``[0, ceiling / ki]`` (no wind-up while the constraint is slack). Its state is
    in buffers: checkpointed with the agent, and the same on every rank."""

    def __init__(self, limit: float, *, kp: float, ki: float, kd: float, ceiling: float):
        super().__init__()
        if limit < 0:
            raise ValueError(f"a cost limit is >= 0, got {limit}")
        self.limit, self.kp, self.ki, self.kd, self.ceiling = limit, kp, ki, kd, ceiling
        self.register_buffer("integral", torch.zeros(()))
        self.register_buffer("previous", torch.zeros(()))
        self.register_buffer("multiplier", torch.zeros(()))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def violation(self, measured: Tensor) -> Tensor:
        """How far the measured cost per episode is above the limit, relative to it."""
        return (measured.float() - self.limit) / max(self.limit, 1.0)

    @torch.no_grad()
    def update(self, measured: Tensor) -> Tensor:
        """One step of the controller on the measured cost per episode; returns the multiplier."""
        error = self.violation(measured).to(self.integral.device)
        top = self.ceiling / self.ki if self.ki > 0 else 0.0
        self.integral.copy_((self.integral + error).clamp(0.0, top))
        rise = (error - self.previous).clamp_min(0.0) if bool(self.started) else torch.zeros_like(error)
        self.previous.copy_(error)
        self.started.fill_(True)
        value = self.kp * error + self.ki * self.integral + self.kd * rise
        self.multiplier.copy_(value.clamp(0.0, self.ceiling))
        return self.multiplier.clone()
