"""Fitness of controller candidates: mean return over episodes in the dream or the real env.

A :class:`Fitness` is built once per worker process from the run folder (V and M are frozen
while the controller evolves), then scores chunks of candidates. In the dream a chunk rolls out
as one batch: ``candidates x rollouts`` envs stepping together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..agents.dream_env import DreamVecEnv
from ..agents.vmc import VMC, controller_act
from ..config import Config
from . import checkpoint
from .collect import run_episode
from .runs import build_agent, make_single_env, probe_specs, read_config


def dream_episodes(
    agent: VMC, starts: torch.Tensor, n: int, policy, *, temperature: float, max_steps: int, seed: int
) -> torch.Tensor:
    """Returns ``(n,)`` of one dream episode per env, all ``n`` stepping as one batch;
    ``policy(obs (n, F)) -> actions (n, A)``."""
    env = DreamVecEnv(
        agent.mdnrnn, starts, agent.action_spec.dim, num_envs=n, temperature=temperature,
        max_steps=max_steps, cell=agent.cell, seed=seed,
    )  # fmt: skip
    obs = env.reset_torch(seed)
    alive = torch.ones(n, dtype=torch.bool)
    returns = torch.zeros(n)
    while alive.any():
        obs, reward, term, trunc = env.step_torch(policy(obs))
        returns += reward * alive
        alive &= ~(term | trunc)
    return returns


@torch.no_grad()
def dream_returns(
    agent: VMC,
    starts: torch.Tensor,
    params: torch.Tensor,
    *,
    rollouts: int,
    temperature: float,
    max_steps: int,
    seed: int,
) -> torch.Tensor:
    """Mean return ``(P,)`` of each candidate ``params (P, size)`` over ``rollouts`` dream episodes."""
    p = params.shape[0]

    def policy(obs: torch.Tensor) -> torch.Tensor:
        feats = obs.reshape(p, rollouts, -1)
        return controller_act(agent.shape, params, feats, agent.action_spec.discrete).reshape(p * rollouts, -1)

    returns = dream_episodes(
        agent, starts, p * rollouts, policy, temperature=temperature, max_steps=max_steps, seed=seed
    )
    return returns.reshape(p, rollouts).mean(1)


@torch.no_grad()
def random_dream_return(
    agent: VMC, starts: torch.Tensor, *, episodes: int, temperature: float, max_steps: int, seed: int
) -> float:
    """Mean dream return of a uniformly random policy: set beside the same policy's real return
    (the collect stage's), it says whether the dream is harder or easier than the game before
    any controller is evolved in it."""
    gen = torch.Generator().manual_seed(seed)
    dim, discrete = agent.action_spec.dim, agent.action_spec.discrete

    def policy(obs: torch.Tensor) -> torch.Tensor:
        n = obs.shape[0]
        if discrete:
            return F.one_hot(torch.randint(dim, (n,), generator=gen), dim).float()
        return torch.rand(n, dim, generator=gen) * 2 - 1

    returns = dream_episodes(agent, starts, episodes, policy, temperature=temperature, max_steps=max_steps, seed=seed)
    return float(returns.mean())


class Fitness:
    """Scores candidates with ``agent``'s V and M; real-env episodes use one env, made on first use."""

    def __init__(self, cfg: Config, agent: VMC, starts: torch.Tensor, where: str):
        self.cfg, self.agent, self.starts, self.where = cfg, agent, starts, where
        self.env = None

    @classmethod
    def from_run(cls, run_dir: str | Path, where: str) -> Fitness:
        """A worker's own copy of the run's models, loaded from its checkpoint."""
        run_dir = Path(run_dir)
        cfg = read_config(run_dir)
        ckpt = checkpoint.load(run_dir / checkpoint.NAME)
        agent: VMC = build_agent(cfg, *probe_specs(cfg))
        agent.load_state_dict(ckpt["agent"])
        return cls(cfg, agent.eval(), ckpt["dream_starts"], where)

    def __call__(self, task: tuple[np.ndarray, int]) -> np.ndarray:
        """``(params (P, size), seed)`` -> mean returns ``(P,)``."""
        params, seed = task
        v = self.cfg.vmc
        params_t = torch.as_tensor(params, dtype=torch.float32)
        if self.where == "dream":
            out = dream_returns(
                self.agent, self.starts, params_t, rollouts=v.rollouts_per_candidate,
                temperature=v.temperature, max_steps=v.dream_max_steps, seed=seed,
            )  # fmt: skip
            return out.numpy()
        return np.array([self.real_return(p, seed, v.rollouts_per_candidate) for p in params_t])

    def real_return(self, params: torch.Tensor, seed: int, episodes: int) -> float:
        """Mean return of the controller ``params`` over real episodes (it becomes the agent's controller)."""
        if self.env is None:
            self.env = make_single_env(self.cfg)
        self.agent.controller.copy_(params)
        rets = [run_episode(self.env, self.agent, seed=seed * 1000 + i).ret for i in range(episodes)]
        return float(np.mean(rets))

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


_WORKER: Fitness | None = None


def init_worker(run_dir: str, where: str) -> None:
    global _WORKER
    torch.set_num_threads(1)  # workers share the cores; more threads each would oversubscribe them
    _WORKER = Fitness.from_run(run_dir, where)


def score(task: tuple[np.ndarray, int]) -> np.ndarray:
    assert _WORKER is not None, "init_worker was not called in this process"
    return _WORKER(task)
