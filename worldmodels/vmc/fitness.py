"""Fitness of controller candidates: mean return over episodes in the dream or the real env.

A :class:`Fitness` is built once per worker process from the run folder (V and M are frozen
while the controller evolves), then scores chunks of candidates. In the dream a chunk rolls out
as one batch: ``candidates x rollouts`` envs stepping together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..agents.vmc import VMC, controller_act
from ..config import Config
from ..envs.seeding import Purpose, protocol_seed
from ..run import checkpoint
from ..run.collect import held_random_policy, play_episodes
from ..run.runs import build_agent, make_single_env, probe_specs, read_config
from .dream_env import DreamVecEnv


@torch.no_grad()
def dream_episodes(
    agent: VMC,
    starts: torch.Tensor,
    n: int,
    policy,
    *,
    temperature: float,
    max_steps: int,
    seed: int,
    done_threshold: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns and lengths ``(n,)`` of one dream episode per env, all ``n`` stepping as one
    batch; ``policy(obs (n, F)) -> actions (n, A)``."""
    env = DreamVecEnv(
        agent.mdnrnn, starts, agent.action_spec.dim, num_envs=n, temperature=temperature,
        max_steps=max_steps, cell=agent.cell, seed=seed, done_threshold=done_threshold,
    )  # fmt: skip
    obs = env.reset_torch(seed)
    alive = torch.ones(n, dtype=torch.bool)
    returns, lengths = torch.zeros(n), torch.zeros(n)
    while alive.any():
        obs, reward, term, trunc = env.step_torch(policy(obs))
        returns += reward * alive
        lengths += alive
        alive &= ~(term | trunc)
    return returns, lengths


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
    done_threshold: float = 0.0,
) -> torch.Tensor:
    """Mean return ``(P,)`` of each candidate ``params (P, size)`` over ``rollouts`` dream episodes."""
    p = params.shape[0]

    def policy(obs: torch.Tensor) -> torch.Tensor:
        feats = obs.reshape(p, rollouts, -1)
        return controller_act(agent.shape, params, feats, agent.action_spec.discrete).reshape(p * rollouts, -1)

    returns, _ = dream_episodes(
        agent, starts, p * rollouts, policy, temperature=temperature, max_steps=max_steps, seed=seed,
        done_threshold=done_threshold,
    )  # fmt: skip
    return returns.reshape(p, rollouts).mean(1)


def random_dream_episodes(
    agent: VMC, starts: torch.Tensor, *, episodes: int, temperature: float, max_steps: int, seed: int,
    done_threshold: float = 0.0, hold: int = 1,
) -> tuple[float, float]:  # fmt: skip
    """Mean return and length of a uniformly random policy's dream episodes, each action held for
    a random 1..``hold`` steps as the collect stage held them. Set beside the same policy's real
    episodes (the collect stage's), they say whether the dream is harder or easier than the game
    before any controller is evolved in it."""
    act = held_random_policy(agent.action_spec, np.random.default_rng(seed), hold)

    def policy(obs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(act(None, np.zeros(len(obs), bool)))  # dream episodes never restart here

    returns, lengths = dream_episodes(
        agent, starts, episodes, policy, temperature=temperature, max_steps=max_steps, seed=seed,
        done_threshold=done_threshold,
    )  # fmt: skip
    return float(returns.mean()), float(lengths.mean())


def calibrate_done_threshold(
    agent: VMC, starts: torch.Tensor, target_length: float, *, temperature: float, max_steps: int, seed: int,
    episodes: int = 64, iterations: int = 10, hold: int = 1,
) -> float:  # fmt: skip
    """The done-logit threshold at which a random policy's dream episodes last ``target_length``
    steps on average, as its real ones did. Bisection in logit space on the same seeded episodes,
    so the mean length only grows with the threshold. M's done head ranks states by danger well
    enough, but free-running it is off in level (the dream too easy with plain BCE and sampled
    flags, too hard with the paper's weighted head and threshold 0 on our data): this sets the
    level from the one figure known for certain, the random policy's real survival. (On our Doom
    data a controller evolved in the calibrated dream transferred worse than in the paper's
    harder one: see docs/BENCHMARKS.md; hence it is an option.)"""
    low, high = -10.0, 10.0

    def length(threshold: float) -> float:
        return random_dream_episodes(
            agent, starts, episodes=episodes, temperature=temperature, max_steps=max_steps, seed=seed,
            done_threshold=threshold, hold=hold,
        )[1]  # fmt: skip

    for _ in range(iterations):
        mid = (low + high) / 2
        if length(mid) < target_length:
            low = mid
        else:
            high = mid
    return (low + high) / 2


class Fitness:
    """Scores candidates with ``agent``'s V and M; real-env episodes use one env, made on first use."""

    def __init__(self, cfg: Config, agent: VMC, starts: torch.Tensor, where: str, done_threshold: float = 0.0):
        self.cfg, self.agent, self.starts, self.where = cfg, agent, starts, where
        self.done_threshold = done_threshold
        self.env = None

    @classmethod
    def from_run(cls, run_dir: str | Path, where: str) -> Fitness:
        """A worker's own copy of the run's models, loaded from its checkpoint."""
        run_dir = Path(run_dir)
        cfg = read_config(run_dir)
        ckpt = checkpoint.load(run_dir / checkpoint.NAME)
        agent: VMC = build_agent(cfg, *probe_specs(cfg), device=torch.device("cpu"))  # dreams step on the CPU
        checkpoint.load_agent_state(agent, ckpt, run_dir / checkpoint.NAME)
        return cls(cfg, agent.eval(), ckpt["dream_starts"], where, float(ckpt.get("done_threshold", 0.0)))

    def __call__(self, task: tuple[np.ndarray, int]) -> np.ndarray:
        """``(params (P, size), seed)`` -> mean returns ``(P,)``."""
        params, seed = task
        v = self.cfg.vmc
        params_t = torch.as_tensor(params, dtype=torch.float32)
        if self.where == "dream":
            out = dream_returns(
                self.agent, self.starts, params_t, rollouts=v.rollouts_per_candidate,
                temperature=v.temperature, max_steps=v.dream_max_steps, seed=seed,
                done_threshold=self.done_threshold,
            )  # fmt: skip
            return out.numpy()
        # Fitness in the real env is training: its episodes draw training seeds (envs/seeding.py).
        seeds = [protocol_seed(Purpose.TRAIN, self.cfg.seed, seed, i) for i in range(v.rollouts_per_candidate)]
        return np.array([self.real_return(p, seeds) for p in params_t])

    def real_return(self, params: torch.Tensor, seeds: list[int]) -> float:
        """Mean return of the controller ``params`` over real episodes, one per seed (it becomes the
        agent's controller)."""
        if self.env is None:
            self.env = make_single_env(self.cfg)
        self.agent.controller.copy_(params)
        return float(np.mean([ep.ret for ep in play_episodes(self.env, self.agent, seeds)]))

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
