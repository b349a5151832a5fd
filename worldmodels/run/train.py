"""The training loop: collect -> store -> train -> evaluate -> checkpoint."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..data.replay import ReplayStore, step_bytes
from ..envs.make import make_vector_env
from ..errors import NonFiniteLossError
from . import checkpoint
from .collect import AgentPolicy, Collector, random_policy, run_episode
from .logger import MetricsLogger, ProgressBar
from .runs import build_agent, env_kwargs, make_single_env, parameter_counts, probe_specs, write_config


def seed_everything(seed: int, deterministic: bool) -> np.random.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
    # A stream of its own: seeded like the env's generator it would replay the env's draws
    # (random prefill actions would copy the env's random events).
    return np.random.default_rng([seed, 7919])


def to_torch(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


class Trainer:
    """Runs one training run in ``cfg.logdir``; ``resume`` continues from its checkpoint."""

    def __init__(self, cfg: Config, *, resume: bool = False, progress: bool = True, echo=print):
        self.cfg, self.run_dir, self.echo = cfg, Path(cfg.logdir), echo
        self.progress_enabled = progress
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.np_rng = seed_everything(cfg.seed, cfg.deterministic)
        self.obs_spec, self.action_spec = probe_specs(cfg)  # bad env ids fail before a folder is made
        write_config(self.run_dir, cfg)
        self.agent = build_agent(cfg, self.obs_spec, self.action_spec)
        self.counters = {"env_steps": 0, "agent_steps": 0, "train_steps": 0, "episodes": 0}
        if resume:
            self._restore()
        self.store = ReplayStore(self.run_dir / "replay", capacity=cfg.capacity, streams=cfg.envs, chunk=cfg.chunk)
        self.logger = MetricsLogger(self.run_dir)
        self.last_return: float | None = None

    def _restore(self) -> None:
        path = self.run_dir / checkpoint.NAME
        if not path.exists() and not (self.run_dir / checkpoint.PREV).exists():
            self.echo("no checkpoint yet (stopped before the first one): starting from step 0 with the stored replay")
            return
        ckpt = checkpoint.load(path)
        self.agent.load_state_dict(ckpt["agent"])
        self.agent.load_optimizer_state(ckpt["optimizers"])
        self.counters.update(ckpt["counters"])
        checkpoint.set_rng_state(ckpt["rng"], self.np_rng)

    def save(self) -> Path:
        payload = {
            "agent": self.agent.state_dict(),
            "optimizers": self.agent.optimizer_state(),
            "counters": dict(self.counters),
            "rng": checkpoint.rng_state(self.np_rng),
            "config": self.cfg.to_json(),
        }
        return checkpoint.save(self.run_dir, payload)

    # ------------------------------------------------------------------ loop
    def train(self) -> dict:
        cfg, c = self.cfg, self.counters
        counts, m = parameter_counts(self.agent), cfg.model
        self.echo(
            f"model (size {cfg.size}): GRU {m.deter}, latent {m.stoch}x{m.classes}, MLP {m.units}x{m.layers}; "
            f"parameters: world model {counts['world_model']:,}, actor {counts['actor']:,}, "
            f"critic {counts['critic']:,}"
        )
        self.echo(
            f"replay: {len(self.store):,} steps loaded, {step_bytes(self.obs_spec, self.action_spec):,} bytes/step, "
            f"capacity {cfg.capacity:,} steps"
        )
        env = make_vector_env(cfg.env, cfg.envs, **env_kwargs(cfg))
        collector = Collector(env, seed=cfg.seed + c["episodes"])
        policy, explore = AgentPolicy(self.agent), random_policy(self.action_spec, self.np_rng)
        per_batch = cfg.batch * cfg.seq_len
        next_log = c["env_steps"] + cfg.log_every
        next_eval = c["env_steps"] + (cfg.eval_every if c["env_steps"] else min(cfg.eval_every, cfg.steps))
        next_ckpt = c["env_steps"] + cfg.checkpoint_every
        t0, steps0, train0 = time.time(), c["env_steps"], c["train_steps"]
        try:
            with ProgressBar(cfg.steps, c["env_steps"], self.progress_enabled) as bar:
                while c["env_steps"] < cfg.steps:
                    act = explore if c["agent_steps"] < cfg.prefill else policy
                    record, finished = collector.step(act)
                    self.store.add(record)
                    c["agent_steps"] += cfg.envs
                    c["env_steps"] += cfg.envs * cfg.action_repeat
                    for ret, length in finished:
                        c["episodes"] += 1
                        self.last_return = ret
                        self.logger.add({"episode/return": ret, "episode/length": length})
                    due = int(max(0, c["agent_steps"] - cfg.prefill) * cfg.train_ratio / per_batch)
                    while c["train_steps"] < due and len(self.store) >= cfg.seq_len:
                        batch = to_torch(self.store.sample(cfg.batch, cfg.seq_len, self.np_rng))
                        self.logger.add(self.agent.train_step(batch))
                        c["train_steps"] += 1
                    elapsed = max(time.time() - t0, 1e-6)
                    env_fps = (c["env_steps"] - steps0) / elapsed
                    train_fps = (c["train_steps"] - train0) / elapsed
                    bar.update(c["env_steps"], env_fps, train_fps, self.last_return)
                    if c["env_steps"] >= next_eval:
                        next_eval += cfg.eval_every
                        self.logger.add({"eval/return": self.evaluate(cfg.eval_episodes)})
                    if c["env_steps"] >= next_log or c["env_steps"] >= cfg.steps:
                        next_log += cfg.log_every
                        fps = {"fps/env": env_fps, "fps/train": train_fps, "train_steps": c["train_steps"]}
                        self.logger.write(c["env_steps"], fps)
                    if c["env_steps"] >= next_ckpt:
                        next_ckpt += cfg.checkpoint_every
                        self.store.flush()
                        self.save()
        except KeyboardInterrupt:
            self.store.flush()
            self.save()
            self.echo(
                f"interrupted at {c['env_steps']} env steps; saved. Continue with `wm train --resume {self.run_dir}`"
            )
            raise
        except NonFiniteLossError as err:
            self.store.flush()
            last = self.run_dir / checkpoint.NAME
            kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint was written yet"
            raise NonFiniteLossError(f"{err} Training stopped at {c['env_steps']} env steps; {kept}.") from err
        finally:
            env.close()
            self.logger.close()
        self.store.flush()
        self.save()
        return dict(c)

    def evaluate(self, episodes: int) -> float:
        env = make_single_env(self.cfg)
        try:
            returns = [
                run_episode(env, self.agent, seed=10_000 + self.cfg.seed * 1000 + i).ret for i in range(episodes)
            ]
        finally:
            env.close()
        return float(np.mean(returns))
