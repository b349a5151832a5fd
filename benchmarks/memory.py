"""Memory of a long pixel run: this process's RSS and the replay's disk use, sampled while
the library's own trainer collects, stores, evicts, samples and trains. Printed as JSON.

    python benchmarks/memory.py                     # 200,000 steps, capacity 20,000: docs/memory_rss.{json,png}
    python benchmarks/memory.py --steps 5000 --capacity 2000 --out /tmp/memory   # a quick check

The run is `worldmodels.run.train.Trainer(cfg).train()` in this process, in a temporary run
folder: collection from a pixel env (64 x 64 x 3 uint8 frames) into the on-disk replay
(`ReplayStore`, compressed chunks, oldest evicted once `--capacity` steps are held), batches
sampled from it, a tiny Dreamer agent trained on them at a low train ratio, evaluations and
checkpoints on the way. A background thread reads VmRSS from /proc/self/status and the size
of the replay folder every `--interval` seconds.

The default env is a synthetic pixel env defined here (a square steered by the action over a
moving gradient, with noise: every frame differs), because CartPole's renderer makes 200,000
pixel steps too slow for a benchmark; `--env CartPole-v1` runs the real one.

The replay holds at most capacity steps in RAM (its ring arrays cost only the pages written),
so RSS should rise by about capacity x bytes/step while the replay fills, then stay flat while
it evicts. `levelled_off` says whether RSS grew by less than 5% of that over the second half of
the run. `--replot OUT.json` redraws a run's figure from its JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from worldmodels.config import Config, ModelConfig, validate
from worldmodels.data.replay import step_bytes
from worldmodels.run.train import Trainer

SYNTHETIC_ID = "WmBench/DriftingPixels-v0"
MIB = 2**20


class DriftingPixels(gym.Env):
    """A white 8 x 8 square on a 64 x 64 frame: the action moves it left or right, it falls one
    pixel a step (wrapping), over a gradient that scrolls a pixel a step, with 3 bits of noise.
    Reward 1 while the square is in the right half; episodes last ``length`` steps."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode: str | None = None, length: int = 500, size: int = 64):
        self.render_mode, self.length, self.size = render_mode, length, size
        self.observation_space = spaces.Box(0.0, 1.0, (3,), np.float32)
        self.action_space = spaces.Discrete(2)
        ramp = np.linspace(0, 160, size, dtype=np.float32)
        across, down = np.meshgrid(ramp, ramp)
        self.background = np.stack([across, down, 80 + across[:, ::-1]], -1).astype(np.uint8)

    def _obs(self) -> np.ndarray:
        return np.array([self.x / self.size, self.y / self.size, self.t / self.length], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.x, self.y = (int(v) for v in self.np_random.integers(0, self.size - 8, 2))
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        self.x = int(np.clip(self.x + (2 if int(action) == 1 else -2), 0, self.size - 8))
        self.y = (self.y + 1) % (self.size - 8)
        reward = float(self.x >= self.size // 2)
        return self._obs(), reward, False, self.t >= self.length, {}

    def render(self) -> np.ndarray:
        frame = np.roll(self.background, self.t % self.size, axis=1)
        frame = frame | self.np_random.integers(0, 8, frame.shape, dtype=np.uint8)
        frame[self.y : self.y + 8, self.x : self.x + 8] = 255
        return frame


def register_synthetic() -> None:
    if SYNTHETIC_ID not in gym.registry:
        gym.register(SYNTHETIC_ID, entry_point=DriftingPixels)


def rss_kib() -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak so far) of this process, in KiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0])
    return out


def folder_bytes(path: Path) -> int:
    """Bytes of the files in ``path`` (chunks may be renamed or evicted while it looks)."""
    total = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    total += entry.stat().st_size
                except FileNotFoundError:
                    continue
    except FileNotFoundError:
        return 0
    return total


class Sampler(threading.Thread):
    """Every ``interval`` seconds: [env steps, seconds, RSS MiB, replay disk MiB]."""

    def __init__(self, replay_dir: Path, interval: float):
        super().__init__(daemon=True)
        self.replay_dir, self.interval = replay_dir, interval
        self.trainer: Trainer | None = None
        self.start_time = time.perf_counter()
        self.rows: list[list[float]] = []
        self.stopped = threading.Event()

    def sample(self) -> list[float]:
        steps = self.trainer.counters["env_steps"] if self.trainer is not None else 0
        row = [
            int(steps),
            round(time.perf_counter() - self.start_time, 1),
            round(rss_kib()["VmRSS"] / 1024, 1),
            round(folder_bytes(self.replay_dir) / MIB, 1),
        ]
        self.rows.append(row)
        return row

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.sample()


