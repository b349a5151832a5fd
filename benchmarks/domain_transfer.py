"""Zero-shot transfer: trained runs evaluated over one grid of domains, side by side.

    python benchmarks/domain_transfer.py RUN_NOMINAL RUN_RANDOMISED --labels nominal randomised \\
        --vary "masspole=0.25:4:9,length=0.25:4:9" --source "masspole=0.5:2,length=0.5:2" \\
        --episodes 5 --json docs/transfer_cartpole.json --plot docs/transfer_cartpole.png

Each run plays every cell of ``--vary`` (``wm eval --vary``: the same start states in every
cell, parameters not on the grid nominal; each run keeps its grid in ``RUN/ood/``). The JSON
holds, per run: its return in the nominal cell, the lowest return over the cells inside
``--source`` (the training range) as a fraction of the nominal one, and the mean return over
the grid's outer ring (the cells beyond the source range on both axes' edges).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from worldmodels.envs.domains import Domain
from worldmodels.report.ood import evaluate_grid
from worldmodels.report.plots import domain_grids
from worldmodels.run.runs import load_run


def inside(values: list[float], low: float, high: float) -> np.ndarray:
    v = np.asarray(values)
    return (v >= low - 1e-9) & (v <= high + 1e-9)


def summary(grid: dict, source: Domain) -> dict:
    """Nominal return, the worst source-range cell relative to it, and the outer ring's mean."""
    mean = np.asarray(grid["mean"])
    ranges = {p.key: (p.low, p.high) for p in source.params}
    masks, nominal_index = [], []
    for axis in grid["axes"]:
        values = axis["values"]
        low, high = ranges.get(axis["key"], (min(values), max(values)))
        masks.append(inside(values, low, high))
        nominal = 1.0 if not axis["absolute"] else float(np.median(values))
        nominal_index.append(int(np.argmin(np.abs(np.log(np.asarray(values) / nominal)))))
    in_source = np.ix_(*masks)
    ring = np.ones(mean.shape, bool)
    ring[tuple(slice(1, n - 1) for n in mean.shape)] = False
    nominal_return = float(mean[tuple(nominal_index)])
    worst_source = float(mean[in_source].min())
    return {
        "nominal_return": nominal_return,
        "worst_in_source": worst_source,
        "worst_in_source_fraction": worst_source / nominal_return if nominal_return else None,
        "outer_ring_mean": float(mean[ring].mean()),
        "grid_mean": float(mean.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="trained run folders")
    parser.add_argument("--labels", nargs="+", help="one label per run (default: folder names)")
    parser.add_argument("--vary", required=True, help="the grid, as wm eval --vary takes it")
    parser.add_argument("--source", default="", help="the training range, to outline and to score within")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="read RUN/ood/grid.json where it holds this grid")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--plot", help="write the heatmaps here")
    args = parser.parse_args()
    labels = args.labels or [Path(r).name for r in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"{len(args.runs)} runs but {len(labels)} labels")
    source = Domain.parse(args.source)
    grids, results = {}, {}
    for label, run_dir in zip(labels, args.runs):
        stored = Path(run_dir) / "ood" / "grid.json"
        grid = json.loads(stored.read_text()) if args.reuse and stored.exists() else None
        wanted = [p.key for p in Domain.parse(args.vary, flag="--vary", mode="grid").params]
        if grid is None or [a["key"] for a in grid["axes"]] != wanted or grid["episodes"] != args.episodes:
            grid = evaluate_grid(load_run(run_dir), args.vary, episodes=args.episodes, echo=print)
        grid["trained_range"] = {p.key: [p.low, p.high] for p in source.params}
        grids[label] = grid
        results[label] = {"run": run_dir, "env_steps": grid["env_steps"], **summary(grid, source)}
    out = {"vary": args.vary, "source": args.source, "episodes": args.episodes, "runs": results}
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({**out, "grids": grids}, indent=2))
    if args.plot:
        domain_grids(grids, Path(args.plot), f"zero-shot transfer: mean return over {args.episodes} episodes per cell")


if __name__ == "__main__":
    main()
