"""Robustness to pushes: return against push size, for several trained runs.

    python benchmarks/push_curve.py RUN_NOMINAL RUN_ADVERSARIAL --labels nominal adversarial \\
        --sizes 0 0.5 1 1.5 2 3 4 --prob 0.05 --episodes 10 --json docs/push_cartpole.json --plot docs/push_cartpole.png

Each run plays ``--episodes`` episodes under random pushes of every size (``wm eval --disturb
push=SIZE@PROB``: the same start states and the same push draws for every run), nominal
otherwise. The JSON gives each run's curve and the push size at which it keeps half its
unpushed return (linear between the sizes measured; null if it never falls that far).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from worldmodels.report.ood import evaluate_domain
from worldmodels.report.plots import push_curves
from worldmodels.run.runs import load_run


def half_return_size(sizes: list[float], returns: list[float]) -> float | None:
    """The smallest push size at which the return falls to half the first size's, interpolated."""
    half = returns[0] / 2
    for i in range(1, len(sizes)):
        if returns[i] <= half:
            a, b = returns[i - 1], returns[i]
            t = 0.0 if a == b else (a - half) / (a - b)
            return float(sizes[i - 1] + t * (sizes[i] - sizes[i - 1]))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--labels", nargs="+")
    parser.add_argument("--sizes", nargs="+", type=float, default=[0, 0.5, 1, 1.5, 2, 3, 4])
    parser.add_argument("--prob", type=float, default=0.05, help="push probability per step")
    parser.add_argument("--target", help="MuJoCo: the body pushed")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--json")
    parser.add_argument("--plot")
    args = parser.parse_args()
    labels = args.labels or [Path(r).name for r in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"{len(args.runs)} runs but {len(labels)} labels")
    body = f"[{args.target}]" if args.target else ""
    curves = {}
    for label, run_dir in zip(labels, args.runs):
        run = load_run(run_dir)
        means, stds = [], []
        for size in args.sizes:
            disturb = f"push{body}={size:g}@{args.prob:g}" if size > 0 else ""
            result = evaluate_domain(run, disturb=disturb, nominal=True, episodes=args.episodes)
            means.append(result["mean_return"])
            stds.append(result["std_return"])
            print(f"{label}: push {size:g}: return {result['mean_return']:.1f} ± {result['std_return']:.1f}")
        curves[label] = {
            "run": run_dir,
            "env_steps": int(run.counters.get("env_steps", 0)),
            "trained_with": run.config.disturb,
            "mean": means,
            "std": stds,
            "half_return_size": half_return_size(args.sizes, means),
        }
    out = {"sizes": args.sizes, "prob": args.prob, "episodes": args.episodes, "runs": curves}
    halves = [c["half_return_size"] for c in curves.values()]
    if len(halves) == 2 and all(h is not None for h in halves):
        out["half_return_ratio"] = halves[1] / halves[0]
    print(json.dumps({k: v for k, v in out.items()}, indent=2, default=float))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float))
    if args.plot:
        push_curves(
            {k: (np.array(args.sizes), np.array(c["mean"]), np.array(c["std"])) for k, c in curves.items()},
            Path(args.plot),
            f"return under random pushes (probability {args.prob:g} per step, {args.episodes} episodes)",
        )


if __name__ == "__main__":
    main()
