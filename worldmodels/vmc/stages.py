"""``wm train --agent vmc``: the V/M/C pipeline, one stage after another, each resumable.

collect: random-policy episodes into the run's on-disk replay (the same store as every agent);
         ``--dataset`` adds recorded episodes beside them, and with ``--offline`` they are all
         there is (nothing is collected; the env is made only to evaluate the controller).
vae:     the ConvVAE on frames sampled from it; ``RUN/vae/recon.png`` shows real over decoded.
mdnrnn:  every stored frame encoded once, then the MDN-RNN trained teacher-forced on sampled
         sequences of latents (z drawn from the encoder's Gaussian, as in the paper).
controller: CMA-ES over the controller's parameters; each candidate's fitness is its mean return
         over episodes in the dream (batched) or in the real env, scored by worker processes.

A single ``RUN/checkpoint.pt`` holds all three models, optimisers, stage counters, the CMA-ES
state and the dream's start latents; it is written during every stage and at its end.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..agents.base import optimize
from ..agents.vmc import VMC
from ..config import VMC_STAGES, Config
from ..data.replay import ReplayStore
from ..data.sequences import sample_windows
from ..envs.make import make_vector_env
from ..envs.seeding import evaluation_seeds
from ..errors import NonFiniteLossError, RunConfigError
from ..models.vae import reconstruction_grid
from ..run import checkpoint
from ..run.collect import Collector, held_random_policy
from ..run.datasets import add_to_replay, open_dataset, probe_run, record_replay_spaces
from ..run.lock import RunLock
from ..run.logger import MetricsLogger
from ..run.runs import build_agent, env_kwargs, write_config
from ..run.train import seed_everything
from ..specs import IMAGE
from .cmaes import CMAES
from .fitness import Fitness, calibrate_done_threshold, init_worker, random_dream_episodes, score
from .workers import ResilientPool

# The counter each stage's metric rows are written against (the x axis of its curve).
STAGE_COUNTER = {"collect": "env_steps", "vae": "vae_steps", "mdnrnn": "rnn_steps", "controller": "generation"}

LOG_EVERY = 100  # gradient steps between metric lines in the vae and mdnrnn stages
SAVE_EVERY = 1000


class VMCTrainer:
    def __init__(self, cfg: Config, *, resume: bool = False, echo=print):
        self.cfg, self.run_dir, self.echo = cfg, Path(cfg.logdir), echo
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.np_rng = seed_everything(cfg.seed, cfg.deterministic)
        self.obs_spec, self.action_spec, spaces = probe_run(cfg)
        self.agent: VMC = build_agent(cfg, self.obs_spec, self.action_spec)
        self.device = self.agent.device
        self.lock = RunLock(self.run_dir).acquire()  # one writer per run folder
        write_config(self.run_dir, cfg)
        v = cfg.vmc
        self.optimizers = {
            "vae": torch.optim.Adam(self.agent.vae.parameters(), lr=v.vae_lr),
            "mdnrnn": torch.optim.Adam(self.agent.mdnrnn.parameters(), lr=v.rnn_lr),
        }
        self.counters = {"env_steps": 0, "episodes": 0, "vae_steps": 0, "rnn_steps": 0, "generation": 0}
        self.dream_starts = torch.zeros(0, v.z)
        self.es_state: dict = {}
        self.best = {"fitness": float("-inf"), "params": torch.zeros(self.agent.shape.size)}
        self.done_threshold: float | None = None  # the dream's done-logit threshold, set when C starts
        if resume:
            self._restore()
        self.store = ReplayStore(self.run_dir / "replay", capacity=cfg.capacity, streams=cfg.envs, chunk=cfg.chunk)
        record_replay_spaces(self.run_dir, spaces)  # the replay folder alone is then a dataset
        self.recorded = (0, 0, 0.0)  # the dataset's episodes, agent steps and summed return
        if cfg.dataset:
            self._add_dataset()
        self.logger = MetricsLogger(self.run_dir)

    def _add_dataset(self) -> None:
        """``--dataset``: recorded episodes beside the collected ones, for the VAE and the MDN-RNN
        alike (held in memory, never written to the run's replay, never counted as collected)."""
        cfg = self.cfg
        dataset = open_dataset(cfg.dataset, image_size=cfg.model.image_size)
        held, about = add_to_replay(self.store, dataset, cfg, self.obs_spec, self.action_spec, share=cfg.dataset_share)
        self.recorded = (len(dataset.episodes), dataset.steps, float(dataset.returns().sum()))
        self.echo(f"dataset {cfg.dataset}: {held:,} steps{about}")

    # ------------------------------------------------------------ checkpoints
    def _restore(self) -> None:
        path = self.run_dir / checkpoint.NAME
        if not path.exists():
            self.echo("no checkpoint yet: starting the stages over with the stored replay")
            return
        ckpt = checkpoint.load(path, map_location=self.device)
        checkpoint.load_agent_state(self.agent, ckpt, path)
        for k, opt in self.optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][k])
        self.counters.update(ckpt["counters"])
        self.dream_starts = ckpt["dream_starts"].cpu()
        self.es_state = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in ckpt["es"].items()}
        self.best = ckpt["best"]
        self.done_threshold = ckpt.get("done_threshold")
        checkpoint.set_rng_state(ckpt["rng"], self.np_rng)

    def save(self) -> Path:
        if getattr(self, "_stage_start", None):  # wall time per stage, summed over resumes
            stage, start, before = self._stage_start
            self.counters[f"seconds/{stage}"] = before + time.time() - start
        es = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in self.es_state.items()}
        payload = {
            "agent": self.agent.state_dict(),
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
            "counters": dict(self.counters),
            "dream_starts": self.dream_starts,
            "es": es,
            "best": self.best,
            **({} if self.done_threshold is None else {"done_threshold": self.done_threshold}),
            "rng": checkpoint.rng_state(self.np_rng),
            "config": self.cfg.to_json(),
        }
        return checkpoint.save(self.run_dir, payload)

    # ------------------------------------------------------------------ stages
    def train(self, stages: tuple[str, ...] = VMC_STAGES, retrain: bool = False) -> dict:
        self.echo(f"agent vmc: {self.agent.describe()}")
        if retrain:
            self._discard_from(stages[0])
        try:
            for stage in stages:
                self._check_ready(stage)
                self._stage_start = (stage, time.time(), self.counters.get(f"seconds/{stage}", 0.0))
                getattr(self, f"_{stage}")()
                self.save()
        except KeyboardInterrupt:
            self.store.flush()
            self.save()
            self.echo(f"interrupted; saved. Continue with `wm train --resume {self.run_dir}`")
            raise
        except NonFiniteLossError as err:
            raise NonFiniteLossError(f"{err} The last good checkpoint in {self.run_dir} is kept.") from err
        finally:
            self.logger.close()
        return dict(self.counters)

    def _discard_from(self, stage: str) -> None:
        """Start ``stage`` over, and every stage after it (they were trained on its output)."""
        if stage == "collect":
            raise RunConfigError(
                "--retrain collect would throw away the collected episodes; start a new run instead "
                "(or collect more with a larger --rollouts)"
            )
        later = VMC_STAGES[VMC_STAGES.index(stage) :]
        fresh = build_agent(self.cfg, self.obs_spec, self.action_spec)
        c, v = self.counters, self.cfg.vmc
        if "vae" in later:
            self.agent.vae.load_state_dict(fresh.vae.state_dict())
            self.optimizers["vae"] = torch.optim.Adam(self.agent.vae.parameters(), lr=v.vae_lr)
            c["vae_steps"] = 0
        if "mdnrnn" in later:
            self.agent.mdnrnn.load_state_dict(fresh.mdnrnn.state_dict())
            self.optimizers["mdnrnn"] = torch.optim.Adam(self.agent.mdnrnn.parameters(), lr=v.rnn_lr)
            c["rnn_steps"], self.dream_starts = 0, torch.zeros(0, v.z)
        self.agent.controller.copy_(fresh.controller)
        c["generation"], self.es_state, self.done_threshold = 0, {}, None
        self.best = {"fitness": float("-inf"), "params": torch.zeros(self.agent.shape.size)}
        for name in later:
            c.pop(f"seconds/{name}", None)
        moved = self.logger.set_aside(tuple(STAGE_COUNTER[name] for name in later))
        self.echo(
            f"retraining: the progress of stages {', '.join(later)} is discarded "
            f"({moved} metric rows moved to metrics.discarded.jsonl)"
        )

    def _check_ready(self, stage: str) -> None:
        """A stage needs the outputs of the one before it; say which to run first."""
        c = self.counters
        missing = {
            "vae": ("collect", len(self.store) == 0),
            "mdnrnn": ("vae", c["vae_steps"] == 0),
            "controller": ("mdnrnn", c["rnn_steps"] == 0),
        }
        if stage in missing and missing[stage][1]:
            before = missing[stage][0]
            raise RunConfigError(
                f"stage {stage} needs the output of stage {before}, which has not run in {self.run_dir}. "
                f"Run it first: `wm train --resume {self.run_dir} --stage {before}`"
            )

    def _collect(self) -> None:
        cfg, c, target = self.cfg, self.counters, self.cfg.vmc.rollouts
        if cfg.offline:
            self.echo(
                f"collect: none (--offline): the VAE and the MDN-RNN learn from {self.recorded[0]} recorded episodes"
            )
            return
        if c["episodes"] >= target:
            return
        env = make_vector_env(cfg.env, cfg.envs, **env_kwargs(cfg))
        # Each stream goes on past the episodes its replay holds: a resume never replays one.
        collector = Collector(env, seed=cfg.seed * 1_000_003, episodes=self.store.started)
        act = held_random_policy(self.action_spec, self.np_rng, cfg.vmc.collect_hold)
        try:
            while c["episodes"] < target:
                record, finished = collector.step(act)
                self.store.add(record)
                c["env_steps"] += cfg.envs * cfg.action_repeat
                for ret, length, _ in finished:
                    c["episodes"] += 1
                    c["random_return_sum"] = c.get("random_return_sum", 0.0) + ret
                    self.logger.add({"episode/return": ret, "episode/length": length})
                    if c["episodes"] % 10 == 0 or c["episodes"] == target:
                        row = self.logger.write(c["env_steps"], key=STAGE_COUNTER["collect"])
                        self.echo(
                            f"collect: {c['episodes']}/{target} episodes, {c['env_steps']} env steps, "
                            f"random return {row['episode/return']:.1f}"
                        )
                    if c["episodes"] % 50 == 0:
                        self.store.flush()
                        self.save()
        finally:
            env.close()
            self.store.flush()

    def _vae(self) -> None:
        v, c = self.cfg.vmc, self.counters
        vae = self.agent.vae
        out = self.run_dir / "vae"
        out.mkdir(exist_ok=True)
        vae.train()
        while c["vae_steps"] < v.vae_steps:
            frames = torch.from_numpy(self.store.sample(v.vae_batch, 1, self.np_rng)[IMAGE][:, 0]).to(self.device)
            self._gradient_step("vae", *vae.loss(frames))
            c["vae_steps"] += 1
            last = c["vae_steps"] == v.vae_steps
            if c["vae_steps"] % LOG_EVERY == 0 or last:
                row = self.logger.write(c["vae_steps"], key=STAGE_COUNTER["vae"])
                self.echo(
                    f"vae: step {c['vae_steps']}/{v.vae_steps}  recon {row['vae/recon']:.1f}  kl {row['vae/kl']:.1f}"
                )
            if c["vae_steps"] % SAVE_EVERY == 0 or last:
                self._write_recon(out / "recon.png")
                self.save()

    def _gradient_step(self, name: str, loss: torch.Tensor, terms: dict, clip: float | None = None) -> None:
        """One update of model ``name`` (vae | mdnrnn); refused, naming the term, if the loss is not finite."""
        optimize(self.optimizers[name], loss, getattr(self.agent, name).parameters(), clip=clip, check={name: loss})
        self.logger.add({f"{name}/loss": loss.item(), **{f"{name}/{k}": x.item() for k, x in terms.items()}})

    def _write_recon(self, path: Path) -> None:
        frames = torch.from_numpy(self.store.sample(8, 1, np.random.default_rng(0))[IMAGE][:, 0]).to(self.device)
        grid = reconstruction_grid(self.agent.vae.eval(), frames).cpu().numpy()
        Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).resize(
            (grid.shape[1] * 2, grid.shape[0] * 2), Image.Resampling.NEAREST
        ).save(path)
        self.agent.vae.train()

    @torch.no_grad()
    def encode_store(self) -> list[dict[str, np.ndarray]]:
        """Every stored step of every stream, in order, with the VAE's posterior over its frame."""
        vae = self.agent.vae.eval()
        streams = []
        for steps in self.store.stream_steps(("action", "reward", "is_first", "is_terminal", IMAGE)):
            frames = steps.pop(IMAGE)
            means, logvars = [], []
            for s in range(0, len(frames), 1000):
                post = vae.encode(torch.from_numpy(frames[s : s + 1000]).to(self.device))
                means.append(post.mean.cpu().numpy())
                logvars.append(post.logvar.cpu().numpy())
            steps["mean"], steps["logvar"] = np.concatenate(means), np.concatenate(logvars)
            streams.append(steps)
        return streams

    def _mdnrnn(self) -> None:
        v, c = self.cfg.vmc, self.counters
        if c["rnn_steps"] >= v.rnn_steps and len(self.dream_starts):
            return
        self.echo(f"mdnrnn: encoding {len(self.store):,} stored frames with the VAE")
        streams = self.encode_store()
        self.dream_starts = torch.from_numpy(np.concatenate([s["mean"][s["is_first"]] for s in streams]))  # CPU
        if len(self.dream_starts) == 0:
            raise RunConfigError("the replay holds no episode start; collect more: `--stage collect`")
        rnn = self.agent.mdnrnn
        rnn.train()
        while c["rnn_steps"] < v.rnn_steps:
            batch = sample_windows(streams, v.rnn_batch, v.rnn_seq + 1, self.np_rng)
            b = {k: torch.from_numpy(x).to(self.device) for k, x in batch.items()}
            z = b["mean"] + torch.exp(0.5 * b["logvar"]) * torch.randn_like(b["mean"])
            # A sequence may run into the next episode: the memory would carry over, so every
            # step from the first episode start on is left out of the loss.
            mask = torch.cumprod((~b["is_first"][:, 1:]).long(), 1).bool()
            loss, terms = rnn.loss(
                z[:, :-1],
                b["action"][:, :-1].float(),
                z[:, 1:],
                b["reward"][:, 1:].float(),
                b["is_terminal"][:, 1:],
                mask,
            )
            self._gradient_step("mdnrnn", loss, terms, clip=1.0)
            c["rnn_steps"] += 1
            last = c["rnn_steps"] == v.rnn_steps
            if c["rnn_steps"] % LOG_EVERY == 0 or last:
                row = self.logger.write(c["rnn_steps"], key=STAGE_COUNTER["mdnrnn"])
                self.echo(
                    f"mdnrnn: step {c['rnn_steps']}/{v.rnn_steps}  nll/dim {row['mdnrnn/nll']:.3f}  "
                    f"done {row['mdnrnn/done']:.4f}  reward {row['mdnrnn/reward']:.4f}"
                )
            if c["rnn_steps"] % SAVE_EVERY == 0:
                self.save()

    def _dream_level(self) -> float:
        """The dream's done threshold: the paper's 0, or (``--vmc.calibrate-done``) the one at which
        a random policy lasts as long in the dream as it did in the game. Either way the random
        policy's dream and real survival are logged side by side: a dream much easier or harder
        than the game teaches a controller little that transfers."""
        cfg, v, c = self.cfg, self.cfg.vmc, self.counters
        real_length = c["env_steps"] / cfg.action_repeat / max(c["episodes"], 1)
        real_return = c.get("random_return_sum", float("nan")) / max(c["episodes"], 1)
        source = "a random policy lasts"
        if not c["episodes"]:  # offline: the recorded episodes are the real env's only record
            episodes, steps, total = self.recorded
            real_length, real_return = steps / max(episodes, 1), total / max(episodes, 1)
            source = "the dataset's episodes last"
        # The random policy of the collect stage (actions held as they were), so the two compare.
        kw = {"temperature": v.temperature, "max_steps": v.dream_max_steps, "seed": cfg.seed, "hold": v.collect_hold}
        dream_return, paper_length = random_dream_episodes(self.agent, self.dream_starts, episodes=64, **kw)
        threshold, dream_length = 0.0, paper_length
        if v.calibrate_done:
            threshold = calibrate_done_threshold(self.agent, self.dream_starts, real_length, **kw)
            dream_return, dream_length = random_dream_episodes(
                self.agent, self.dream_starts, episodes=64, done_threshold=threshold, **kw
            )
        metrics = {
            "dream_check/real_length": real_length,
            "dream_check/dream_length_threshold0": paper_length,
            "dream_check/dream_length": dream_length,
            "dream_check/done_threshold": threshold,
        }
        self.logger.write(0, metrics, key=STAGE_COUNTER["controller"])
        real = "" if math.isnan(real_return) else f" (return {real_return:.1f})"  # nan: collected before it was counted
        self.echo(
            f"controller: {source} {real_length:.0f} steps in the real env{real}; a random policy lasts "
            f"{paper_length:.0f} in the dream at done threshold 0 (tau {v.temperature}); "
            + (
                f"calibrated threshold {threshold:+.2f}: {dream_length:.0f} steps (return {dream_return:.1f})"
                if v.calibrate_done
                else "calibration off (--vmc.calibrate-done)"
            )
        )
        return threshold

    def _controller(self) -> None:
        cfg, v, c = self.cfg, self.cfg.vmc, self.counters
        es = CMAES(np.zeros(self.agent.shape.size), v.sigma0, popsize=v.population, seed=cfg.seed)
        if self.es_state:
            es.load_state_dict(self.es_state)
        if es.generation >= v.generations:
            return
        # The dream steps a whole population with CPU generators: C evolves on the CPU.
        self.agent.cpu()
        if v.controller_in == "dream" and self.done_threshold is None:
            self.done_threshold = self._dream_level()
        self.save()  # the workers load V, M, the dream's starts and its done threshold from the checkpoint
        # In this process: scoring when there is one worker, and the real-env evaluations.
        local = Fitness(cfg, self.agent, self.dream_starts, v.controller_in, self.done_threshold or 0.0)
        pool = None
        if v.workers > 1:
            pool = ResilientPool(v.workers, init_worker, (str(self.run_dir), v.controller_in), echo=self.echo)
        try:
            while es.generation < v.generations:
                candidates = es.ask()
                chunks = np.array_split(candidates, min(v.workers, len(candidates)))
                seed = cfg.seed * 1_000_003 + es.generation * 101
                tasks = [(chunk, seed + i) for i, chunk in enumerate(chunks)]
                results = pool.map(score, tasks) if pool else [local(t) for t in tasks]
                fitness = np.concatenate(results)
                es.tell(candidates, -fitness)
                top = int(np.argmax(fitness))
                if fitness[top] > self.best["fitness"]:
                    self.best = {"fitness": float(fitness[top]), "params": torch.tensor(candidates[top]).float()}
                self.es_state, c["generation"] = es.state_dict(), es.generation
                metrics = {
                    "fitness/mean": float(fitness.mean()),
                    "fitness/max": float(fitness.max()),
                    "fitness/min": float(fitness.min()),
                    "cmaes/sigma": es.sigma,
                }
                line = (
                    f"controller: generation {es.generation}/{v.generations}  "
                    f"fitness mean {fitness.mean():.1f} max {fitness.max():.1f}"
                )
                # The distribution's mean is what the agent acts with: a single candidate's score
                # is a noisy maximum over the population, the mean's is not.
                mean = torch.from_numpy(es.mean).float()
                if es.generation % v.eval_every == 0 or es.generation == v.generations:
                    real_return = local.real_return(mean, evaluation_seeds(cfg.seed, es.generation, cfg.eval_episodes))
                    metrics["eval/return"] = real_return
                    line += f"  real env {real_return:.1f}"
                self.agent.controller.copy_(mean)
                self.logger.write(es.generation, metrics, key=STAGE_COUNTER["controller"])
                self.echo(line + f"  ({v.controller_in})")
                self.save()
        finally:
            if pool is not None:
                pool.close()
            local.close()


