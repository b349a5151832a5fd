"""The training loop: collect -> store -> train -> evaluate -> checkpoint."""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..data.replay import ReplayStore, step_bytes
from ..envs.make import make_vector_env
from ..errors import NonFiniteLossError, RunConfigError
from . import checkpoint
from .collect import AgentPolicy, Collector, random_policy, run_episode
from .logger import MetricsLogger, ProgressBar
from .runs import build_agent, env_kwargs, make_single_env, probe_specs, write_config


def seed_everything(seed: int, deterministic: bool) -> np.random.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
    # A stream of its own: seeded like the env's generator it would replay the env's draws
    # (random prefill actions would copy the env's random events).
    return np.random.default_rng([seed, 7919])


def to_torch(batch: dict[str, np.ndarray], device: torch.device | None = None) -> dict[str, torch.Tensor]:
    out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
    if device is not None and device.type != "cpu":
        out = {k: v.to(device, non_blocking=True) for k, v in out.items()}
    return out


class Every:
    """Fires once each time a counter passes the next multiple of ``period``."""

    def __init__(self, period: int, first: int):
        self.period, self.next = period, first

    def due(self, value: int) -> bool:
        if value < self.next:
            return False
        while self.next <= value:
            self.next += self.period
        return True


class Rate:
    """Env steps/s and train steps/s since construction."""

    def __init__(self, env_steps: int, train_steps: int):
        self.start, self.env0, self.train0 = time.time(), env_steps, train_steps

    def __call__(self, env_steps: int, train_steps: int) -> tuple[float, float]:
        elapsed = max(time.time() - self.start, 1e-6)
        return (env_steps - self.env0) / elapsed, (train_steps - self.train0) / elapsed


