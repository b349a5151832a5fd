"""Offline learning from a fixed dataset: the dataset's return, and the offline agents' with and
without their uncertainty penalty, each evaluated as ``wm eval`` does.

    python benchmarks/offline.py --env Pendulum-v1 --agent pets --episodes 20 --out runs/bench/offline-pendulum-pets \\
        --variants "mean=--plan.objective mean" "risk=--plan.objective risk" --json docs/offline_pendulum_pets.json

    python benchmarks/offline.py --env InvertedPendulum-v5 --policy runs/ip --sample --episodes 50 \\
        --out runs/bench/offline-ip-dreamer --variants "penalty=--penalty 1" "none=--penalty 0" --steps 20000

Records ``--episodes`` episodes with ``--policy`` (``wm data collect``; random, held:K, or a run
folder: its agent, e.g. a partly trained one for "medium" data) unless ``OUT/dataset.h5`` is
there, then trains one offline run per ``--variants`` entry (``NAME=FLAGS``) for ``--steps``
train steps (default: the updates an online run over as many env steps as the dataset holds
would make), then ``wm eval RUN --episodes --eval-episodes``. Runs that exist are resumed or,
if finished, only evaluated. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from json_out import emit


def wm(*args: str) -> None:
    command = [sys.executable, "-m", "worldmodels", *args]
    print("$ wm " + " ".join(shlex.quote(a) for a in args), flush=True)
    # one thread each: wm eval would take every core, and runs of a benchmark share them
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True)
    parser.add_argument("--agent", default="dreamer")
    parser.add_argument("--policy", default="random")
    parser.add_argument("--sample", action="store_true", help="a run's policy: sample its actions")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=0, help="train steps (0: as an online run would do)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--variants", nargs="+", default=["default="], help="NAME=FLAGS for wm train")
    parser.add_argument("--json")
    args, extra = parser.parse_known_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = out / "dataset.h5"
    if not dataset.exists():
        collect = ["data", "collect", "--policy", args.policy, "--episodes", str(args.episodes), "--out", str(dataset)]
        collect += ["--seed", str(args.seed)] + (["--env", args.env] if args.env else [])
        wm(*collect, *(["--sample"] if args.sample else []))
    from worldmodels.config import resolve
    from worldmodels.data.datasets import load_dataset

    data = load_dataset(dataset)
    returns = data.returns()
    result = {
        "env": args.env,
        "agent": args.agent,
        "dataset": {
            "policy": data.meta.get("policy"),
            "episodes": len(data.episodes),
            "steps": data.steps,
            "mean_return": float(returns.mean()),
            "std_return": float(returns.std()),
        },
        "variants": {},
    }
    cfg = resolve({"agent": args.agent, "env": args.env})
    steps = args.steps or int(max(data.steps - cfg.prefill, 1) * cfg.train_ratio / _replayed(cfg))
    for variant in args.variants:
        name, _, flags = variant.partition("=")
        run = out / name
        train = ["train", "--agent", args.agent, "--env", args.env, "--dataset", str(dataset), "--offline"]
        train += ["--steps", str(steps), "--eval-every", str(steps), "--eval-episodes", "2", "--seed", str(args.seed)]
        train += ["--logdir", str(run), "--threads", "1", "--quiet", "--no-finish", *shlex.split(flags), *extra]
        if (run / "config.json").exists():
            wm("train", "--resume", str(run), "--steps", str(steps), "--quiet", "--no-finish")
        else:
            wm(*train)
        wm("eval", str(run), "--episodes", str(args.eval_episodes))
        evaluation = json.loads((run / "eval.json").read_text())
        result["variants"][name] = {
            "flags": flags,
            "train_steps": steps,
            "mean_return": evaluation["mean_return"],
            "std_return": evaluation["std_return"],
            "returns": evaluation["returns"],
        }
        print(name, json.dumps(result["variants"][name]), flush=True)
    emit(result, args.json)


def _replayed(cfg) -> int:
    """Steps one update replays (what counts against --train-ratio), as the agent says."""
    from worldmodels.run.runs import build_agent, probe_specs

    return build_agent(cfg, *probe_specs(cfg)).replayed_per_update


if __name__ == "__main__":
    main()
