"""Learning curves over several seeds, under the evaluation protocol of docs/DESIGN.md.

    python benchmarks/learning.py --task CartPole-v1 --seeds 5 --steps 30000
    python benchmarks/learning.py --task Pendulum-v1 --agent pets --seeds 3 --steps 3000 -- --eval-episodes 20
    python benchmarks/learning.py --report runs/bench/cartpole-v1-dreamer --threshold 475
    python benchmarks/learning.py --report runs/bench/old runs/bench/new --labels old new --plot docs/cmp.png

Training runs ``wm train`` once per seed into ``OUT/seed-N`` (``--jobs`` at once; on 2 cores, one),
resuming a stopped seed and skipping a finished one: the same command continues the benchmark.
Flags after ``--`` go to every ``wm train``. ``--report`` prints JSON (IQM, mean, median with 95%
stratified-bootstrap intervals, per-seed scores) and writes the JSON and a curve PNG with bands
next to the first folder (or to --json / --plot).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from worldmodels.errors import WorldModelsError
from worldmodels.report.plots import seed_curves
from worldmodels.report.seeds import Bench, report, run_seeds


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", help="env id, as wm train --env takes it")
    p.add_argument("--agent", default="dreamer")
    p.add_argument("--seeds", type=int, help="how many seeds (0 .. N-1, from --first-seed)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=30_000, help="env steps per seed")
    p.add_argument("--out", type=Path, help="benchmark folder (default runs/bench/TASK-AGENT)")
    p.add_argument("--jobs", type=int, default=1, help="seeds trained at once")
    p.add_argument("--threads", type=int, default=0, help="torch threads per seed (0: cores / jobs)")
    p.add_argument(
        "--final-episodes", type=int, default=0, help="then wm eval each finished seed over N episodes (0: no)"
    )
    p.add_argument("--report", type=Path, nargs="+", metavar="BENCH", help="aggregate these benchmark folders")
    p.add_argument("--labels", nargs="+", help="curve labels of the --report folders")
    p.add_argument("--upto", type=int, help="report at this many env steps (default: the benchmark's length)")
    p.add_argument("--window", type=int, help="a seed's score: mean eval return over its last WINDOW env steps")
    p.add_argument("--threshold", type=float, help="also report when each seed first evaluated >= this")
    p.add_argument("--json", type=Path, help="where the report JSON goes (default BENCH/report.json)")
    p.add_argument("--plot", type=Path, help="where the curve PNG goes (default BENCH/curve.png)")
    args = p.parse_args(argv)
    try:
        if args.report:
            return _report(args)
        if not args.task or args.seeds is None:
            p.error("give --task and --seeds to train, or --report BENCH to aggregate")
        if args.seeds < 1:
            raise ValueError(f"--seeds must be >= 1 (seeds to train), got {args.seeds}")
        out = args.out or Path("runs/bench") / f"{args.task.replace('/', '_').replace(':', '_').lower()}-{args.agent}"
        if args.final_episodes < 0:
            raise ValueError(f"--final-episodes must be >= 0, got {args.final_episodes}")
        bench = Bench(
            task=args.task, agent=args.agent, steps=args.steps, flags=extra, final_episodes=args.final_episodes
        )
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        status = run_seeds(out, bench, seeds, jobs=args.jobs, threads=args.threads, echo=lambda m: print(m, flush=True))
        print(f"benchmark folder: {out}; report with `python benchmarks/learning.py --report {out}`")
        return 0 if all(code == 0 for code in status.values()) else 1
    except (WorldModelsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every running seed saved a checkpoint; the same command continues them", file=sys.stderr)
        return 130


def _report(args) -> int:
    labels = args.labels or [str(d) for d in args.report]
    if len(labels) != len(args.report):
        raise ValueError(f"--labels gives {len(labels)} names for {len(args.report)} folders")
    reports = {
        label: report(d, upto=args.upto, window=args.window, threshold=args.threshold)
        for label, d in zip(labels, args.report)
    }
    first = args.report[0]
    out = reports if len(reports) > 1 else next(iter(reports.values()))
    json_path = args.json or first / "report.json"
    json_path.write_text(json.dumps(out, indent=2))
    task = next(iter(reports.values()))["bench"]["task"]
    plot = seed_curves(reports, args.plot or first / "curve.png", f"{task}: evaluation return", args.threshold)
    keys = ("seeds", "unfinished", "score", "final", "final_eval")
    brief = {k: {n: r[n] for n in keys if n in r} for k, r in reports.items()}
    print(json.dumps(brief, indent=2))
    print(f"wrote {json_path} and {plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
