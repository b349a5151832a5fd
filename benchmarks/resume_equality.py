"""``--deterministic``: a run killed with SIGKILL and resumed, several times, ends equal to one
that never stopped. Printed as JSON.

    python benchmarks/resume_equality.py                       # Dreamer, CartPole from state, 3 kills
    python benchmarks/resume_equality.py --agent pets --env Pendulum-v1 --steps 600

Trains the same seeded run twice with ``wm train --deterministic``: straight through, and killed
with SIGKILL at random moments after its first checkpoint, resumed with ``--resume`` each time.
Compares every tensor of the two final checkpoints (agent and optimisers) and every metrics row
(less wall-clock and fps).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from json_out import emit

from worldmodels.run import checkpoint
from worldmodels.run.logger import read_metrics


def command(run: Path, args, resume: bool) -> list[str]:
    if resume:
        return [sys.executable, "-m", "worldmodels", "train", "--resume", str(run), "--quiet", "--no-finish"]
    return [
        sys.executable, "-m", "worldmodels", "train", "--logdir", str(run), "--quiet", "--no-finish",
        "--deterministic", "--agent", args.agent, "--env", args.env, "--steps", str(args.steps), "--seed", "0",
        "--threads", "1", "--prefill", str(args.prefill), "--checkpoint-every", str(args.checkpoint_every),
        "--checkpoint-minutes", "0", "--eval-every", str(args.steps // 2), "--eval-episodes", "1",
        "--log-every", "100", *args.extra,
    ]  # fmt: skip


def tensors(tree, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested dict/list, by its path."""
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list | tuple) else []
    out: dict[str, torch.Tensor] = {}
    for key, value in items:
        out.update(tensors(value, f"{prefix}/{key}"))
    return out


def rows(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time", "fps/env", "fps/train")} for r in read_metrics(run)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", default="dreamer")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--prefill", type=int, default=300)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("extra", nargs="*", help="more `wm train` flags, after --")
    args = parser.parse_args()
    if not args.extra:
        args.extra = ["--model.deter", "32", "--model.units", "32", "--model.stoch", "4", "--model.classes", "4",
                      "--batch", "4", "--seq-len", "16", "--train-ratio", "32"]  # fmt: skip
    rng = random.Random(args.seed)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    root = Path(tempfile.mkdtemp(prefix="wm-equal-"))
    straight, stopped = root / "straight", root / "stopped"
    start = time.time()
    subprocess.run(command(straight, args, resume=False), env=env, check=True, capture_output=True)
    straight_s = time.time() - start
    kills = []
    for i in range(args.kills + 1):
        ckpt = stopped / checkpoint.NAME
        before = ckpt.stat().st_mtime_ns if ckpt.exists() else 0
        proc = subprocess.Popen(command(stopped, args, resume=i > 0), env=env, stdout=subprocess.DEVNULL)
        if i == args.kills:
            proc.wait()
            break
        while proc.poll() is None and (not ckpt.exists() or ckpt.stat().st_mtime_ns == before):
            time.sleep(0.05)  # each kill comes after the run got past a new checkpoint
        time.sleep(rng.uniform(0.0, straight_s / (args.kills + 1)))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append(checkpoint.load(stopped / checkpoint.NAME)["counters"]["env_steps"])
    a = checkpoint.load(straight / checkpoint.NAME)
    b = checkpoint.load(stopped / checkpoint.NAME)
    ta, tb = (
        tensors({"agent": a["agent"], "optimizers": a["optimizers"]}),
        tensors({"agent": b["agent"], "optimizers": b["optimizers"]}),
    )
    differ = [k for k in ta if k not in tb or not torch.equal(ta[k], tb[k])]
    result = {
        "benchmark": "resume_equality",
        "agent": args.agent,
        "env": args.env,
        "steps": args.steps,
        "kills": len(kills),
        "resumed_from_env_steps": kills,
        "tensors_compared": len(ta),
        "tensors_differing": len(differ),
        "first_differing": differ[:5],
        "metrics_rows": len(rows(straight)),
        "metrics_equal": rows(straight) == rows(stopped),
        "counters_equal": a["counters"] == b["counters"],
        "counters": b["counters"],
        "set_aside_chunks": len(list((stopped / "replay" / "set-aside").glob("*.npz"))),
        "straight_s": round(straight_s, 1),
    }
    emit(result, args.out, indent=1)


if __name__ == "__main__":
    main()
