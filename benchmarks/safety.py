"""Safe learning: the real cost paid while learning, and return and cost at evaluation, for several
trained runs on one task with costs.

    wm train --agent pets --env safe:PointGoal --steps 3000 --logdir runs/safety/pg-free
    wm train --agent pets --env safe:PointGoal --steps 3000 --cost-limit 0 --logdir runs/safety/pg-safe
    wm train --agent pets --env safe:PointGoal --steps 3000 --cost-limit 0 --pretrain-dream 2000 \\
        --logdir runs/safety/pg-safe-dream
    python benchmarks/safety.py runs/safety/pg-free runs/safety/pg-safe runs/safety/pg-safe-dream \\
        --labels free constrained "constrained + dream" --episodes 10 \\
        --json docs/safety_pointgoal.json --plot docs/safety_pointgoal.png

Each run's cumulative cost is the ``cost/paid`` its metrics logged (the cost its envs paid up to
each log row); evaluation is ``wm eval --episodes N`` (fresh start states of wm eval's own; an
``eval.json`` of that many episodes is reused). The JSON also holds, against the first run, each
run's share of its evaluation return and how many times less cost it paid while learning.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from json_out import emit

from worldmodels.report.evaluate import evaluate
from worldmodels.report.plots import safety_curves
from worldmodels.run.runs import load_run


def paid_curve(run_dir: Path) -> tuple[list[int], list[float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    points = [(r["env_steps"], r["cost/paid"]) for r in rows if "cost/paid" in r]
    if not points:
        raise SystemExit(f"{run_dir} logged no cost/paid: train it on an env that charges costs")
    steps, paid = zip(*points)
    return list(steps), list(paid)


def evaluation(run_dir: Path, episodes: int) -> dict:
    stored = run_dir / "eval.json"
    if stored.exists():
        result = json.loads(stored.read_text())
        if result.get("episodes") == episodes and "mean_cost" in result:
            return result
    return evaluate(load_run(run_dir), episodes=episodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="trained run folders on one task with costs")
    parser.add_argument("--labels", nargs="+", help="one label per run (default: folder names)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--json")
    parser.add_argument("--plot")
    args = parser.parse_args()
    labels = args.labels or [Path(r).name for r in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"{len(args.runs)} runs but {len(labels)} labels")
    runs, limit = {}, None
    for label, run_dir in zip(labels, map(Path, args.runs)):
        steps, paid = paid_curve(run_dir)
        result = evaluation(run_dir, args.episodes)
        limit = result.get("cost_limit") if result.get("cost_limit") is not None else limit
        runs[label] = {
            "run": str(run_dir),
            "steps": steps,
            "paid": paid,
            "paid_total": paid[-1],
            "return": result["mean_return"],
            "return_std": result["std_return"],
            "cost": result["mean_cost"],
            "cost_std": result["std_cost"],
            "cost_limit": result.get("cost_limit"),
            "episodes": result["episodes"],
        }
        print(
            f"{label}: paid {paid[-1]:.0f} while learning; "
            f"eval return {result['mean_return']:.1f}, cost {result['mean_cost']:.2f}"
        )
    base = runs[labels[0]]
    for r in runs.values():
        r["return_share"] = r["return"] / base["return"] if base["return"] else None
        r["less_cost_paid"] = base["paid_total"] / r["paid_total"] if r["paid_total"] else None
    if args.plot:
        safety_curves(runs, Path(args.plot), f"{len(runs)} runs: cost paid while learning, and at evaluation", limit)
    emit({"episodes": args.episodes, "runs": runs}, args.json)


if __name__ == "__main__":
    main()
