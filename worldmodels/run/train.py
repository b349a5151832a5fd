"""The training loop: collect -> store -> train -> evaluate -> checkpoint."""

from __future__ import annotations

import contextlib
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import Config, has_cost_limit, with_cost_horizon
from ..data.replay import ReplayStore, physical_memory, step_bytes
from ..envs.disturbances import Disturbance
from ..envs.domains import Domain
from ..envs.make import make_vector_env
from ..envs.seeding import evaluation_seeds
from ..errors import NonFiniteLossError, RunConfigError
from ..specs import COST
from . import checkpoint, distributed
from .collect import (
    AgentPolicy,
    Collector,
    cost_summary,
    own_torch_rng,
    play_episodes,
    random_policy,
    return_summary,
)
from .datasets import add_to_replay, open_dataset, probe_run, record_replay_spaces
from .distributed import Ranks
from .lock import RunLock
from .logger import DiscardingLogger, MetricsLogger, ProgressBar
from .runs import build_agent, env_kwargs, make_single_env, read_config, write_config


def seed_everything(seed: int, deterministic: bool, salt: int = 0, rank: int = 0) -> np.random.Generator:
    """Seed python, numpy and torch from the run's seed; returns the trainer's own generator.

    ``salt`` (the steps a resumed run's replay already holds) starts streams that continue none
    of those a killed process drew, so a resume does not replay its random actions and batches;
    ``rank`` > 0 (a distributed run's other processes) draws streams of its own."""
    tail = [salt, rank] if rank else [salt] if salt else []
    mixed = int(np.random.SeedSequence([seed, *tail]).generate_state(1)[0]) if tail else seed
    random.seed(mixed)
    np.random.seed(mixed)
    torch.manual_seed(mixed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
    # A stream of its own: seeded like the env's generator it would replay the env's draws
    # (random prefill actions would copy the env's random events).
    return np.random.default_rng([seed, 7919, *tail])


def to_torch(batch: dict[str, np.ndarray], device: torch.device | None = None) -> dict[str, torch.Tensor]:
    out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
    if device is not None and device.type != "cpu":
        out = {k: v.to(device, non_blocking=True) for k, v in out.items()}
    return out


@contextlib.contextmanager
def deaf_to_stop_signals():
    """Ignore SIGINT and SIGTERM while a stopping run saves what it has (restored after): a
    second signal, such as torchrun's SIGTERM after another rank died, would otherwise cut the
    save short. Signals can only be set from the main thread; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


class Every:
    """Fires when a counter reaches the next multiple of ``period`` (once, however far it jumped).
    The multiples are absolute, so a resumed run fires where one that never stopped would."""

    def __init__(self, period: int, after: int = 0):
        self.period = period
        self.next = (after // period + 1) * period

    def due(self, value: int) -> bool:
        if value < self.next:
            return False
        self.next = (value // self.period + 1) * self.period
        return True


class Rate:
    """Env steps/s and train steps/s since construction."""

    def __init__(self, env_steps: int, train_steps: int):
        self.start, self.env0, self.train0 = time.time(), env_steps, train_steps

    def __call__(self, env_steps: int, train_steps: int) -> tuple[float, float]:
        elapsed = max(time.time() - self.start, 1e-6)
        return (env_steps - self.env0) / elapsed, (train_steps - self.train0) / elapsed


# Weights a fine-tuned run may have and its source not (they start fresh): prior heads (--penalty),
# cost heads (an env with costs), the cost critic and Lagrange multiplier (--cost-limit).
FRESH_IN_FINETUNING = (
    "world_model.prior_ensemble.",
    "world_model.cost_head.",
    "world_model.cost_net.",
    "ensemble.cost_net.",
    "cost_critic.",
    "slow_cost_critic.",
    "cost_scale.",
    "lagrangian.",
)


class Trainer:
    """Runs one training run in ``cfg.logdir``; ``resume`` continues it from what is on disk.

    The replay is the record of what was collected: a resumed run counts its env steps and
    episodes from it (docs/DESIGN.md, "Runs that survive anything"), continues each env's
    episodes past the ones it holds, and takes the agent, optimisers and the training count from
    the last checkpoint. Only one process at a time may train a run folder (``run/lock.py``).

    In a distributed run (``ranks``, run/distributed.py) each rank steps its own envs into its own
    shard of the replay and trains on its share of every batch; rank 0 alone writes.
    """

    def __init__(
        self,
        cfg: Config,
        *,
        resume: bool = False,
        progress: bool = True,
        status_lines: bool = False,
        echo=print,
        ranks: Ranks | None = None,
        device: torch.device | None = None,
    ):
        self.ranks = ranks = ranks or Ranks()
        self.cfg, self.run_dir = cfg, Path(cfg.logdir)
        self.echo = echo if ranks.main else lambda *a, **k: None
        self.progress_enabled, self.status_lines = progress and ranks.main, status_lines and ranks.main
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.np_rng = seed_everything(cfg.seed, cfg.deterministic)
        # Bad env ids and settings the agent cannot take fail before a run folder is made.
        self.obs_spec, self.action_spec, spaces = probe_run(cfg)
        self.cfg = cfg = with_cost_horizon(cfg, spaces["meta"]["max_episode_steps"])
        self._check_memory()
        self.agent = build_agent(cfg, self.obs_spec, self.action_spec, device=device)
        distributed.check_distributable(cfg, self.agent.replay_shape[0], ranks.world)
        if ranks.world > 1:  # the same model on every rank, and random streams of each rank's own
            self.np_rng = seed_everything(cfg.seed, False, rank=ranks.rank)
        self.adversarial = Disturbance.parse(cfg.disturb).adversarial > 0
        self._check_adversary()
        # Before anything in the folder is written; only rank 0 writes.
        self.lock = RunLock(self.run_dir).acquire() if ranks.main else None
        try:
            if ranks.main:
                write_config(self.run_dir, cfg)
            self.counters = {"env_steps": 0, "agent_steps": 0, "train_steps": 0, "episodes": 0}
            if cfg.curriculum:  # the task's difficulty level, raised as the constraint is met
                self.counters["curriculum_level"] = 0.0
            self.cost_paid = 0.0  # the real cost this rank's envs paid while learning (envs/costs.py)
            self.logger = MetricsLogger(self.run_dir) if ranks.main else DiscardingLogger()
            ckpt = self._load_checkpoint() if resume else None
            if resume and cfg.deterministic:
                self._set_aside_replay(ckpt)
            self.store = ReplayStore(
                self.run_dir / "replay",
                capacity=cfg.capacity // ranks.world,
                streams=cfg.envs,
                chunk=cfg.chunk,
                first_stream=ranks.rank * cfg.envs,
                total_streams=ranks.world * cfg.envs,
            )
            if ranks.main:
                record_replay_spaces(self.run_dir, spaces)  # the replay folder alone is then a dataset
            if cfg.dataset:
                self._add_dataset()
            if cfg.mix:
                self._add_source_replay()
            if resume:
                self._restore(ckpt)
            if ckpt is None and cfg.finetune_from:
                self._start_from_source()
            distributed.broadcast_module(self.agent)
        except BaseException:
            self.close()
            raise
        self.last_return: float | None = None
        self.last_eval_cost: float | None = None  # the last evaluation's mean cost per episode
        self.collector: Collector | None = None

    def _add_dataset(self) -> None:
        """Load ``--dataset`` into the replay beside what the run collects (never written to the
        run's replay, never counted as collected)."""
        cfg = self.cfg
        held, about = self._add_recorded(open_dataset(cfg.dataset, image_size=cfg.model.image_size), cfg.dataset_share)
        self.echo(f"dataset {cfg.dataset}: {held:,} steps{about}")

    def _add_source_replay(self) -> None:
        """wm finetune --mix: the source run's replay joins the batches at that share."""
        cfg = self.cfg
        source = open_dataset(cfg.finetune_from, image_size=cfg.model.image_size, allow_empty=True)
        if not source.episodes:
            learned = read_config(Path(cfg.finetune_from)).dataset
            how = f" (it learned offline from {learned}: mix that in with --dataset {learned} --dataset-share S)"
            raise RunConfigError(
                f"--mix replays the source run's own episodes, and {cfg.finetune_from} collected none"
                + (how if learned else "")
            )
        held, _ = self._add_recorded(source, cfg.mix)
        self.echo(f"replaying {held:,} steps of {cfg.finetune_from} as {cfg.mix:.0%} of each batch")

    def _add_recorded(self, dataset, share: float) -> tuple[int, str]:
        """``dataset``'s episodes as a recorded stream of the replay at ``share``. They must fit
        the env's model (the same observation keys and shapes and the same actions); their
        domain values are kept where they name the env's randomised parameters."""
        cfg = self.cfg
        names = Domain.parse(cfg.randomize).names
        if cfg.invariant_encoder and not set(names) <= set(dataset.domain_names):
            missing = ", ".join(sorted(set(names) - set(dataset.domain_names)))
            raise RunConfigError(
                f"--invariant-encoder learns from the domain each step came from, and {dataset.source} did not record "
                f"{missing}: record it under the same --randomize, or train without --invariant-encoder"
            )
        return add_to_replay(self.store, dataset, cfg, self.obs_spec, self.action_spec, share=share, domain_names=names)

    def _start_from_source(self) -> None:
        """wm finetune: the agent starts from the source run's weights (its optimisers start afresh,
        at this run's learning rates). The source run is only read."""
        path = Path(self.cfg.finetune_from) / checkpoint.NAME
        ckpt = checkpoint.load(path, map_location=self.agent.device)
        # The prior heads exist only with --penalty, the cost heads only on an env with costs, the cost
        # critic and multiplier only under a limit: a source trained without them starts them fresh.
        advice = "wm finetune keeps the source's model: drop the flags that change its sizes or family."
        checkpoint.load_agent_state(self.agent, ckpt, path, optional=FRESH_IN_FINETUNING, advice=advice)
        steps = int(ckpt["counters"].get("env_steps", 0))
        self.echo(f"starting from the weights of {self.cfg.finetune_from} ({steps:,} env steps)")

    def _check_adversary(self) -> None:
        if self.adversarial and not self.agent.predicts_return:
            raise RunConfigError(
                f"adversarial pushes are chosen by the agent's predicted return, which {self.cfg.agent} does not "
                "give; use --agent dreamer or mpc, or random pushes (drop adversarial=K)"
            )

    def close(self) -> None:
        """Let another process train this run folder (``train`` does this when it ends)."""
        if self.lock is not None:
            self.lock.release()

    def _replay_bound(self, per_step: int) -> int:
        """Bytes the collected replay can grow to (an offline run collects nothing)."""
        cfg = self.cfg
        return 0 if cfg.offline else min(cfg.capacity, cfg.steps // cfg.action_repeat + cfg.envs) * per_step

    def _check_memory(self) -> None:
        """Refuse a replay that cannot fit in this machine's memory, before it is allocated."""
        per_step = step_bytes(self.obs_spec, self.action_spec)
        most = self._replay_bound(per_step)
        ram = physical_memory()
        if most > ram:
            raise RunConfigError(
                f"the replay would grow to {most / 2**30:,.1f} GiB ({per_step:,} bytes per step), more than this "
                f"machine's {ram / 2**30:.0f} GiB of memory; pass --capacity {int(ram / 2 / per_step):,} or less"
            )

    def _load_checkpoint(self) -> dict | None:
        path, prev = self.run_dir / checkpoint.NAME, self.run_dir / checkpoint.PREV
        if not path.exists() and prev.exists():
            self.echo(f"{path.name} is missing: resuming from {prev.name}, the checkpoint before it")
            path = prev
        if not path.exists():
            return None
        return checkpoint.load(path, map_location=self.agent.device)

    def _set_aside_replay(self, ckpt: dict | None) -> None:
        """Deterministic mode: the replay goes back to what the checkpoint saw (chunks written after
        it move to ``replay/set-aside/``), so the run goes on exactly as it did from there."""
        keep = list(ckpt.get("streams", [])) if ckpt else []
        keep += [0] * (self.cfg.envs - len(keep))
        moved = ReplayStore.set_aside(self.run_dir / "replay", keep)
        if moved:
            self.echo(
                f"--deterministic: {moved} replay chunk(s) written after the checkpoint moved to replay/set-aside/, "
                "so the run continues exactly as it did from its checkpoint"
            )

    def _restore(self, ckpt: dict | None) -> None:
        """Counters from the replay, learning from the checkpoint, every RNG stream continued."""
        cfg, c = self.cfg, self.counters
        held = self.store.positions
        steps = distributed.total(sum(p.steps for p in held), self.agent.device)
        saved_at = 0
        exact = False
        if ckpt is None:
            if steps:
                self.echo(
                    f"no checkpoint yet (stopped before the first one): the replay's {steps:,} steps count as "
                    "collected; the agent starts learning again from them"
                )
        else:
            path = self.run_dir / checkpoint.NAME
            checkpoint.load_agent_state(self.agent, ckpt, path)
            self.agent.load_optimizer_state(ckpt["optimizers"])
            c.update(ckpt["counters"])
            saved_at = int(ckpt["counters"]["env_steps"])
            exact = list(ckpt.get("streams", [])) == distributed.gather_lists([p.steps for p in held])
            if cfg.deterministic and not ckpt.get("at_episode_start", False):
                self.echo(
                    "warning: this checkpoint was saved mid-episode (on an interrupt), so the resumed run goes on "
                    "with new episodes and will not match an uninterrupted run bit for bit"
                )
        c["agent_steps"] = steps
        c["env_steps"] = steps * cfg.action_repeat
        c["episodes"] = distributed.total(sum(p.ended for p in held), self.agent.device)
        self.cost_paid = float(sum(p.cost for p in held))  # like the counters: what the replay records
        if exact and self.ranks.world == 1:
            checkpoint.set_rng_state(ckpt["rng"], self.np_rng)
            self.logger.restore(ckpt.get("logger"))
        else:  # the replay went on past the checkpoint: fresh streams, never the killed process's draws
            self.np_rng = seed_everything(cfg.seed, cfg.deterministic, salt=steps, rank=self.ranks.rank)
            saved_by = int(ckpt.get("world_size", 1)) if ckpt is not None else 1
            if ckpt is not None and saved_at == c["env_steps"] and saved_by != self.ranks.world:
                self.echo(
                    f"checkpoint at {saved_at:,} env steps, saved by a run on {saved_by} rank(s); this one has "
                    f"{self.ranks.world}: the replay's streams are shared out among its ranks"
                )
            elif ckpt is not None and not exact:
                self.echo(
                    f"checkpoint at {saved_at:,} env steps; the replay went on to {c['env_steps']:,}: those steps are "
                    f"kept, and the training they were due is done again"
                )
        if cfg.offline:  # offline rows count train steps
            saved_at = int(ckpt["counters"]["train_steps"]) if ckpt is not None else 0
            aside = self.logger.set_aside_after(saved_at, key="train_steps")
        else:
            aside = self.logger.set_aside_after(saved_at)
        if aside:
            self.echo(f"{aside} metrics row(s) written after the checkpoint moved to metrics.discarded.jsonl")

    def save(self, *, together: bool = True) -> Path | None:
        """Checkpoint what the run has learned (call after ``store.flush()``, so the replay matches
        it). Every rank calls it (``together``: they gather where their replay shards stand); rank
        0 writes. ``together=False`` (on an interrupt, or when a rank went away) gathers nothing,
        and a resume then counts from the replay."""
        held = [p.steps for p in self.store.positions]
        streams = distributed.gather_lists(held) if together or self.ranks.world == 1 else []
        if not self.ranks.main:
            return None
        payload = {
            "agent": self.agent.state_dict(),
            "optimizers": self.agent.optimizer_state(),
            "counters": dict(self.counters),
            "rng": checkpoint.rng_state(self.np_rng),
            "config": self.cfg.to_json(),
            "streams": streams,  # the replay this checkpoint goes with
            "world_size": self.ranks.world,
            "logger": self.logger.state(),
            "at_episode_start": self.collector is not None and self.collector.at_episode_start,
        }
        return checkpoint.save(self.run_dir, payload)

    # ------------------------------------------------------------------ loop
    def train(self) -> dict:
        """Collect, store and train until ``cfg.steps``; checkpoint on the way and at the end.

        A checkpoint is due every ``checkpoint_every`` env steps, every ``checkpoint_minutes`` and
        when prefill ends; with ``deterministic`` it waits for a step where every env starts an
        episode, so that a resumed run restarts the envs exactly where they were."""
        cfg, c = self.cfg, self.counters
        self._announce()
        if cfg.offline:
            return self._train_offline()
        first = self.store.first_stream
        env = make_vector_env(cfg.env, cfg.envs, first_stream=first, **env_kwargs(cfg))
        self.collector = collector = Collector(
            env, seed=cfg.seed, episodes=self.store.started, first_stream=first, costs=self.obs_spec.cost
        )
        policy, explore = AgentPolicy(self.agent), random_policy(self.action_spec, self.np_rng)
        self._install_adversary(env, policy)
        if cfg.curriculum:
            env.call("set_difficulty", c["curriculum_level"])
        evals = Every(cfg.eval_every, c["env_steps"])
        logs = Every(cfg.log_every, c["env_steps"])
        saves = Every(cfg.checkpoint_every, c["env_steps"])
        rate = Rate(c["env_steps"], c["train_steps"])
        save_due, last_save = False, time.monotonic()
        try:
            with ProgressBar(cfg.steps, c["env_steps"], self.progress_enabled) as bar:
                while c["env_steps"] < cfg.steps and not self._episodes_done():
                    before = c["agent_steps"]
                    self._collect(collector, explore if c["agent_steps"] < cfg.prefill else policy)
                    self._train_due()
                    env_fps, train_fps = rate(c["env_steps"], c["train_steps"])
                    bar.update(c["env_steps"], env_fps, train_fps, self.last_return)
                    final = c["env_steps"] >= cfg.steps or self._episodes_done()
                    evaluate = evals.due(c["env_steps"]) or (final and cfg.eval_every > c["env_steps"])
                    if evaluate and self.ranks.main:  # the other ranks wait at their next reduction
                        self.logger.add(self.evaluate(c["env_steps"] // cfg.eval_every))
                        self.logger.add(self.domain_probe())
                    if evaluate and cfg.curriculum:
                        self._raise_difficulty(env)
                    if logs.due(c["env_steps"]) or final:
                        if c["train_steps"] and self.ranks.main:
                            self.logger.add(self.model_drift())
                        fps = {"fps/env": env_fps, "fps/train": train_fps, "train_steps": c["train_steps"]}
                        if collector.costs:  # every rank's envs together
                            fps["cost/paid"] = distributed.total(self.cost_paid, self.agent.device)
                        self._status(self.logger.write(c["env_steps"], fps))
                    minutes = (time.monotonic() - last_save) / 60
                    save_due |= saves.due(c["env_steps"]) or before < cfg.prefill <= c["agent_steps"]
                    save_due |= 0 < cfg.checkpoint_minutes <= minutes
                    save_due = self._agreed(save_due)
                    if save_due and not final and (collector.at_episode_start or not cfg.deterministic):
                        self.store.flush()
                        self.save()
                        save_due, last_save = False, time.monotonic()
        except KeyboardInterrupt:
            with deaf_to_stop_signals():
                self.store.flush()
                self.save(together=False)
            self.echo(
                f"interrupted at {c['env_steps']} env steps; saved. Continue with `wm train --resume {self.run_dir}`"
            )
            raise
        except RuntimeError as err:
            if self.ranks.world == 1 or not distributed.peer_lost(err):
                raise
            with deaf_to_stop_signals():
                self.store.flush()
                self.save(together=False)
            raise distributed.lost_rank_error(self.ranks, c["env_steps"], "env", self.run_dir) from err
        except NonFiniteLossError as err:
            self.store.flush()
            last = self.run_dir / checkpoint.NAME
            kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint was written yet"
            raise NonFiniteLossError(f"{err} Training stopped at {c['env_steps']} env steps; {kept}.") from err
        finally:
            env.close()
            self.logger.close()
            if sys.exc_info()[0] is not None:
                self.close()
        self.store.flush()
        self.save()
        self.close()
        return dict(c)

    def _raise_difficulty(self, env) -> None:
        """``--curriculum``: one step up after an evaluation (rank 0's) whose mean cost kept within
        the limit; every rank's envs change together."""
        c, cfg = self.counters, self.cfg
        met = self.ranks.main and self.last_eval_cost is not None and self.last_eval_cost <= cfg.cost_limit
        if self._agreed(met) and c["curriculum_level"] < 1.0:
            c["curriculum_level"] = min(1.0, c["curriculum_level"] + cfg.curriculum_step)
            env.call("set_difficulty", c["curriculum_level"])
            self.echo(f"curriculum: cost within the limit, difficulty raised to {c['curriculum_level']:g}")
        self.logger.add({"curriculum/level": c["curriculum_level"]})

    def _episodes_done(self) -> bool:
        """``--episodes N``: this run has collected its N episodes."""
        return 0 < self.cfg.episodes <= self.counters["episodes"]

    def _train_offline(self) -> dict:
        """``--offline``: train on the dataset alone until ``cfg.steps`` train steps, never stepping
        an env (one is made for each evaluation only); evaluations, metric rows and checkpoints
        come every ``eval_every``, ``log_every`` and ``checkpoint_every`` train steps."""
        cfg, c = self.cfg, self.counters
        rows, length = self.agent.replay_shape
        rows //= self.ranks.world  # each rank's share of the batch
        evals, logs = Every(cfg.eval_every, c["train_steps"]), Every(cfg.log_every, c["train_steps"])
        saves = Every(cfg.checkpoint_every, c["train_steps"])
        rate, last_save = Rate(0, c["train_steps"]), time.monotonic()
        try:
            with ProgressBar(cfg.steps, c["train_steps"], self.progress_enabled, unit="train steps") as bar:
                while c["train_steps"] < cfg.steps:
                    batch = to_torch(self.store.sample(rows, length, self.np_rng), self.agent.device)
                    self.logger.add(self.agent.train_step(batch))
                    c["train_steps"] += 1
                    _, train_fps = rate(0, c["train_steps"])
                    bar.update(c["train_steps"], 0.0, train_fps, self.last_return)
                    final = c["train_steps"] >= cfg.steps
                    evaluate = evals.due(c["train_steps"]) or (final and cfg.eval_every > cfg.steps)
                    if evaluate and self.ranks.main:
                        evaluation = self.evaluate(c["train_steps"] // cfg.eval_every)
                        self.last_return = evaluation["eval/return"]
                        self.logger.add(evaluation)
                        self.logger.add(self.domain_probe())
                    if logs.due(c["train_steps"]) or final:
                        extra = {"fps/train": train_fps, "env_steps": 0}
                        self._status(self.logger.write(c["train_steps"], extra, key="train_steps"))
                    minutes = (time.monotonic() - last_save) / 60
                    save_due = self._agreed(saves.due(c["train_steps"]) or 0 < cfg.checkpoint_minutes <= minutes)
                    if not final and save_due:
                        self.save()
                        last_save = time.monotonic()
        except KeyboardInterrupt:
            with deaf_to_stop_signals():
                self.save(together=False)
            self.echo(
                f"interrupted at {c['train_steps']} train steps; saved. Continue with "
                f"`wm train --resume {self.run_dir}`"
            )
            raise
        except RuntimeError as err:
            if self.ranks.world == 1 or not distributed.peer_lost(err):
                raise
            with deaf_to_stop_signals():
                self.save(together=False)
            raise distributed.lost_rank_error(self.ranks, c["train_steps"], "train", self.run_dir) from err
        except NonFiniteLossError as err:
            last = self.run_dir / checkpoint.NAME
            kept = f"the last good checkpoint {last} is kept" if last.exists() else "no checkpoint was written yet"
            raise NonFiniteLossError(f"{err} Training stopped at {c['train_steps']} train steps; {kept}.") from err
        finally:
            self.logger.close()
            if sys.exc_info()[0] is not None:
                self.close()
        self.save()
        self.close()
        return dict(c)

    def _install_adversary(self, env, policy: AgentPolicy) -> None:
        """With ``--disturb ...,adversarial=K``, pushes are judged by the agent: of K candidates,
        the one after which it predicts the lowest return is applied (envs/disturbances.py).
        Until the agent first acts (prefill) pushes are random."""
        if not self.adversarial:
            return
        agent = self.agent

        def judge(outcomes: list[tuple[dict, float, bool]]) -> int:
            if policy.carry is None:
                return 0
            return int(torch.argmin(agent.predicted_return(policy.carry, outcomes)))

        env.envs[0].set_wrapper_attr("judge", judge)

    def _status(self, row: dict) -> None:
        """One line per metrics write, for logs without a progress bar."""
        if not self.status_lines:
            return
        unit = "train_steps" if self.cfg.offline else "env_steps"
        parts = [f"{row[unit]:>8}/{self.cfg.steps} {unit.replace('_', ' ')}", f"{row['fps/train']:.1f} train/s"]
        if "episode/return" in row:
            parts.append(f"return {row['episode/return']:.1f}")
        if "eval/return" in row:
            parts.append(f"eval {row['eval/return']:.1f}")
        self.echo("  ".join(parts))

    def _announce(self) -> None:
        cfg = self.cfg
        self.echo(f"agent {cfg.describe()} on {self.agent.device}: {self.agent.describe()}")
        if cfg.deterministic and cfg.envs > 1:
            self.echo(
                f"--deterministic: checkpoints wait for a step where all {cfg.envs} envs start an episode "
                "(rare if their episodes differ in length; the run always saves at its end and on Ctrl-C)"
            )
        per_step = step_bytes(self.obs_spec, self.action_spec)
        recorded = len(self.store) - self.store.collected
        extra = f" (and {recorded:,} recorded ones)" if recorded else ""
        world = self.ranks.world
        shard = f" (rank 0's shard of {world})" if world > 1 else ""
        self.echo(
            f"replay: {self.store.collected:,} steps loaded{shard}{extra}, {per_step:,} bytes/step, "
            f"capacity {cfg.capacity:,} steps"
        )
        if world > 1:
            rows, length = self.agent.replay_shape
            self.echo(
                f"{world} ranks: each steps {cfg.envs} env(s) and trains on {rows // world} of every {rows} rows "
                "(gradients and batch statistics averaged across ranks)"
            )
        most = self._replay_bound(per_step)
        ram = physical_memory()
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
        world = self.ranks.world  # the ranks step in lockstep, each its own envs
        c["agent_steps"] += cfg.envs * world
        c["env_steps"] += cfg.envs * world * cfg.action_repeat
        c["episodes"] += distributed.total(len(finished), self.agent.device)
        if collector.costs:  # the real cost paid while learning, by this rank's envs
            self.cost_paid += float(record[COST].sum())
        for ret, length, cost in finished:
            self.last_return = ret
            self.logger.add({"episode/return": ret, "episode/length": length})
            if collector.costs:
                self.logger.add({"episode/cost": cost})

    def _train_due(self) -> None:
        """Train until replayed steps / policy steps after prefill reaches the train ratio; once
        prefill is done, ``--pretrain-dream`` updates more (so they come before the first own action)."""
        c, cfg = self.counters, self.cfg
        due = int(max(0, c["agent_steps"] - cfg.prefill) * cfg.train_ratio / self.agent.replayed_per_update)
        if c["agent_steps"] >= cfg.prefill:
            due += cfg.pretrain_dream
        rows, length = self.agent.replay_shape
        rows //= self.ranks.world  # each rank's share of the batch
        if c["train_steps"] >= due or not self._agreed(len(self.store) >= length, every=True):
            return
        while c["train_steps"] < due:
            batch = to_torch(self.store.sample(rows, length, self.np_rng), self.agent.device)
            self.logger.add(self.agent.train_step(batch))
            c["train_steps"] += 1

    def _agreed(self, flag: bool, every: bool = False) -> bool:
        """``flag`` as every rank must act on it: whether it holds on any rank (``every``: on all of
        them). One reduction in a distributed run, so a decision with a collective behind it
        (a checkpoint, a train step) is taken by all ranks or none."""
        held = distributed.total(int(bool(flag)), self.agent.device)
        return held == self.ranks.world if every else held > 0

    @torch.no_grad()
    def model_drift(self) -> dict[str, float]:
        """The world model's loss terms on the newest replay (the last ``eval_every`` env steps,
        shared among the envs) and on the whole replay, as ``drift/recent/*`` and ``drift/all/*``:
        a model that fits old data but not what the current policy visits shows it here before
        the returns fall. It leaves training alone: batches from a generator of its own, torch's
        generators restored afterwards, and the model in eval mode (no statistics updated)."""
        cfg = self.cfg
        rows, length = self.agent.replay_shape
        if len(self.store) < length:
            return {}
        rng = np.random.default_rng([cfg.seed, 104_729, self.counters["env_steps"]])
        window = max(length, cfg.eval_every // (cfg.action_repeat * cfg.envs))
        wm, out = self.agent.world_model, {}
        was_training = wm.training
        device = self.agent.device
        with own_torch_rng(device):
            wm.eval()
            try:
                for name, recent in (("recent", window), ("all", 0)):
                    batch = to_torch(self.store.sample(rows, length, rng, recent=recent), device)
                    terms, _, _ = wm.loss(batch)
                    out.update({f"drift/{name}/{k}": float(v.float().mean()) for k, v in terms.items()})
            finally:
                wm.train(was_training)
        return out

    @torch.no_grad()
    def domain_probe(self) -> dict[str, float]:
        """How much of the randomised domain the latent features carry: the held-out accuracy of a
        fresh linear classifier of the domain bins (models/invariance.py), ``domain/probe_acc``,
        next to chance, ``domain/probe_chance``. Logged at every evaluation of a randomised run
        whose family gives feature tensors; like :meth:`model_drift` it leaves training alone."""
        from ..models.base import FEATURES, prev_actions
        from ..models.invariance import BINS, probe_accuracy, varied
        from ..specs import DOMAIN

        params = Domain.parse(self.cfg.randomize).params
        wm = getattr(self.agent, "world_model", None)
        rows, length = self.agent.replay_shape
        if not varied(params) or wm is None or FEATURES not in wm.capabilities or len(self.store) < length:
            return {}
        rng = np.random.default_rng([self.cfg.seed, 15_485_863, self.counters["env_steps"]])
        batch = to_torch(self.store.sample(max(rows, 64), length, rng), self.agent.device)
        device = self.agent.device
        with own_torch_rng(device):
            was_training = wm.training
            wm.eval()
            try:
                obs = {k: batch[k] for k in wm.obs_spec.keys()}
                feat = wm.features(wm.observe(None, obs, prev_actions(batch["action"]), batch["is_first"]))
            finally:
                wm.train(was_training)
            accuracy = probe_accuracy(feat.reshape(-1, feat.shape[-1]), batch[DOMAIN].reshape(-1, len(params)), params)
        if accuracy is None:
            return {}
        return {"domain/probe_acc": accuracy, "domain/probe_chance": 1.0 / BINS}

    def evaluate(self, index: int) -> dict[str, float]:
        """Evaluation ``index`` (env steps // eval_every): ``eval_episodes`` episodes from start states
        of their own (envs/seeding.py), acting as ``eval_policy`` says; metrics ``eval/*``."""
        cfg = self.cfg
        env = make_single_env(cfg)
        if cfg.curriculum:  # evaluations play the task at the level training is at
            env.get_wrapper_attr("set_difficulty")(self.counters["curriculum_level"])
        try:
            seeds = evaluation_seeds(cfg.seed, index, cfg.eval_episodes)
            episodes = play_episodes(env, self.agent, seeds, mode=cfg.eval_policy == "greedy")
        finally:
            env.close()
        stats = return_summary([ep.ret for ep in episodes])
        out = {f"eval/return_{k}": v for k, v in stats.items() if k != "mean"}
        if episodes[0].cost is not None:
            costs = cost_summary([ep.cost for ep in episodes], cfg.cost_limit if has_cost_limit(cfg) else None)
            out.update({f"eval/{k}": v for k, v in costs.items()})
            self.last_eval_cost = costs["mean_cost"]
        return {"eval/return": stats["mean"], **out, "eval/episodes": len(episodes), "eval/index": index}


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
    ranks, device = distributed.start(cfg)  # one process, or a rank of a torchrun launch
    try:
        tty = sys.stderr.isatty()
        quiet = options.quiet or not ranks.main
        trainer = Trainer(
            cfg,
            resume=resume,
            progress=not quiet and tty,
            status_lines=not quiet and not tty,
            ranks=ranks,
            device=device,
        )
        c = trainer.train()
    finally:
        distributed.stop()
    if not ranks.main:
        return 0
    on = f" on {ranks.world} ranks" if ranks.world > 1 else ""
    print(f"done{on}: {c['env_steps']} env steps, {c['train_steps']} train steps, {c['episodes']} episodes")
    if options.finish is not None:
        for path in options.finish(Path(cfg.logdir)):
            print(f"wrote {path}")
    return 0
