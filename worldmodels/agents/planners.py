"""Choosing and building a planner for an agent from the ``plan`` config block."""

from __future__ import annotations

from torch import Tensor

from ..config import PlanConfig
from ..errors import PlannerConfigError
from ..planning import MCTS, ShootingPlanner, make_planner
from ..planning.feedback import GAIN_LIMIT, LinearFeedback
from ..specs import ActionSpec


def resolve_planner(name: str, action_spec: ActionSpec) -> str:
    """``auto`` becomes mcts for discrete actions and cem otherwise; mismatches are errors."""
    if name == "auto":
        return "mcts" if action_spec.discrete else "cem"
    if name == "mcts" and not action_spec.discrete:
        raise PlannerConfigError(
            f"--planner mcts searches over discrete actions, but this env's actions are continuous "
            f"({action_spec.dim}-dimensional); use --planner cem or mppi"
        )
    if name in ("cem", "mppi") and action_spec.discrete:
        raise PlannerConfigError(
            f"--planner {name} optimises continuous action sequences, but this env has {action_spec.dim} "
            "discrete actions; use --planner mcts"
        )
    return name


def build_planner(
    name: str, action_spec: ActionSpec, plan: PlanConfig, feedback: LinearFeedback | None = None
) -> ShootingPlanner | MCTS:
    """The planner of ``plan``; with a ``feedback`` law it searches that law's parameters (a
    one-step "plan" of ``feedback.size`` numbers within +-``GAIN_LIMIT``) instead of actions."""
    name = resolve_planner(name, action_spec)
    if feedback is not None and name == "mcts":
        raise PlannerConfigError(
            "--plan.controller linear gives continuous actions, but this env's actions are discrete "
            "(planned by MCTS); leave --plan.controller at sequence"
        )
    if name == "mcts":
        return MCTS(
            action_spec.dim,
            simulations=plan.simulations,
            discount=plan.discount,
            c_puct=plan.c_puct,
            dirichlet_alpha=plan.dirichlet_alpha,
            root_noise=plan.root_noise,
        )
    dim, shape = action_spec.dim, {}
    if feedback is not None:
        dim, shape = feedback.size, dict(low=-GAIN_LIMIT, high=GAIN_LIMIT)
    common = dict(
        horizon=1 if feedback is not None else plan.horizon,
        **shape,
        population=plan.population,
        iterations=plan.iterations,
        init_std=plan.init_std,
        min_std=plan.min_std,
    )
    if name == "cem":
        if plan.elites > plan.population:
            raise PlannerConfigError(
                f"--plan.elites {plan.elites} exceeds --plan.population {plan.population}; "
                f"elites are chosen from the population, so use at most {plan.population}"
            )
        return make_planner("cem", dim, elites=plan.elites, momentum=plan.momentum, **common)
    return make_planner("mppi", dim, temperature=plan.temperature, **common)


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