class Trainer:
    """Runs one training run in ``cfg.logdir``; ``resume`` continues from its checkpoint."""

    def __init__(
        self, cfg: Config, *, resume: bool = False, progress: bool = True, status_lines: bool = False, echo=print
    ):
        self.cfg, self.run_dir, self.echo = cfg, Path(cfg.logdir), echo
        self.progress_enabled, self.status_lines = progress, status_lines
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.np_rng = seed_everything(cfg.seed, cfg.deterministic)
        # Bad env ids and settings the agent cannot take fail before a run folder is made.
        self.obs_spec, self.action_spec = probe_specs(cfg)
        self.agent = build_agent(cfg, self.obs_spec, self.action_spec)
        write_config(self.run_dir, cfg)
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
        ckpt = checkpoint.load(path, map_location=self.agent.device)
        checkpoint.load_agent_state(self.agent, ckpt, path)
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
        """Collect, store and train until ``cfg.steps``; checkpoint on the way and at the end."""
        cfg, c = self.cfg, self.counters
        self._announce()
        env = make_vector_env(cfg.env, cfg.envs, **env_kwargs(cfg))
        collector = Collector(env, seed=cfg.seed + c["episodes"])
        policy, explore = AgentPolicy(self.agent), random_policy(self.action_spec, self.np_rng)
        first_eval = cfg.eval_every if c["env_steps"] else min(cfg.eval_every, cfg.steps)
        evals = Every(cfg.eval_every, c["env_steps"] + first_eval)
        logs = Every(cfg.log_every, c["env_steps"] + cfg.log_every)
        saves = Every(cfg.checkpoint_every, c["env_steps"] + cfg.checkpoint_every)
        rate = Rate(c["env_steps"], c["train_steps"])
        try:
            with ProgressBar(cfg.steps, c["env_steps"], self.progress_enabled) as bar:
                while c["env_steps"] < cfg.steps:
                    self._collect(collector, explore if c["agent_steps"] < cfg.prefill else policy)
                    self._train_due()
                    env_fps, train_fps = rate(c["env_steps"], c["train_steps"])
                    bar.update(c["env_steps"], env_fps, train_fps, self.last_return)
                    if evals.due(c["env_steps"]):
                        self.logger.add({"eval/return": self.evaluate(cfg.eval_episodes)})
                    if logs.due(c["env_steps"]) or c["env_steps"] >= cfg.steps:
                        fps = {"fps/env": env_fps, "fps/train": train_fps, "train_steps": c["train_steps"]}
                        self._status(self.logger.write(c["env_steps"], fps))
                    if saves.due(c["env_steps"]):
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

    def _status(self, row: dict) -> None:
        """One line per metrics write, for logs without a progress bar."""
        if not self.status_lines:
            return
        parts = [f"{row['env_steps']:>8}/{self.cfg.steps} env steps", f"{row['fps/train']:.1f} train/s"]
        if "episode/return" in row:
            parts.append(f"return {row['episode/return']:.1f}")
        if "eval/return" in row:
            parts.append(f"eval {row['eval/return']:.1f}")
        self.echo("  ".join(parts))

    def _announce(self) -> None:
        cfg = self.cfg
        self.echo(f"agent {cfg.describe()} on {self.agent.device}: {self.agent.describe()}")
        per_step = step_bytes(self.obs_spec, self.action_spec)
        self.echo(f"replay: {len(self.store):,} steps loaded, {per_step:,} bytes/step, capacity {cfg.capacity:,} steps")
        most = min(cfg.capacity, cfg.steps // cfg.action_repeat) * per_step
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if most > ram / 2:
            fits = int(ram / 2 / per_step)
            self.echo(
                f"warning: the replay may grow to {most / 2**30:.1f} GiB, over half of this machine's "
                f"{ram / 2**30:.0f} GiB; pass --capacity {fits:,} or less to stay within it"
            )

    def _collect(self, collector: Collector, act) -> None:
        """One step of every env: store it, count it, log finished episodes."""
        c, cfg = self.counters, self.cfg
        record, finished = collector.step(act)
        self.store.add(record)
        c["agent_steps"] += cfg.envs
        c["env_steps"] += cfg.envs * cfg.action_repeat
        for ret, length in finished:
            c["episodes"] += 1
            self.last_return = ret
            self.logger.add({"episode/return": ret, "episode/length": length})

    def _train_due(self) -> None:
        """Train until replayed steps / policy steps after prefill reaches the train ratio."""
        c, cfg = self.counters, self.cfg
        due = int(max(0, c["agent_steps"] - cfg.prefill) * cfg.train_ratio / self.agent.replayed_per_update)
        rows, length = self.agent.replay_shape
        while c["train_steps"] < due and len(self.store) >= length:
            batch = to_torch(self.store.sample(rows, length, self.np_rng), self.agent.device)
            self.logger.add(self.agent.train_step(batch))
            c["train_steps"] += 1

    def evaluate(self, episodes: int) -> float:
        env = make_single_env(self.cfg)
        try:
            returns = [
                run_episode(env, self.agent, seed=10_000 + self.cfg.seed * 1000 + i).ret for i in range(episodes)
            ]
        finally:
            env.close()
        return float(np.mean(returns))


@dataclass
class TrainOptions:
    """How ``wm train`` runs, beside the run's config: output, and the staged pipelines' flags."""

    quiet: bool = False
    # Writes what a finished run leaves to look at (report/finish.py), given by the CLI; None: nothing.
    finish: Callable[[Path], list[str]] | None = None
    stage: str | None = None  # V/M/C: run only this stage
    retrain: bool = False  # V/M/C: start --stage over


def train_run(cfg: Config, resume: bool, options: TrainOptions) -> int:
    """``wm train`` for agents that learn in the collect -> store -> train loop."""
    if options.stage:
        raise RunConfigError(f"--stage is for the staged V/M/C pipeline (--agent vmc); this run's agent is {cfg.agent}")
    tty = sys.stderr.isatty()
    trainer = Trainer(
        cfg, resume=resume, progress=not options.quiet and tty, status_lines=not options.quiet and not tty
    )
    c = trainer.train()
    print(f"done: {c['env_steps']} env steps, {c['train_steps']} train steps, {c['episodes']} episodes")
    if options.finish is not None:
        for path in options.finish(Path(cfg.logdir)):
            print(f"wrote {path}")
    return 0
