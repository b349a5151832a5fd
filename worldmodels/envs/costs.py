"""Costs: what an env charges for unsafe steps, beside its reward (Safety-Gymnasium's convention).

An env that pays costs puts ``info["cost"]`` (a float >= 0) in the info of every step and may
declare ``reports_cost = True`` (class or wrapper attribute), which makes every run on it record
its costs. Any other env gets a cost from a function of its steps with :class:`CostWrapper`::

    env = CostWrapper(gymnasium.make("CartPole-v1"), lambda obs, action, info: float(abs(obs[0]) > 1.0))

``ModelEnv`` (envs/adapter.py) then sums the cost over action repeats and refuses a missing or
non-finite one, naming the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from ..errors import CostError
from ..specs import COST


class CostWrapper(gym.Wrapper):
    """Adds ``info["cost"] = cost_fn(obs, action, info)`` to every step of ``env``."""

    reports_cost = True

    def __init__(self, env: gym.Env, cost_fn: Callable[[Any, Any, dict], float]):
        super().__init__(env)
        self.cost_fn = cost_fn

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, COST: float(self.cost_fn(obs, action, info))}


def declares_cost(env: gym.Env) -> bool:
    """Whether ``env`` (or a wrapper of it) declares that it reports ``info["cost"]``."""
    try:
        return bool(env.get_wrapper_attr("reports_cost"))
    except AttributeError:
        return False


def step_cost(info: dict, env_name: str, step: int) -> float:
    """The cost ``info`` reports for step ``step`` of an episode, or a :class:`CostError`."""
    if COST not in info:
        raise CostError(
            f"{env_name} reports no cost: its step info has {sorted(info) or 'no keys'}, and a run with costs "
            "(--cost-limit, or an env declaring reports_cost) needs info['cost'] on every step. Use a task that "
            "charges one (the safe: suite, Safety-Gymnasium's convention), or wrap the env: "
            "worldmodels.envs.costs.CostWrapper(env, lambda obs, action, info: ...)"
        )
    try:
        cost = float(info[COST])
    except (TypeError, ValueError):
        raise CostError(
            f"{env_name} reported info['cost'] = {info[COST]!r} at step {step} of an episode; a cost is a number"
        ) from None
    if not math.isfinite(cost):
        raise CostError(
            f"{env_name} reported a non-finite cost ({cost}) at step {step} of an episode; nothing of that step was "
            "recorded. Fix the env's cost (info['cost'] must be a finite number on every step)"
        )
    return cost