def train_vmc(cfg: Config, resume: bool, options) -> int:
    """``wm train --agent vmc``: the stages in order, or only ``options.stage``."""
    import functools

    from ..run.distributed import launched

    if launched().world > 1:
        raise RunConfigError(
            "V/M/C trains in stages in one process (its controller's fitness runs on --vmc.workers processes); "
            "launch it without torchrun"
        )
    if not resume and options.stage not in (None, "collect"):
        raise RunConfigError(
            f"--stage {options.stage} needs the earlier stages' outputs, and {cfg.logdir} is a new run: start with "
            f"`--stage collect` (or no --stage to run them all), then `wm train --resume {cfg.logdir} --stage ...`"
        )
    # Flushed, so a log file of a background run shows each stage's progress as it happens.
    echo = (lambda *a: None) if options.quiet else functools.partial(print, flush=True)
    if options.retrain and not (resume and options.stage):
        raise RunConfigError("--retrain needs --resume RUN and the --stage to start over")
    trainer = VMCTrainer(cfg, resume=resume, echo=echo)
    try:
        c = trainer.train((options.stage,) if options.stage else VMC_STAGES, retrain=options.retrain)
    finally:
        trainer.lock.release()
    print(
        f"done: {c['episodes']} episodes collected, VAE {c['vae_steps']} steps, MDN-RNN {c['rnn_steps']} steps, "
        f"{c['generation']} CMA-ES generations"
    )
    times = [f"{k.split('/')[1]} {v / 60:.1f} min" for k, v in c.items() if k.startswith("seconds/")]
    if times:
        print("wall time per stage: " + ", ".join(times))
    if options.finish is not None and c["rnn_steps"]:
        for path in options.finish(Path(cfg.logdir)):
            print(f"wrote {path}")
    return 0
