"""A task trained for several seeds, and what the seeds say together.

``run_seeds`` trains ``BENCH/seed-N`` for each seed with ``wm train`` (one process per seed, at most
``jobs`` at once), resuming a seed that stopped and skipping one that finished, so the same command
continues a benchmark after any interruption. ``report`` reads the seeds' evaluations and gives
IQM, mean and median with 95% stratified-bootstrap intervals (report/aggregate.py), per-seed
figures, and the curves with confidence bands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, RunConfigError
from ..run import checkpoint
from ..run.logger import read_metrics
from . import aggregate

BENCH_FILE = "bench.json"
# Settings a seed's run may hold differently from the others' without making it another experiment.
NOT_SETTINGS = {"seed", "logdir", "steps", "threads", "device", "checkpoint_minutes"}


@dataclass
class Bench:
    """What a benchmark folder runs: ``task`` with ``agent`` for ``steps`` env steps, and the other
    ``wm train`` flags; stored as ``BENCH/bench.json``."""

    task: str
    agent: str = "dreamer"
    steps: int = 30_000
    flags: list[str] = field(default_factory=list)
    final_episodes: int = 0  # wm eval --episodes N of each finished seed (0: none)

    def train_args(self, seed: int, logdir: Path) -> list[str]:
        return [
            "--env", self.task, "--agent", self.agent, "--steps", str(self.steps), "--seed", str(seed),
            "--logdir", str(logdir), *self.flags,
        ]  # fmt: skip


def seed_dir(bench_dir: Path, seed: int) -> Path:
    return Path(bench_dir) / f"seed-{seed}"


def seed_dirs(bench_dir: Path) -> list[tuple[int, Path]]:
    """``(seed, folder)`` of every seed folder, by seed."""
    found = []
    for path in Path(bench_dir).glob("seed-*"):
        tail = path.name[len("seed-") :]
        if path.is_dir() and tail.isdigit():
            found.append((int(tail), path))
    return sorted(found)


def reached_steps(run_dir: Path) -> int:
    """Env steps of the run's last metrics row (0 if none)."""
    rows = read_metrics(run_dir)
    return int(rows[-1].get("env_steps", 0)) if rows else 0


def checkpoint_steps(run_dir: Path) -> int:
    """Env steps of the run's checkpoint (0 if it has none, or one that does not load): what a
    seed has for certain, where the metrics may have gone on past a save that a kill cut short."""
    path = Path(run_dir) / checkpoint.NAME
    if not path.exists():
        return 0
    try:
        return int(checkpoint.load(path)["counters"]["env_steps"])
    except CheckpointError:
        return 0


def write_bench(bench_dir: Path, bench: Bench) -> None:
    """Store ``bench`` in a new folder, or check it against the one stored there (only ``steps`` may
    grow: a longer benchmark continues the shorter one)."""
    path = Path(bench_dir) / BENCH_FILE
    if path.exists():
        try:
            stored = Bench(**json.loads(path.read_text()))
        except (ValueError, TypeError) as err:
            raise RunConfigError(
                f"{path} is not a benchmark description ({err}); move it away or pick another --out"
            ) from err
        differ = [k for k in ("task", "agent", "flags") if getattr(stored, k) != getattr(bench, k)]
        if differ:
            detail = "; ".join(f"{k}: stored {getattr(stored, k)!r}, given {getattr(bench, k)!r}" for k in differ)
            raise RunConfigError(
                f"{bench_dir} holds a benchmark of other settings ({detail}). Seeds of different settings "
                "are not one experiment: pass another --out, or the stored settings to continue it."
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(bench), indent=2))


def read_bench(bench_dir: Path) -> Bench:
    path = Path(bench_dir) / BENCH_FILE
    if not path.exists():
        raise RunConfigError(
            f"{bench_dir} is not a benchmark folder (no {BENCH_FILE}); make one with "
            "`python benchmarks/learning.py --task ID --seeds N`"
        )
    return Bench(**json.loads(path.read_text()))


