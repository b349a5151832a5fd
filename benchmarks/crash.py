"""Kill ``wm train`` with SIGKILL at random moments, resume it each time, and check what survived.

    python benchmarks/crash.py                         # 20 kills of a CartPole-from-pixels run
    python benchmarks/crash.py --kills 5 --steps 1500 --obs state

Each round starts ``wm train`` (the first a new run, then ``--resume``), waits a random time and
kills it with SIGKILL: in prefill, collection, training, a checkpoint write or a replay chunk
write (small chunks and a short checkpoint interval make those writes frequent enough to be hit;
a ``*.tmp`` left behind shows a kill landed in one). After every kill it reads the run folder as a
new process would. A last resume runs to the end. Prints JSON: per kill the phase, the steps on
disk, the time since the last checkpoint (the training work lost); at the end whether every
resume succeeded, whether any episode is stored twice, whether each stream's chunks are
contiguous (no missing step but the chunk being filled at each kill), and whether the counters
agree with the replay.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from json_out import emit

from worldmodels.data.replay import POSITION, ReplayStore, _chunk_name
from worldmodels.run import checkpoint


def train_command(run: Path, args, first: bool) -> list[str]:
    if not first:
        return [sys.executable, "-m", "worldmodels", "train", "--resume", str(run), "--quiet", "--no-finish"]
    return [
        sys.executable, "-m", "worldmodels", "train", "--logdir", str(run), "--quiet", "--no-finish",
        "--env", args.env, "--obs", args.obs, "--steps", str(args.steps), "--prefill", str(args.prefill),
        "--seed", "0", "--threads", "1", "--chunk", str(args.chunk), "--checkpoint-minutes", str(args.minutes),
        "--eval-every", str(args.steps), "--eval-episodes", "1", "--log-every", "250",
        "--model.deter", "32", "--model.units", "32", "--model.stoch", "4", "--model.classes", "4",
        "--model.cnn-depth", "4", "--model.image-size", "32", "--batch", "4", "--seq-len", "16",
        "--train-ratio", str(args.train_ratio),
    ]  # fmt: skip


# What each round aims its kill at (the first: a moment early in prefill): a random moment, or the
# instant a write is under way (its temp file exists), polled every millisecond.
TARGETS = ("random", "checkpoint write", "random", "chunk write")
WRITES = {"checkpoint write": ("checkpoint.pt.tmp",), "chunk write": ("replay/chunk-*.tmp",)}


def catch_write(proc: subprocess.Popen, run: Path, patterns: tuple[str, ...], deadline: float) -> None:
    """Return the moment a file matching ``patterns`` appears under ``run`` (or at ``deadline``)."""
    while proc.poll() is None and time.time() < deadline:
        if any(any(run.glob(p)) for p in patterns):
            return
        time.sleep(0.001)


def chunks(run: Path) -> list[tuple[int, int, int, int]]:
    """(stream, start step, steps, counter) of every readable chunk."""
    out = []
    for path in sorted((run / "replay").glob("chunk-*.npz")):
        counter, stream = _chunk_name(path)
        with np.load(path) as data:
            out.append((stream, int(data[POSITION][0]), len(data["reward"]), counter))
    return out


def contiguous(run: Path) -> bool:
    """Each stream's chunks follow one another with no gap and no overlap."""
    ends: dict[int, int] = {}
    for stream, start, n, _ in sorted(chunks(run), key=lambda c: (c[0], c[1])):
        if ends.get(stream, 0) != start:
            return False
        ends[stream] = start + n
    return True


def episode_hashes(run: Path) -> list[str]:
    """A hash of each complete episode's observations and actions."""
    store = ReplayStore(run / "replay", capacity=10**7, streams=1)
    out = []
    for steps in store.stream_steps():
        obs = steps["image"] if "image" in steps else steps["vector"]
        starts = list(np.flatnonzero(steps["is_first"]))
        for a, b in zip(starts, starts[1:] + [len(steps["reward"])]):
            if steps["is_last"][b - 1]:
                out.append(hashlib.sha1(obs[a:b].tobytes() + steps["action"][a:b].tobytes()).hexdigest())
    return out