def make_config(args: argparse.Namespace, logdir: str) -> Config:
    """A tiny Dreamer on pixels: training is a small share of the time, the data path is not."""
    model = ModelConfig(
        deter=args.deter, stoch=4, classes=4, units=args.units, layers=1, cnn_depth=args.cnn_depth, bins=31
    )
    return Config(
        env=args.env,
        obs="pixels",
        size="XXS",  # the smallest preset's label; the model block below shrinks it further
        steps=args.steps,
        seed=args.seed,
        logdir=logdir,
        batch=args.batch,
        seq_len=args.seq_len,
        train_ratio=args.train_ratio,
        prefill=args.prefill,
        capacity=args.capacity,
        eval_every=max(1, args.steps // 4),
        eval_episodes=1,
        log_every=max(1, args.steps // 20),
        checkpoint_every=max(1, args.steps // 4),
        threads=args.threads,
        device="cpu",
        max_episode_steps=args.episode_steps,
        model=model,
    )


def at_step(rows: list[list[float]], step: int) -> list[float]:
    """The first sample at or after env step ``step`` (the last one if none is)."""
    return next((r for r in rows if r[0] >= step), rows[-1])


def window(rows: list[list[float]], start: int, end: int) -> list[list[float]]:
    """Samples with ``start <= env steps < end``; the nearest one if there are none."""
    inside = [r for r in rows if start <= r[0] < end]
    return inside or [at_step(rows, start)]


def summarise(rows: list[list[float]], steps: int, capacity: int, prefill: int, per_step: int) -> dict:
    """RSS at the milestones, the non-replay baseline, and whether RSS levelled off.

    RSS jumps when training starts (torch's working set: activations, gradients, optimiser
    state), so the baseline the replay adds to is measured once training runs: RSS less the
    replay's steps held at that moment (``min(env steps, capacity) x bytes/step``), median over
    the samples from 2 x prefill to 2 x prefill + capacity / 4 env steps. Levelling off is
    judged on medians of windows of a tenth of the run (RSS swings by tens of MiB within a
    train step), and on a straight-line fit over the second half."""
    predicted = capacity * per_step / MIB
    start, filled, final = rows[0], at_step(rows, capacity), rows[-1]
    early = window(rows, 2 * prefill, 2 * prefill + max(1, capacity // 4))
    baseline = float(np.median([r[2] - min(r[0], capacity) * per_step / MIB for r in early]))
    tenth = max(1, steps // 10)
    mid = float(np.median([r[2] for r in window(rows, steps // 2, steps // 2 + tenth)]))
    end = float(np.median([r[2] for r in window(rows, steps - tenth, steps + 1)]))
    half = [r for r in rows if r[0] >= steps // 2]
    x = np.array([r[0] for r in half], np.float64)
    y = np.array([r[2] for r in half], np.float64)
    slope = float(np.polyfit(x, y, 1)[0]) if len(half) > 2 and np.ptp(x) > 0 else 0.0  # MiB per env step
    fitted = slope * (steps - steps // 2)
    limit = 0.05 * predicted
    after_fill = [r for r in rows if r[0] >= capacity]
    return {
        "predicted_replay_mib": round(predicted, 1),
        "rss_start_mib": start[2],
        "rss_baseline_training_mib": round(baseline, 1),
        "rss_predicted_plateau_mib": round(baseline + predicted, 1),
        "rss_replay_filled_mib": filled[2],
        "rss_max_sampled_mib": max(r[2] for r in rows),
        "rss_final_mib": final[2],
        "rss_median_after_fill_mib": round(float(np.median([r[2] for r in after_fill or rows])), 1),
        "second_half": {
            "from_env_step": steps // 2,
            "rss_median_first_tenth_mib": round(mid, 1),
            "rss_median_last_tenth_mib": round(end, 1),
            "rss_growth_mib": round(end - mid, 1),
            "rss_growth_fitted_mib": round(fitted, 1),
            "rss_range_mib": [min(r[2] for r in half), max(r[2] for r in half)],
            "limit_mib": round(limit, 1),
        },
        "levelled_off": bool(end - mid < limit and fitted < limit),
        "disk_max_mib": max(r[3] for r in rows),
        "disk_final_mib": final[3],
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = result["sample_columns"]
    data = np.array(result["samples"], np.float64)
    steps, rss, disk = (data[:, cols.index(k)] for k in ("env_steps", "rss_mib", "disk_mib"))
    start, predicted = result["rss_start_mib"], result["predicted_replay_mib"]
    base = result["rss_baseline_training_mib"]
    fig, ax = plt.subplots(figsize=(9, 4.8))
    ax.plot(steps / 1000, rss, color="C0", lw=1.2, label="RSS of the training process")
    ax.axhline(
        base + predicted, color="C3", ls="--", lw=1.2, label=f"baseline + predicted replay ({predicted:.0f} MiB)"
    )
    ax.axhline(
        base, color="C3", ls=":", lw=1, label=f"baseline: RSS with training running, less the replay ({base:.0f} MiB)"
    )
    ax.axhline(start, color="0.5", ls=":", lw=1, label=f"RSS before training ({start:.0f} MiB)")
    peak = result["rss_peak_vmhwm_mib"]
    ax.axhline(peak, color="C0", ls="-.", lw=0.8, label=f"peak RSS, from the kernel's VmHWM ({peak:.0f} MiB)")
    ax.axvline(result["capacity"] / 1000, color="0.7", lw=1, label="replay full (capacity reached)")
    ax.set_xlabel("env steps (thousands)")
    ax.set_ylabel("RSS (MiB)", color="C0")
    ax.set_ylim(0, max(rss.max(), base + predicted, peak) * 1.12)
    ax.set_xlim(0, steps.max() / 1000)
    ax2 = ax.twinx()
    ax2.plot(steps / 1000, disk, color="C1", lw=1, alpha=0.8, label="replay folder on disk")
    ax2.set_ylabel("replay on disk (MiB)", color="C1")
    ax2.set_ylim(0, max(disk.max(), 1) * 1.6)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="lower right", fontsize=8)
    verdict = "levelled off" if result["levelled_off"] else "did NOT level off"
    ax.set_title(
        f"{result['steps']:,} pixel env steps, replay capacity {result['capacity']:,} steps "
        f"({result['bytes_per_step']:,} B/step): RSS {verdict}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def code_version() -> dict:
    """The commit this ran on, and the library files that differed from it (read-only git)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    changed = git("diff", "--name-only", "HEAD", "--", "worldmodels")
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted": changed.split() if changed else []}


def dumps(result: dict) -> str:
    """JSON with one line per sample."""
    rows = ",\n".join("    " + json.dumps(r) for r in result["samples"])
    text = json.dumps({**result, "samples": "@SAMPLES@"}, indent=2)
    return text.replace('"@SAMPLES@"', "[\n" + rows + "\n  ]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200_000, help="env steps of the run")
    parser.add_argument("--capacity", type=int, default=20_000, help="replay capacity in steps")
    parser.add_argument("--out", default="docs/memory_rss", help="writes OUT.json and OUT.png ('': neither)")
    parser.add_argument("--env", default=SYNTHETIC_ID, help=f"pixel env id (default: the synthetic {SYNTHETIC_ID})")
    parser.add_argument("--episode-steps", type=int, default=0, help="cut episodes at this length (0: env default)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between RSS samples")
    parser.add_argument("--train-ratio", type=float, default=1.0, help="replayed steps per policy step")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--prefill", type=int, default=1000)
    parser.add_argument("--deter", type=int, default=32)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--cnn-depth", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replot", metavar="JSON", help="only redraw the figure of a run's JSON (beside it)")
    args = parser.parse_args()
    if args.replot:
        path = Path(args.replot)
        plot(json.loads(path.read_text()), path.with_suffix(".png"))
        return
    register_synthetic()
    torch.set_num_threads(args.threads)
    code = code_version()  # before the run: what it imports

    with tempfile.TemporaryDirectory(prefix="wm-memory-") as tmp:
        cfg = make_config(args, str(Path(tmp) / "run"))
        validate(cfg)
        sampler = Sampler(Path(cfg.logdir) / "replay", args.interval)
        rss_imported = rss_kib()["VmRSS"] / 1024
        log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731 (stdout is for the JSON)
        trainer = Trainer(cfg, progress=False, status_lines=True, echo=log)
        sampler.trainer = trainer
        per_step = step_bytes(trainer.obs_spec, trainer.action_spec)
        sampler.start_time = wall = time.perf_counter()
        sampler.sample()  # the start: torch, the agent and an empty replay
        sampler.start()
        counters = trainer.train()
        wall = time.perf_counter() - wall  # the training run, without building the trainer
        sampler.stopped.set()
        sampler.join()
        sampler.sample()  # the end, after the final checkpoint
        chunks = len(list((Path(cfg.logdir) / "replay").glob("chunk-*.npz")))
        stored = len(trainer.store)
        params = sum(p.numel() for p in trainer.agent.world_model.parameters())

    result = {
        "steps": args.steps,
        "capacity": args.capacity,
        "env": args.env,
        "image": list(trainer.obs_spec.image),
        "bytes_per_step": per_step,
        "replay_turnovers": round(args.steps / args.capacity, 1),
        "steps_held_at_end": stored,
        "chunk_files_at_end": chunks,
        "rss_after_imports_mib": round(rss_imported, 1),
        **summarise(sampler.rows, args.steps, args.capacity, cfg.prefill, per_step),
        "rss_peak_vmhwm_mib": round(rss_kib()["VmHWM"] / 1024, 1),
        "wall_s": round(wall, 1),
        "env_steps_per_s": round(args.steps / wall, 1),
        "counters": counters,
        "config": {
            "train_ratio": cfg.train_ratio,
            "batch": [cfg.batch, cfg.seq_len],
            "prefill": cfg.prefill,
            "model": {k: getattr(cfg.model, k) for k in ("deter", "stoch", "classes", "units", "layers", "cnn_depth")},
            "params_world_model": params,
            "eval_every": cfg.eval_every,
            "checkpoint_every": cfg.checkpoint_every,
            "log_every": cfg.log_every,
        },
        "meta": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            **code,
        },
        "sample_columns": ["env_steps", "seconds", "rss_mib", "disk_mib"],
        "samples": sampler.rows,
    }
    text = dumps(result)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(text + "\n")
        plot(result, out.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()
