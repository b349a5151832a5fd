"""Cross-entropy method (PETS recipe): refit mean and std to the elites, with momentum."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import PlannerConfigError
from .shooting import ShootingPlanner


class CEM(ShootingPlanner):
    """The ``elites`` best candidates (default: a tenth of the population) set the next mean and
    std; ``momentum`` keeps that share of the old ones."""

    name = "cem"

    def __init__(self, action_dim: int, *, elites: int | None = None, momentum: float = 0.1, **kwargs):
        super().__init__(action_dim, **kwargs)
        elites = max(2, self.population // 10) if elites is None else elites  # PETS: 50 of 500
        if not 1 <= elites <= self.population:
            raise PlannerConfigError(f"elites must be between 1 and the population ({self.population}), got {elites}")
        if not 0.0 <= momentum < 1.0:
            raise PlannerConfigError(f"momentum must be in [0, 1), got {momentum}")
        self.elites, self.momentum = elites, momentum

    @classmethod
    def config_kwargs(cls, plan) -> dict:
        if plan.elites > plan.population:
            raise PlannerConfigError(
                f"--plan.elites {plan.elites} exceeds --plan.population {plan.population}; "
                f"elites are chosen from the population, so use at most {plan.population}"
            )
        return dict(elites=plan.elites, momentum=plan.momentum)

    def refit(self, population: Tensor, scores: Tensor, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
        k = min(self.elites, int(torch.isfinite(scores).sum()))
        elite = population[scores.topk(k).indices]
        new_mean = elite.mean(0)
        new_std = elite.std(0, unbiased=False) if k > 1 else torch.zeros_like(std)
        m = self.momentum
        return m * mean + (1 - m) * new_mean, torch.maximum(m * std + (1 - m) * new_std, self.min_std)
