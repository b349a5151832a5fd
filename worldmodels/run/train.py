"""The training loop: collect -> store -> train -> evaluate -> checkpoint."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..data.replay import ReplayStore, physical_memory, step_bytes
from ..envs.disturbances import Disturbance
from ..envs.domains import Domain
from ..envs.make import make_vector_env
from ..envs.seeding import evaluation_seeds
from ..errors import NonFiniteLossError, RunConfigError
from . import checkpoint
from .collect import AgentPolicy, Collector, own_torch_rng, play_episodes, random_policy, return_summary
from .datasets import add_to_replay, open_dataset, probe_run, record_replay_spaces
from .lock import RunLock
from .logger import MetricsLogger, ProgressBar
from .runs import build_agent, env_kwargs, make_single_env, read_config, write_config


def seed_everything(seed: int, deterministic: bool, salt: int = 0) -> np.random.Generator:
    """Seed python, numpy and torch from the run's seed; returns the trainer's own generator.

    ``salt`` (the steps a resumed run's replay already holds) starts streams that continue none
    of those a killed process drew, so a resume does not replay its random actions and batches."""
    mixed = seed if salt == 0 else int(np.random.SeedSequence([seed, salt]).generate_state(1)[0])
    random.seed(mixed)
    np.random.seed(mixed)
    torch.manual_seed(mixed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
    # A stream of its own: seeded like the env's generator it would replay the env's draws
    # (random prefill actions would copy the env's random events).
    return np.random.default_rng([seed, 7919] if salt == 0 else [seed, 7919, salt])


def to_torch(batch: dict[str, np.ndarray], device: torch.device | None = None) -> dict[str, torch.Tensor]:
    out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
    if device is not None and device.type != "cpu":
        out = {k: v.to(device, non_blocking=True) for k, v in out.items()}
    return out


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


class Trainer:
    """Runs one training run in ``cfg.logdir``; ``resume`` continues it from what is on disk.

    The replay is the record of what was collected: a resumed run counts its env steps and
    episodes from it (docs/DESIGN.md, "Runs that survive anything"), continues each env's
    episodes past the ones it holds, and takes the agent, optimisers and the training count from
    the last checkpoint. Only one process at a time may train a run folder (``run/lock.py``).
    """

    def __init__(
        self, cfg: Config, *, resume: bool = False, progress: bool = True, status_lines: bool = False, echo=print
    ):
        self.cfg, self.run_dir, self.echo = cfg, Path(cfg.logdir), echo
        self.progress_enabled, self.status_lines = progress, status_lines
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.np_rng = seed_everything(cfg.seed, cfg.deterministic)
        # Bad env ids and settings the agent cannot take fail before a run folder is made.
        self.obs_spec, self.action_spec, spaces = probe_run(cfg)
        self._check_memory()
        self.agent = build_agent(cfg, self.obs_spec, self.action_spec)
        self.adversarial = Disturbance.parse(cfg.disturb).adversarial > 0
        self._check_adversary()
        self.lock = RunLock(self.run_dir).acquire()  # before anything in the folder is written
        try:
            write_config(self.run_dir, cfg)
            self.counters = {"env_steps": 0, "agent_steps": 0, "train_steps": 0, "episodes": 0}
            self.logger = MetricsLogger(self.run_dir)
            ckpt = self._load_checkpoint() if resume else None
            if resume and cfg.deterministic:
                self._set_aside_replay(ckpt)
            self.store = ReplayStore(self.run_dir / "replay", capacity=cfg.capacity, streams=cfg.envs, chunk=cfg.chunk)
            record_replay_spaces(self.run_dir, spaces)  # the replay folder alone is then a dataset
            if cfg.dataset:
                self._add_dataset()
            if cfg.mix:
                self._add_source_replay()
            if resume:
                self._restore(ckpt)
            if ckpt is None and cfg.finetune_from:
                self._start_from_source()
        except BaseException:
            self.close()
            raise
        self.last_return: float | None = None
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
        # The prior heads exist only with --penalty: a source trained without them starts them fresh.
        advice = "wm finetune keeps the source's model: drop the flags that change its sizes or family."
        checkpoint.load_agent_state(self.agent, ckpt, path, optional=("world_model.prior_ensemble.",), advice=advice)
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
        steps = sum(p.steps for p in held)
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
            exact = list(ckpt.get("streams", [])) == [p.steps for p in held]
            if cfg.deterministic and not ckpt.get("at_episode_start", False):
                self.echo(
                    "warning: this checkpoint was saved mid-episode (on an interrupt), so the resumed run goes on "
                    "with new episodes and will not match an uninterrupted run bit for bit"
                )
        c["agent_steps"] = steps
        c["env_steps"] = steps * cfg.action_repeat
        c["episodes"] = sum(p.ended for p in held)
        if exact:
            checkpoint.set_rng_state(ckpt["rng"], self.np_rng)
            self.logger.restore(ckpt.get("logger"))
        else:  # the replay went on past the checkpoint: fresh streams, never the killed process's draws
            self.np_rng = seed_everything(cfg.seed, cfg.deterministic, salt=steps)
            if ckpt is not None:
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

    def save(self) -> Path:
        """Checkpoint what the run has learned (call after ``store.flush()``, so the replay matches it)."""
        payload = {
            "agent": self.agent.state_dict(),
            "optimizers": self.agent.optimizer_state(),
            "counters": dict(self.counters),
            "rng": checkpoint.rng_state(self.np_rng),
            "config": self.cfg.to_json(),
            "streams": [p.steps for p in self.store.positions],  # the replay this checkpoint goes with
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
        env = make_vector_env(cfg.env, cfg.envs, **env_kwargs(cfg))
        self.collector = collector = Collector(env, seed=cfg.seed, episodes=self.store.started)
        policy, explore = AgentPolicy(self.agent), random_policy(self.action_spec, self.np_rng)
        self._install_adversary(env, policy)
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
                    if evals.due(c["env_steps"]) or (final and cfg.eval_every > c["env_steps"]):
                        self.logger.add(self.evaluate(c["env_steps"] // cfg.eval_every))
                        self.logger.add(self.domain_probe())
                    if logs.due(c["env_steps"]) or final:
                        if c["train_steps"]:
                            self.logger.add(self.model_drift())
                        fps = {"fps/env": env_fps, "fps/train": train_fps, "train_steps": c["train_steps"]}
                        self._status(self.logger.write(c["env_steps"], fps))
                    minutes = (time.monotonic() - last_save) / 60
                    save_due |= saves.due(c["env_steps"]) or before < cfg.prefill <= c["agent_steps"]
                    save_due |= 0 < cfg.checkpoint_minutes <= minutes
                    if save_due and not final and (collector.at_episode_start or not cfg.deterministic):
                        self.store.flush()
                        self.save()
                        save_due, last_save = False, time.monotonic()
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
            if sys.exc_info()[0] is not None:
                self.close()
        self.store.flush()
        self.save()
        self.close()
        return dict(c)

    def _episodes_done(self) -> bool:
        """``--episodes N``: this run has collected its N episodes."""
        return 0 < self.cfg.episodes <= self.counters["episodes"]

    def _train_offline(self) -> dict:
        """``--offline``: train on the dataset alone until ``cfg.steps`` train steps, never stepping
        an env (one is made for each evaluation only); evaluations, metric rows and checkpoints
        come every ``eval_every``, ``log_every`` and ``checkpoint_every`` train steps."""
        cfg, c = self.cfg, self.counters
        rows, length = self.agent.replay_shape
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
                    if evals.due(c["train_steps"]) or (final and cfg.eval_every > cfg.steps):
                        evaluation = self.evaluate(c["train_steps"] // cfg.eval_every)
                        self.last_return = evaluation["eval/return"]
                        self.logger.add(evaluation)
                        self.logger.add(self.domain_probe())
                    if logs.due(c["train_steps"]) or final:
                        extra = {"fps/train": train_fps, "env_steps": 0}
                        self._status(self.logger.write(c["train_steps"], extra, key="train_steps"))
                    minutes = (time.monotonic() - last_save) / 60
                    if not final and (saves.due(c["train_steps"]) or 0 < cfg.checkpoint_minutes <= minutes):
                        self.save()
                        last_save = time.monotonic()
        except KeyboardInterrupt:
            self.save()
            self.echo(
                f"interrupted at {c['train_steps']} train steps; saved. Continue with "
                f"`wm train --resume {self.run_dir}`"
            )
            raise
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
        self.echo(
            f"replay: {self.store.collected:,} steps loaded{extra}, {per_step:,} bytes/step, "
            f"capacity {cfg.capacity:,} steps"
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
        try:
            seeds = evaluation_seeds(cfg.seed, index, cfg.eval_episodes)
            episodes = play_episodes(env, self.agent, seeds, mode=cfg.eval_policy == "greedy")
        finally:
            env.close()
        stats = return_summary([ep.ret for ep in episodes])
        out = {f"eval/return_{k}": v for k, v in stats.items() if k != "mean"}
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
