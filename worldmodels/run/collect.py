"""Stepping environments and recording steps in docs/DESIGN.md's time alignment.

A recorded step ``t`` holds ``obs_t``, ``reward_t`` (received on arriving at ``obs_t``),
``is_first_t``, ``is_terminal_t``, ``is_last_t`` and ``action_t`` (taken after seeing ``obs_t``;
zeros on a last step, where no action is taken); where the env charges costs, ``cost_t`` (paid on
arriving at ``obs_t``, like the reward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..agents.base import Agent
from ..envs.adapter import ModelEnv
from ..envs.seeding import OPTION as EPISODE_SEEDS
from ..specs import COST

ActFn = Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]


class Collector:
    """Steps a gymnasium vector env (next-step autoreset) and yields aligned records.

    Episode ``k`` of env ``i`` (stream ``first_stream + i``: a rank of a distributed run holds
    streams of its own) is reset with a seed derived from ``(seed, stream, k)``
    (envs/seeding.py); ``episodes`` gives each env's first index (default 0: a fresh run; a
    resumed one passes the count its replay holds, so it never plays an episode twice).
    ``costs``: record each step's ``info["cost"]`` (envs/costs.py) as ``cost``."""

    def __init__(self, env, seed: int, episodes: list[int] | None = None, first_stream: int = 0, costs: bool = False):
        self.env = env
        n = env.num_envs
        first = [0] * n if episodes is None else [int(e) for e in episodes]
        if len(first) != n:
            raise ValueError(f"one first episode index per env: {n} envs, got {len(first)}")
        self.obs, _ = env.reset(
            options={EPISODE_SEEDS: {"seed": seed, "first": {first_stream + i: e for i, e in enumerate(first)}}}
        )
        self.reward = np.zeros(n, np.float32)
        self.costs = costs
        self.cost = np.zeros(n, np.float32)
        self.episode_cost = np.zeros(n, np.float64)
        self.is_first = np.ones(n, bool)
        self.is_terminal = np.zeros(n, bool)
        self.is_last = np.zeros(n, bool)
        self.returns = np.zeros(n, np.float64)
        self.lengths = np.zeros(n, np.int64)

    @property
    def at_episode_start(self) -> bool:
        """Every env is at the first step of an episode (nothing of the last one is left to record)."""
        return bool(np.all(self.is_first))

    def step(self, act: ActFn) -> tuple[dict[str, np.ndarray], list[tuple[float, int, float]]]:
        """Record the current step of every env with the action ``act`` picks, then advance.
        Returns the record and ``(return, length, cost)`` of each episode that ended with it."""
        action = np.asarray(act(self.obs, self.is_first), np.float32)
        action = np.where(self.is_last[:, None], 0.0, action).astype(np.float32)
        record = {
            **{k: np.asarray(v) for k, v in self.obs.items()},
            "action": action,
            "reward": self.reward,
            "is_first": self.is_first,
            "is_terminal": self.is_terminal,
            "is_last": self.is_last,
        }
        if self.costs:
            record[COST] = self.cost
        self.returns = np.where(self.is_first, 0.0, self.returns) + self.reward
        self.episode_cost = np.where(self.is_first, 0.0, self.episode_cost) + self.cost
        self.lengths = np.where(self.is_first, 0, self.lengths) + 1
        finished = [
            (float(self.returns[i]), int(self.lengths[i]) - 1, float(self.episode_cost[i]))
            for i in np.flatnonzero(self.is_last)
        ]
        obs, reward, terminated, truncated, info = self.env.step(action)
        # After a last step the env resets (the action is ignored): the next step is a first one.
        self.is_first = self.is_last.copy()
        self.obs = obs
        self.reward = np.asarray(reward, np.float32)
        self.cost = vector_costs(info, len(self.reward)) if self.costs else self.cost
        self.is_terminal = np.asarray(terminated, bool)
        self.is_last = np.asarray(terminated, bool) | np.asarray(truncated, bool)
        return record, finished


def vector_costs(info: dict, n: int) -> np.ndarray:
    """``info["cost"]`` of a vector env's step as ``(n,)`` float32: 0 where an env reported none
    (its autoreset step; ``ModelEnv`` requires one on every real step)."""
    if COST not in info:
        return np.zeros(n, np.float32)
    present = np.asarray(info.get("_" + COST, np.ones(n, bool)), bool)
    return np.where(present, np.asarray(info[COST], np.float64), 0.0).astype(np.float32)


class AgentPolicy:
    """The agent as an ``ActFn``: numpy in, numpy out, carrying its latent state."""

    def __init__(self, agent: Agent, mode: bool = False):
        self.agent, self.mode = agent, mode
        self.carry = None
        self.device = agent_device(agent)

    def __call__(self, obs: dict[str, np.ndarray], is_first: np.ndarray) -> np.ndarray:
        obs_t = {k: torch.as_tensor(np.array(v)).to(self.device) for k, v in obs.items()}
        first = torch.as_tensor(is_first).to(self.device)
        action, self.carry = self.agent.act(obs_t, first, self.carry, self.mode)
        return action.cpu().numpy()


