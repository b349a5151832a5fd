"""Choosing and building a planner for an agent from the ``plan`` config block."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..config import PlanConfig
from ..errors import PlannerConfigError
from ..planning.feedback import GAIN_LIMIT, LinearFeedback
from ..planning.shooting import ShootingPlanner
from ..registry import PLANNERS
from ..specs import ActionSpec


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