def run_seeds(
    bench_dir: Path, bench: Bench, seeds: list[int], *, jobs: int = 1, threads: int = 0, echo=print
) -> dict[int, int]:
    """Bring every seed to ``bench.steps`` (fresh, resumed, or skipped when done) and, with
    ``bench.final_episodes``, through its ``wm eval``; returns each seed's exit status. Each
    seed's output goes to ``seed-N/train.log``."""
    if not seeds:
        raise ValueError("--seeds must be >= 1: a benchmark needs at least one seed")
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    write_bench(bench_dir, bench)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    queue, running, status, launches = list(seeds), {}, {}, dict.fromkeys(seeds, 0)
    try:
        while queue or running:
            while queue and len(running) < jobs:
                seed = queue.pop(0)
                run_dir = seed_dir(bench_dir, seed)
                step = next_step(run_dir, bench, seed)
                if step is None:
                    echo(f"seed {seed}: finished at {reached_steps(run_dir):,} env steps")
                    status[seed] = 0
                elif launches[seed] >= 4:  # a command that exits 0 without getting there
                    echo(f"seed {seed}: still not finished after {launches[seed]} commands; see its train.log")
                    status[seed] = 1
                else:
                    args, what = step
                    echo(f"seed {seed}: {what}")
                    launches[seed] += 1
                    running[seed] = _start(run_dir, args, threads)
            for seed, (proc, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[seed]
                if proc.returncode == 0:
                    queue.insert(0, seed)  # its next step, or "finished"
                else:
                    status[seed] = proc.returncode
                    echo(f"seed {seed}: failed (exit {proc.returncode}; see its train.log)")
            time.sleep(0.5)
    except KeyboardInterrupt:  # each seed saves its checkpoint on SIGINT; the same command resumes them
        for proc, _ in running.values():
            proc.send_signal(signal.SIGINT)
        for proc, log in running.values():
            proc.wait()
            log.close()
        raise
    return status


def next_step(run_dir: Path, bench: Bench, seed: int) -> tuple[list[str], str] | None:
    """The ``python -m worldmodels`` arguments a seed needs next and what they do: training
    (fresh or resumed), its final evaluation, or None when it has everything."""
    finished = checkpoint_steps(run_dir) >= bench.steps
    quiet = ["--quiet", "--no-finish"]
    if not finished and (run_dir / "config.json").exists():
        args = ["train", "--resume", str(run_dir), "--steps", str(bench.steps), *quiet]
        return args, f"resuming at {reached_steps(run_dir):,} env steps"
    if not finished:
        return ["train", *bench.train_args(seed, run_dir), *quiet], "starting"
    if needs_final_eval(run_dir, bench):
        return ["eval", str(run_dir), "--episodes", str(bench.final_episodes)], (
            f"wm eval over {bench.final_episodes} episodes"
        )
    return None


def _start(run_dir: Path, args: list[str], threads: int):
    """``python -m worldmodels ARGS --threads N``, its output appended to ``run_dir/train.log``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir / "train.log", "a")
    cmd = [sys.executable, "-m", "worldmodels", *args]
    if args[0] == "train":
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    # A session of its own: a Ctrl-C in the terminal reaches only this runner, which passes one
    # SIGINT on; a second one would cut the child's interrupt checkpoint short.
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True), log


def final_eval(run_dir: Path) -> dict | None:
    """``RUN/eval.json`` if it evaluates the run's final state (its last metrics row), else None."""
    path = run_dir / "eval.json"
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except ValueError:
        return None
    return result if result.get("env_steps") == reached_steps(run_dir) else None


def needs_final_eval(run_dir: Path, bench: Bench) -> bool:
    """Whether a finished seed still lacks the ``wm eval`` of ``bench.final_episodes`` episodes."""
    if not bench.final_episodes:
        return False
    done = final_eval(run_dir)
    return done is None or done.get("episodes") != bench.final_episodes


# ------------------------------------------------------------------ report
def _evals(run_dir: Path, upto: int) -> list[tuple[int, float]]:
    return [
        (int(r["env_steps"]), float(r["eval/return"]))
        for r in read_metrics(run_dir)
        if "eval/return" in r and r["env_steps"] <= upto
    ]


def _settings(run_dir: Path) -> dict:
    cfg = json.loads((run_dir / "config.json").read_text())
    return {k: v for k, v in cfg.items() if k not in NOT_SETTINGS}


def _check_same_settings(runs: list[tuple[int, Path]]) -> None:
    first_seed, first = runs[0]
    ref = _settings(first)
    for seed, path in runs[1:]:
        other = _settings(path)
        differ = sorted(k for k in ref.keys() | other.keys() if ref.get(k) != other.get(k))
        if differ:
            detail = ", ".join(f"{k}: {ref.get(k)!r} (seed {first_seed}) vs {other.get(k)!r}" for k in differ)
            raise RunConfigError(
                f"seed {seed} of {path.parent} was trained with other settings than seed {first_seed} ({detail}); "
                "seeds of different settings are not one experiment: move it to a benchmark folder of its own"
            )


def report(
    bench_dir: Path, *, upto: int | None = None, window: int | None = None, threshold: float | None = None,
    reps: int = 10_000,
) -> dict:  # fmt: skip
    """Aggregate the seeds that reached ``upto`` env steps (default: the benchmark's length).

    A seed's score is the mean evaluation return over its last ``window`` env steps (default: the
    last third); ``final`` is its last evaluation. ``curve`` holds, at every evaluation step, the
    IQM over seeds with its 95% interval. ``threshold``: the env steps at which each seed first
    evaluated at or above it."""
    bench_dir = Path(bench_dir)
    bench = read_bench(bench_dir)
    upto = bench.steps if upto is None else upto
    window = max(1, upto // 3) if window is None else window
    present = seed_dirs(bench_dir)
    done = [(s, p) for s, p in present if reached_steps(p) >= upto and (p / "config.json").exists()]
    if not done:
        progress = ", ".join(f"seed {s} at {reached_steps(p):,}" for s, p in present) or "no seed folders"
        raise RunConfigError(
            f"no seed of {bench_dir} has reached {upto:,} env steps yet ({progress}); train them with "
            f"`python benchmarks/learning.py --out {bench_dir} --task {bench.task} --seeds N`, or report an "
            "earlier point with --upto"
        )
    _check_same_settings(done)
    per_seed, curves = {}, {}
    for seed, path in done:
        evals = _evals(path, upto)
        if not evals:
            raise RunConfigError(f"seed {seed} in {path} has no evaluation up to {upto:,} env steps")
        steps, returns = map(np.asarray, zip(*evals))
        last = returns[steps > upto - window]
        per_seed[seed] = {
            "score": float(last.mean()) if last.size else float(returns[-1]),
            "final": float(returns[-1]),
            "best": float(returns.max()),
            "evals_in_window": int(last.size),
        }
        if threshold is not None:
            hit = steps[returns >= threshold]
            per_seed[seed]["reached_at"] = int(hit[0]) if hit.size else None
        curves[seed] = dict(zip(steps.tolist(), returns.tolist()))
        last_eval = _final_eval(path) if upto >= bench.steps else None
        if last_eval is not None:
            per_seed[seed]["final_eval"] = last_eval
    scores = np.array([v["score"] for v in per_seed.values()])
    finals = np.array([v["final"] for v in per_seed.values()])
    common = sorted(set.intersection(*(set(c) for c in curves.values())))
    curve = []
    for step in common:
        at = np.array([curves[s][step] for s in curves])
        low, high = aggregate.stratified_bootstrap(at, aggregate.iqm, reps=min(reps, 2000))
        curve.append(
            {"env_steps": step, "iqm": aggregate.iqm(at), "ci_low": low, "ci_high": high, "mean": float(at.mean())}
        )
    out = {
        "bench": asdict(bench),
        "upto": upto,
        "window": window,
        "seeds": sorted(per_seed),
        "unfinished": [s for s, p in present if s not in per_seed],
        "score": aggregate.summarize(scores, reps=reps),
        "final": aggregate.summarize(finals, reps=reps),
        "per_seed": per_seed,
        "curve": curve,
        "curves": {str(s): [[k, v] for k, v in c.items()] for s, c in curves.items()},
        "protocol": _protocol(done[0][1]),
        "aggregates": "IQM, mean, median over seeds; 95% percentile intervals of a stratified bootstrap "
        f"({reps:,} replicates; worldmodels.report.aggregate, rliable's definitions)",
    }
    evaluated = [v["final_eval"]["mean_return"] for v in per_seed.values() if "final_eval" in v]
    if evaluated:  # wm eval of the last checkpoint, on starts no training evaluation played
        out["final_eval"] = aggregate.summarize(np.array(evaluated), reps=reps)
        out["final_eval"]["episodes_per_seed"] = {"value": next(iter(per_seed.values()))["final_eval"]["episodes"]}
    if threshold is not None:
        out["threshold"] = threshold
        out["seeds_reaching_threshold"] = sum(v["reached_at"] is not None for v in per_seed.values())
    return out


def _final_eval(run_dir: Path) -> dict | None:
    """What the report keeps of the seed's final ``wm eval``, if it has one."""
    result = final_eval(run_dir)
    if result is None:
        return None
    keep = ("mean_return", "std_return", "episodes", "env_steps", "returns", "protocol")
    return {k: result[k] for k in keep if k in result}


def _protocol(run_dir: Path) -> dict:
    cfg = json.loads((run_dir / "config.json").read_text())
    return {
        "eval_every": cfg.get("eval_every"),
        "eval_episodes": cfg.get("eval_episodes"),
        "eval_policy": cfg.get("eval_policy", "greedy"),
        "start_states": "fresh at every evaluation, disjoint from training's (worldmodels.envs.seeding)",
    }
