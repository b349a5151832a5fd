"""Model-predictive path integral control: a score-weighted average of every candidate.

Weights are ``softmax((s - max s) / (temperature * std(s)))``: dividing by the spread of the
scores makes ``temperature`` unitless, so one default serves rewards of any scale.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import PlannerConfigError
from .shooting import ShootingPlanner


class MPPI(ShootingPlanner):
    name = "mppi"

    def __init__(self, action_dim: int, *, temperature: float = 0.5, **kwargs):
        super().__init__(action_dim, **kwargs)
        if temperature <= 0:
            raise PlannerConfigError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    @classmethod
    def config_kwargs(cls, plan) -> dict:
        return dict(temperature=plan.temperature)

    def weights(self, scores: Tensor) -> Tensor:
        finite = torch.isfinite(scores)
        spread = scores[finite].std(unbiased=False) if int(finite.sum()) > 1 else scores.new_tensor(0.0)
        scale = self.temperature * spread.clamp_min(1e-6)
        logits = torch.where(finite, (scores - scores.max()) / scale, torch.full_like(scores, float("-inf")))
        return torch.softmax(logits, 0)

    def refit(self, population: Tensor, scores: Tensor, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
        w = self.weights(scores)[:, None, None]
        new_mean = (w * population).sum(0)
        new_std = (w * (population - new_mean) ** 2).sum(0).sqrt()
        return new_mean, torch.minimum(torch.maximum(new_std, self.min_std), self.init_std)
