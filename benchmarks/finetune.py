"""Few-shot adaptation: a trained run fine-tuned on a changed system with 1, 2, 5 and 10 target
episodes, against the unadapted run and runs trained from scratch on the same target episodes.

    python benchmarks/finetune.py --source runs/bench/pendulum-pets --set "g=1.5,m=1.3" \\
        --episodes 1 2 5 10 --out runs/bench/finetune-pendulum --json docs/finetune_pendulum.json \\
        -- --train-ratio 1024

For every N in ``--episodes``: ``wm finetune SOURCE --set SPEC --episodes N`` (b), and a fresh
run of the source's agent on the changed system for N episodes (c, ``wm train --randomize SPEC
--episodes N``; extra flags after ``--`` go to both). Each, and the source itself (a), is scored
on the changed system by the open-loop prediction error at ``--horizons`` steps after ``--context``
observed ones, on ``--held-out`` target episodes of random play no run saw, and by ``wm eval``'s
return there (``--eval-episodes``). ``--reference RUN`` adds a run trained to convergence on the
target as the bar. Existing runs are reused. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import torch


def wm(*args: str) -> None:
    print("$ wm " + " ".join(shlex.quote(a) for a in args), flush=True)
    subprocess.run([sys.executable, "-m", "worldmodels", *args], check=True)


def score(run_dir: Path, target: str, held_out, args) -> dict:
    """Open-loop error on the held-out target episodes and the return on the target system."""
    from worldmodels.report.dream import prediction_error
    from worldmodels.run.runs import load_run

    run = load_run(run_dir)
    with torch.no_grad():
        error = prediction_error(run.world_model, held_out, args.context, args.horizons)
    wm("eval", str(run_dir), "--set", target, "--episodes", str(args.eval_episodes))
    domain = json.loads(max((run_dir / "ood").glob("domain-*.json"), key=lambda p: p.stat().st_mtime).read_text())
    return {"mse": error["mse"], "mean_return": domain["mean_return"], "std_return": domain["std_return"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="the run trained at nominal parameters")
    parser.add_argument("--set", dest="set_", required=True, help="the changed system: 'g=1.5,m=1.3'")
    parser.add_argument("--episodes", type=int, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--horizons", type=int, nargs="+", default=[1, 10, 30])
    parser.add_argument("--context", type=int, default=5)
    parser.add_argument("--held-out", type=int, default=5, help="target episodes of random play to score on")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--reference", help="a run trained to convergence on the changed system")
    parser.add_argument("--out", required=True)
    parser.add_argument("--json")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    torch.set_num_threads(1)
    from worldmodels.run.record import Recording, record_dataset
    from worldmodels.run.runs import read_config

    source, out = Path(args.source), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = read_config(source)
    target = record_dataset(
        Recording(env=cfg.env, episodes=args.held_out, seed=12345, overrides={"randomize": args.set_}),
        base=cfg,
    )
    result = {"source": str(source), "set": args.set_, "horizons": args.horizons, "context": args.context}
    result["unadapted"] = score(source, args.set_, target.episodes, args)
    print("unadapted", json.dumps(result["unadapted"]), flush=True)
    if args.reference:
        result["reference"] = score(Path(args.reference), args.set_, target.episodes, args)
    common = ["--quiet", "--no-finish", "--threads", "1", "--eval-every", str(10**6), *extra]
    for n in args.episodes:
        tuned, scratch = out / f"finetuned-{n}", out / f"scratch-{n}"
        if not (tuned / "checkpoint.pt").exists():
            wm("finetune", str(source), "--set", args.set_, "--episodes", str(n), "--logdir", str(tuned), *common)
        if not (scratch / "checkpoint.pt").exists():
            wm("train", "--agent", cfg.agent, "--env", cfg.env, "--obs", cfg.obs, "--randomize", args.set_,
               "--episodes", str(n), "--steps", str(10**7), "--seed", str(cfg.seed), "--logdir", str(scratch),
               *common)  # fmt: skip
        result[f"finetuned-{n}"] = score(tuned, args.set_, target.episodes, args)
        result[f"scratch-{n}"] = score(scratch, args.set_, target.episodes, args)
        print(n, json.dumps({k: result[f"{k}-{n}"] for k in ("finetuned", "scratch")}), flush=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