def stored_steps(run: Path) -> int:
    return sum(p.steps for p in ReplayStore(run / "replay", capacity=10**7, streams=1).positions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--obs", default="pixels")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--prefill", type=int, default=1000, help="long enough that the first kills land in it")
    parser.add_argument("--chunk", type=int, default=32, help="small chunks: writes often, so kills land in them")
    parser.add_argument("--minutes", type=float, default=0.1, help="--checkpoint-minutes of the run")
    parser.add_argument("--train-ratio", type=int, default=16)
    parser.add_argument("--wait", type=float, nargs=2, default=(4.0, 25.0), help="seconds alive before the kill")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    run = Path(tempfile.mkdtemp(prefix="wm-crash-")) / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "PYTHONWARNINGS": "ignore"}
    kills, failures = [], []
    for i in range(args.kills):
        first = not (run / "config.json").exists()
        before = stored_steps(run) if not first else 0
        launched = time.time()
        proc = subprocess.Popen(
            train_command(run, args, first), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: list[str] = []
        reader = threading.Thread(target=lines.extend, args=(proc.stdout,), daemon=True)
        reader.start()
        while proc.poll() is None and not any(line.startswith("replay:") for line in lines):
            time.sleep(0.05)  # the run is built and about to collect: from here a kill loses work
        started = time.time()
        target = "prefill" if i == 0 else TARGETS[i % len(TARGETS)]
        try:
            if target in WRITES:
                catch_write(proc, run, WRITES[target], deadline=started + args.wait[1])
            wait = {"random": rng.uniform(*args.wait), "prefill": rng.uniform(0.5, 3.0)}.get(target, 0.001)
            proc.wait(timeout=wait)
            reader.join()
            failures.append({"round": i, "rc": proc.returncode, "output": "".join(lines)[-2000:]})  # ended by itself
            if proc.returncode == 0:
                break
            continue
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        killed = time.time()
        in_checkpoint_write = (run / (checkpoint.NAME + ".tmp")).exists()  # before the replay is read: that
        in_chunk_write = any((run / "replay").glob("chunk-*.tmp"))  # removes the temp files of cut writes
        ckpt = run / checkpoint.NAME
        last_save = max(ckpt.stat().st_mtime, started) if ckpt.exists() else started
        saved_steps = checkpoint.load(ckpt)["counters"]["env_steps"] if ckpt.exists() else 0
        steps_now = stored_steps(run)
        kills.append(
            {
                "round": i,
                "target": target,
                "startup_s": round(started - launched, 1),
                "alive_s": round(killed - started, 1),
                "phase": "prefill" if steps_now < args.prefill else "training",
                "in_checkpoint_write": in_checkpoint_write,
                "in_chunk_write": in_chunk_write,
                "steps_on_disk_before": before,
                "steps_on_disk_after": steps_now,
                "checkpoint_env_steps": saved_steps,
                "training_time_lost_s": round(killed - last_save, 1),
            }
        )
        print(json.dumps(kills[-1]), file=sys.stderr, flush=True)
    final = subprocess.run(train_command(run, args, first=False), env=env, capture_output=True, text=True)
    if final.returncode != 0:
        failures.append({"round": "final", "rc": final.returncode, "output": (final.stdout + final.stderr)[-2000:]})
    hashes = episode_hashes(run)
    counters = checkpoint.load(run / checkpoint.NAME)["counters"] if (run / checkpoint.NAME).exists() else {}
    lost = [k["training_time_lost_s"] for k in kills]
    result = {
        "benchmark": "crash",
        "env": args.env,
        "obs": args.obs,
        "steps": args.steps,
        "checkpoint_minutes": args.minutes,
        "chunk": args.chunk,
        "kills": len(kills),
        "kills_by_phase": {p: sum(k["phase"] == p for k in kills) for p in ("prefill", "training")},
        "kills_by_target": {t: sum(k["target"] == t for k in kills) for t in sorted({"prefill", *TARGETS})},
        "kills_in_checkpoint_write": sum(k["in_checkpoint_write"] for k in kills),
        "kills_in_chunk_write": sum(k["in_chunk_write"] for k in kills),
        "resumes_failed": failures,
        "final_rc": final.returncode,
        "episodes": len(hashes),
        "duplicate_episodes": len(hashes) - len(set(hashes)),
        "chunks_contiguous": contiguous(run),
        "stored_steps": stored_steps(run),
        "counters": counters,
        "counters_agree": counters.get("agent_steps") == stored_steps(run),
        "training_time_lost_s": {"max": max(lost, default=0), "mean": round(float(np.mean(lost)), 1) if lost else 0},
        "startup_s_mean": round(float(np.mean([k["startup_s"] for k in kills])), 1) if kills else 0,
        "bound_s": args.minutes * 60,
        "per_kill": kills,
        "run": str(run),
    }
    emit(result, args.out, indent=1)


if __name__ == "__main__":
    main()
