"""Train-step speed of two checkouts of worldmodels, measured alternately in one run; ratios as JSON.

    git worktree add /tmp/old <commit>
    python benchmarks/ab_speed.py --old /tmp/old --new . --rounds 3 -- --sizes XS --obs state pixels --steps 5

Each round runs ``benchmarks/train_speed.py`` of the old checkout, then of the new one, each in
its own process with that checkout first on ``PYTHONPATH`` (so each imports its own package).
Alternating old/new rounds spreads the machine's drift over both; the medians over rounds of
``seconds_per_train_step`` and their ratio (new / old: below 1 is faster) are printed per row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path


def run(checkout: Path, args: list[str], script: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    out = subprocess.run(
        [sys.executable, str(script), *args], env=env, cwd=checkout, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)["results"]


def key(row: dict) -> str:
    return f"{row['size']} {row['obs']} {row['imagination']}" + (" model-bf16" if row.get("model_bf16") else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, required=True, help="checkout to compare against")
    parser.add_argument("--new", type=Path, default=Path("."), help="checkout under test (default: here)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("args", nargs=argparse.REMAINDER, help="after --: arguments for train_speed.py")
    opts = parser.parse_args()
    args = opts.args[1:] if opts.args[:1] == ["--"] else opts.args
    # One script for both, so only the package differs.
    script = (opts.new / "benchmarks" / "train_speed.py").resolve()
    times: dict[str, dict[str, list[float]]] = {}
    for _ in range(opts.rounds):
        for name, checkout in (("old", opts.old), ("new", opts.new)):
            for row in run(checkout, args, script):
                times.setdefault(key(row), {"old": [], "new": []})[name].append(row["seconds_per_train_step"])
    rows = []
    for k, t in times.items():
        old, new = statistics.median(t["old"]), statistics.median(t["new"])
        rows.append({"row": k, "old_s": round(old, 4), "new_s": round(new, 4), "new_over_old": round(new / old, 3)})
    print(json.dumps({"rounds": opts.rounds, "train_speed_args": args, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