def agent_device(agent) -> torch.device:
    """Where an agent's tensors live (CPU for agents without any, like a random one)."""
    return getattr(agent, "device", torch.device("cpu"))


def own_torch_rng(device: torch.device):
    """A block whose torch draws (CPU, and ``device``'s if it is a GPU) leave the caller's
    generators as they were: diagnostics and evaluations that must not change training."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def random_policy(action_spec, rng: np.random.Generator) -> ActFn:
    def act(obs, is_first):
        n = len(is_first)
        if action_spec.discrete:
            return np.eye(action_spec.dim, dtype=np.float32)[rng.integers(0, action_spec.dim, n)]
        return rng.uniform(-1, 1, (n, action_spec.dim)).astype(np.float32)

    return act


def held_random_policy(action_spec, rng: np.random.Generator, hold: int) -> ActFn:
    """Uniformly random actions, each held for a uniformly random 1..``hold`` steps (per env;
    a new episode draws afresh). ``hold=1`` is :func:`random_policy`.

    Why: a per-step random walk barely moves an agent (on DoomTakeCover it jitters where it
    spawned), so a model learned from it has never seen the places a purposeful policy goes.
    Held actions cover them; the paper's Doom data held each random action 1-10 tics."""
    if hold < 1:
        raise ValueError(f"a random action is held for at least one step (--vmc.collect-hold >= 1), got {hold}")
    draw = random_policy(action_spec, rng)
    if hold == 1:
        return draw
    state: dict[str, np.ndarray] = {}

    def act(obs, is_first):
        n = len(is_first)
        left = state.get("left", np.zeros(n, np.int64))
        renew = (left <= 0) | np.asarray(is_first, bool)
        fresh = draw(obs, is_first)
        state["action"] = np.where(renew[:, None], fresh, state["action"]) if "action" in state else fresh
        state["left"] = np.where(renew, rng.integers(1, hold + 1, n), left) - 1
        return state["action"].copy()

    return act


class RandomAgent:
    """Uniformly random actions from a seeded generator, with the agents' ``act`` signature:
    the same seed plays the same episodes whatever model is being judged on them. ``hold`` > 1
    holds each action for 1..hold steps (:func:`held_random_policy`)."""

    def __init__(self, action_spec, seed: int, hold: int = 1):
        self.action_spec = action_spec
        self._act = held_random_policy(action_spec, np.random.default_rng(seed), hold)

    def act(self, obs, is_first, carry=None, mode: bool = True):
        return torch.as_tensor(self._act(obs, is_first.cpu().numpy())), None


@dataclass
class Episode:
    """One episode recorded step by step (aligned as above), with optional rendered frames."""

    steps: dict[str, np.ndarray]
    ret: float
    frames: list[np.ndarray] = field(default_factory=list)
    cost: float | None = None  # the cost paid, where the env charges one

    def __len__(self) -> int:
        return len(self.steps["reward"])


def run_episode(env: ModelEnv, agent: Agent, *, seed: int, mode: bool = True, render: bool = False) -> Episode:
    """Play one episode with the agent in a single env; record every step."""
    policy = AgentPolicy(agent, mode=mode)
    obs, _ = env.reset(seed=seed)
    rows: list[dict[str, np.ndarray]] = []
    frames = [env.render()] if render else []
    reward, is_first, done, terminated, total = 0.0, True, False, False, 0.0
    costs = bool(getattr(env, "costs", False))
    cost, paid = 0.0, 0.0
    while True:
        batch = {k: v[None] for k, v in obs.items()}
        action = np.zeros(agent.action_spec.dim, np.float32) if done else policy(batch, np.array([is_first]))[0]
        rows.append(
            {
                **obs,
                "action": action,
                "reward": np.float32(reward),
                "is_first": is_first,
                "is_terminal": terminated,
                "is_last": done,
                **({COST: np.float32(cost)} if costs else {}),
            }
        )
        if done:
            break
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if costs:
            cost = float(info[COST])
            paid += cost
        is_first, done = False, bool(terminated or truncated)
        if render:
            frames.append(env.render())
    steps = {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}
    return Episode(steps, total, frames, paid if costs else None)


def play_episodes(env: ModelEnv, agent: Agent, seeds: list[int], *, mode: bool = True, render_first: bool = False):
    """One episode per seed (the env reset with it); ``render_first`` records the first one's frames."""
    return [run_episode(env, agent, seed=s, mode=mode, render=render_first and i == 0) for i, s in enumerate(seeds)]


def return_summary(returns: list[float]) -> dict[str, float]:
    """Mean, standard deviation, median, min and max of evaluation returns."""
    r = np.asarray(returns, dtype=np.float64)
    return {
        "mean": float(r.mean()),
        "std": float(r.std()),
        "median": float(np.median(r)),
        "min": float(r.min()),
        "max": float(r.max()),
    }


def cost_summary(costs: list[float], limit: float | None = None) -> dict[str, float]:
    """Mean and standard deviation of episodes' costs, and (given a limit) the fraction of
    episodes that paid more than it."""
    c = np.asarray(costs, dtype=np.float64)
    out = {"mean_cost": float(c.mean()), "std_cost": float(c.std())}
    if limit is not None:
        out["cost_violation_rate"] = float(np.mean(c > limit))
    return out
