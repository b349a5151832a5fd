"""Choosing and building a planner for an agent from the ``plan`` config block."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ..config import Config, PlanConfig
from ..errors import PlannerConfigError, RunConfigError
from ..planning.feedback import GAIN_LIMIT, LinearFeedback
from ..planning.objectives import cost_budget
from ..planning.shooting import ShootingPlanner
from ..registry import PLANNERS
from ..specs import ActionSpec
from .base import require_cost_horizon, require_costs


def resolve_planner(name: str, action_spec: ActionSpec) -> str:
    """``auto`` becomes mcts for discrete actions and cem otherwise; mismatches are errors."""
    if name == "auto":
        return "mcts" if action_spec.discrete else "cem"
    discrete = PLANNERS.meta(name).get("discrete", False)  # an unknown name lists the registered ones
    if discrete and not action_spec.discrete:
        raise PlannerConfigError(
            f"--planner {name} searches over discrete actions, but this env's actions are continuous "
            f"({action_spec.dim}-dimensional); use one of {', '.join(_planners(False))}"
        )
    if not discrete and action_spec.discrete:
        raise PlannerConfigError(
            f"--planner {name} optimises continuous action sequences, but this env has {action_spec.dim} "
            f"discrete actions; use one of {', '.join(_planners(True))}"
        )
    return name


def _planners(discrete: bool) -> list[str]:
    return [n for n in PLANNERS.names() if PLANNERS.meta(n).get("discrete", False) == discrete]


def is_tree_search(planner) -> bool:
    """Whether ``planner`` searches discrete actions with step/value callables (MCTS's interface)
    rather than optimising action sequences against an objective."""
    return hasattr(planner, "choose")


def build_planner(name: str, action_spec: ActionSpec, plan: PlanConfig, feedback: LinearFeedback | None = None):
    """The registered planner ``name`` built from ``plan``; with a ``feedback`` law it searches
    that law's parameters (a one-step "plan" of ``feedback.size`` numbers within
    +-``GAIN_LIMIT``) instead of actions."""
    name = resolve_planner(name, action_spec)
    cls = PLANNERS.get(name)
    if PLANNERS.meta(name).get("discrete", False):
        if feedback is not None:
            raise PlannerConfigError(
                "--plan.controller linear gives continuous actions, but this env's actions are discrete "
                f"(planned by {name}); leave --plan.controller at sequence"
            )
        return cls.from_config(action_spec.dim, plan)
    if feedback is not None:
        return cls.from_config(feedback.size, plan, horizon=1, low=-GAIN_LIMIT, high=GAIN_LIMIT)
    return cls.from_config(action_spec.dim, plan, horizon=plan.horizon)


def on_device(score: Callable[[Tensor], Tensor], device: torch.device) -> Callable[[Tensor], Tensor]:
    """An objective over the model's ``device`` as planners see it: they sample and refit on the
    CPU (small tensors), so candidates go to the model and scores come back."""
    if device.type == "cpu":
        return score
    return lambda actions: score(actions.to(device)).cpu()


def plan_first_action(
    planner: ShootingPlanner, objective, warm_start: Tensor | None, candidates: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """One decision of a shooting planner for one env: ``(action (A,), next warm start (H, A))``.

    The warm start is passed per env (``None`` after a reset), so one planner serves many envs
    and the training and evaluation loops never share a plan.
    """
    planner.reset()
    result = planner.plan(objective, init=warm_start, candidates=candidates)
    return result.actions[0], planner.mean


def plan_feedback(planner: ShootingPlanner, objective, warm_start: Tensor | None) -> Tensor:
    """One decision over a feedback law's parameters for one env: the best ``(1, P)``, which is
    also the next warm start (a time-invariant law needs no shift)."""
    planner.reset()
    return planner.plan(objective, init=warm_start).actions


class PlanBudget(NamedTuple):
    """What the constrained objective holds plans to: ``limit`` per episode of ``episode_length``
    steps, ``slack`` over a plan for model noise, judged at the ``quantile`` of predicted costs;
    a predicted step cost counts only beyond ``floor``."""

    limit: float
    episode_length: int
    slack: float
    quantile: float
    floor: float = 0.0

    def plan(self, horizon: int) -> float:
        """The predicted cost a plan of ``horizon`` steps may carry."""
        return cost_budget(self.limit, horizon, self.episode_length, self.slack)

    def counted(self, costs: Tensor) -> Tensor:
        """Predicted step costs as the budget counts them: what exceeds ``floor``. A model that has
        seen no cost still predicts small positive ones everywhere; summed over a long plan they
        made every plan infeasible (PETS on PointGoal fled the goal before it had met a hazard)."""
        return (costs - self.floor).clamp_min(0.0)

    @classmethod
    def from_config(cls, cfg: Config) -> PlanBudget | None:
        if cfg.cost_limit < 0:
            return None
        require_cost_horizon(cfg.cost_horizon)
        p = cfg.plan
        return cls(cfg.cost_limit, cfg.cost_horizon, p.cost_slack, p.cost_quantile, p.cost_floor)


def check_constrained(world_model, budget: PlanBudget | None) -> PlanBudget:
    """The constrained objective needs a model that predicts costs and a budget to hold them to."""
    require_costs(world_model, "--plan.objective constrained ranks plans by their predicted cost")
    if budget is None:
        raise RunConfigError("--plan.objective constrained needs a budget: give --cost-limit C")
    return budget
