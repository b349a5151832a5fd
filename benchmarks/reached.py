"""When did a run first reach an evaluation return? Prints JSON; optionally copies its curve.

    python benchmarks/reached.py runs/bench-cartpole --threshold 475 --curve docs/cartpole_state.png

Wall-clock is measured from the run's first metrics line (after set-up) to the metrics line
that carries the evaluation, so it includes collection, training and evaluation time.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from worldmodels.report.plots import learning_curve
from worldmodels.run.logger import read_metrics
from worldmodels.run.runs import read_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--threshold", type=float, required=True)
    parser.add_argument("--curve", type=Path, help="write the learning curve PNG here")
    args = parser.parse_args()
    cfg, rows = read_config(args.run), read_metrics(args.run)
    if not rows:
        raise SystemExit(f"{args.run} has no metrics yet")
    start = rows[0]["time"]
    evals = [(r["env_steps"], r["time"] - start, r["eval/return"]) for r in rows if "eval/return" in r]
    hit = next(((s, t, v) for s, t, v in evals if v >= args.threshold), None)
    out = {
        "run": str(args.run),
        "env": cfg.env,
        "obs": cfg.obs,
        "size": cfg.size,
        "threshold": args.threshold,
        "reached": hit is not None,
        "env_steps": hit[0] if hit else None,
        "wall_clock_s": round(hit[1]) if hit else None,
        "eval_return": hit[2] if hit else None,
        "best_eval_return": max((v for _, _, v in evals), default=None),
        "last_env_steps": rows[-1]["env_steps"],
        "evals": [{"env_steps": s, "wall_clock_s": round(t), "return": round(v, 1)} for s, t, v in evals],
    }
    if args.curve:
        args.curve.parent.mkdir(parents=True, exist_ok=True)
        curve = args.run / "curve.png"
        if curve.exists():
            shutil.copy(curve, args.curve)
        else:
            learning_curve(rows, args.curve, cfg.describe())
        out["curve"] = str(args.curve)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
