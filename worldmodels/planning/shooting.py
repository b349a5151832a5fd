"""Shooting planners: sample action sequences, score them with a callable, refit a Gaussian.

``objective(actions (N, H, A)) -> scores (N,)``, higher is better. A planner never sees a model,
so the same CEM or MPPI drives an ensemble, a latent RSSM or a quadratic in a test.

Each decision starts from the previous plan shifted by one step (warm start); ``reset()`` at an
episode's start. Every population also contains the current mean and any ``candidates`` the
caller proposes (e.g. a policy's own rollouts, as TD-MPC2 does), so a good plan is never lost
to sampling noise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import PlannerConfigError, PlanningError

Objective = Callable[[Tensor], Tensor]


class PlanResult(NamedTuple):
    actions: Tensor  # (H, A) the plan; actions[0] is executed
    score: float  # objective of the best candidate of the last iteration
    std: Tensor  # (H, A) sampling spread at the end (how settled the plan is)


class ShootingPlanner:
    """Shared loop of CEM and MPPI; subclasses define how scores refit the sampling distribution."""

    name = "shooting"

    def __init__(
        self,
        action_dim: int,
        *,
        horizon: int = 15,
        population: int = 500,
        iterations: int = 5,
        low: float | Tensor = -1.0,
        high: float | Tensor = 1.0,
        init_std: float = 0.5,
        min_std: float = 0.05,
        generator: torch.Generator | None = None,
    ):
        if horizon < 1:
            raise PlannerConfigError(f"planning horizon must be >= 1 step, got {horizon}")
        if population < 2:
            raise PlannerConfigError(f"population must be >= 2 candidates, got {population}")
        if iterations < 1:
            raise PlannerConfigError(f"iterations must be >= 1, got {iterations}")
        if action_dim < 1:
            raise PlannerConfigError(f"action_dim must be >= 1, got {action_dim}")
        self.action_dim, self.horizon, self.population, self.iterations = action_dim, horizon, population, iterations
        self.low = torch.as_tensor(low, dtype=torch.float32).expand(action_dim).clone()
        self.high = torch.as_tensor(high, dtype=torch.float32).expand(action_dim).clone()
        if not bool((self.high > self.low).all()):
            raise PlannerConfigError(f"action bounds need low < high, got low={self.low}, high={self.high}")
        self.init_std = init_std * (self.high - self.low) / 2  # init_std is a fraction of the half-range
        self.min_std = min_std * (self.high - self.low) / 2
        self.generator = generator
        self.mean: Tensor | None = None  # warm start for the next decision

    @classmethod
    def from_config(cls, action_dim: int, plan, *, horizon: int, low=-1.0, high=1.0) -> ShootingPlanner:
        """Built from a ``PlanConfig`` (the ``--plan.*`` flags) for ``action_dim`` numbers per
        step within ``[low, high]``."""
        return cls(
            action_dim,
            horizon=horizon,
            low=low,
            high=high,
            population=plan.population,
            iterations=plan.iterations,
            init_std=plan.init_std,
            min_std=plan.min_std,
            **cls.config_kwargs(plan),
        )

    @classmethod
    def config_kwargs(cls, plan) -> dict:
        """The planner's own settings from a ``PlanConfig``."""
        return {}

    def reset(self) -> None:
        """Forget the warm start (call at the start of an episode)."""
        self.mean = None

    def midpoint(self) -> Tensor:
        return ((self.low + self.high) / 2).expand(self.horizon, self.action_dim).clone()

    @torch.no_grad()
    def plan(self, objective: Objective, init: Tensor | None = None, candidates: Tensor | None = None) -> PlanResult:
        """Optimise a ``(H, A)`` action sequence; keeps it, shifted by one step, as the next warm start."""
        mean = (init if init is not None else self.mean if self.mean is not None else self.midpoint()).float()
        if mean.shape != (self.horizon, self.action_dim):
            raise PlannerConfigError(
                f"init must have shape (horizon={self.horizon}, action_dim={self.action_dim}), got {tuple(mean.shape)}"
            )
        extra = self._check_candidates(candidates)
        std = self.init_std.expand_as(mean).clone()
        n_sampled = self.population - 1 - len(extra)
        if n_sampled < 1:
            raise PlannerConfigError(
                f"population {self.population} leaves no room to sample beside the mean and "
                f"{len(extra)} proposed candidates; raise the population"
            )
        best = float("-inf")
        for _ in range(self.iterations):
            noise = torch.randn(n_sampled, self.horizon, self.action_dim, generator=self.generator)
            samples = self.clip(mean + std * noise)
            population = torch.cat([mean[None], extra, samples])
            scores = self._scores(objective, population)
            best = float(scores.max())
            mean, std = self.refit(population, scores, mean, std)
            mean = self.clip(mean)
        self.mean = torch.cat([mean[1:], self.midpoint()[-1:]])
        return PlanResult(mean, best, std)

    def act(self, objective: Objective, candidates: Tensor | None = None) -> Tensor:
        """Plan from the warm start and return the first action ``(A,)``."""
        return self.plan(objective, candidates=candidates).actions[0]

    def clip(self, actions: Tensor) -> Tensor:
        return torch.maximum(torch.minimum(actions, self.high), self.low)

    def refit(self, population: Tensor, scores: Tensor, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _check_candidates(self, candidates: Tensor | None) -> Tensor:
        if candidates is None:
            return torch.zeros(0, self.horizon, self.action_dim)
        if candidates.ndim != 3 or candidates.shape[1:] != (self.horizon, self.action_dim):
            raise PlannerConfigError(
                f"candidates must have shape (M, {self.horizon}, {self.action_dim}), got {tuple(candidates.shape)}"
            )
        return self.clip(candidates.float())

    def _scores(self, objective: Objective, population: Tensor) -> Tensor:
        scores = objective(population)
        if not isinstance(scores, Tensor) or scores.shape != (len(population),):
            shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise PlanningError(f"the objective must return scores of shape ({len(population)},), got {shape}")
        scores = scores.float()
        # A NaN score is never selected; only all-NaN is an error (the model itself is broken).
        scores = torch.where(torch.isnan(scores), torch.full_like(scores, float("-inf")), scores)
        if not bool(torch.isfinite(scores).any()):
            raise PlanningError(
                f"every one of the {len(population)} candidates scored NaN or -inf: the model's predictions are "
                "not finite. Check the checkpoint (retrain or resume from checkpoint.prev.pt) and its inputs."
            )
        return scores
