"""How long a checkpoint write takes (and blocks collection), printed as JSON.

    python benchmarks/checkpoint_time.py                 # sizes XS and S, pixels
    python benchmarks/checkpoint_time.py --sizes S --obs state

Builds the Dreamer agent, takes one train step on a synthetic batch (so the optimisers hold their
moment estimates, as in a real checkpoint), then times the trainer's checkpoint write: the
state dicts, ``torch.save`` to a temp file, fsync and the rename (run/checkpoint.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from train_speed import synthetic_batch  # benchmarks/ is on the path when run as a script

from worldmodels.agents.dreamer import make_dreamer
from worldmodels.config import DreamerConfig, ModelConfig, apply_size
from worldmodels.run import checkpoint
from worldmodels.specs import ActionSpec, ObsSpec


def measure(size: str, obs: str, repeats: int) -> dict:
    spec = ObsSpec(image=(64, 64, 3)) if obs == "pixels" else ObsSpec(vector=4)
    agent = make_dreamer(spec, ActionSpec(2, True), apply_size(ModelConfig(), size), DreamerConfig())
    agent.train_step(synthetic_batch(obs, 4, 16, 2))
    rng = np.random.default_rng(0)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            start = time.perf_counter()
            payload = {
                "agent": agent.state_dict(),
                "optimizers": agent.optimizer_state(),
                "counters": {"env_steps": 0},
                "rng": checkpoint.rng_state(rng),
                "config": "{}",
            }
            path = checkpoint.save(Path(tmp), payload)
            times.append(time.perf_counter() - start)
        mib = path.stat().st_size / 2**20
    return {
        "size": size,
        "obs": obs,
        "parameters": sum(p.numel() for p in agent.parameters()),
        "checkpoint_mib": round(mib, 1),
        "seconds_median": round(float(np.median(times)), 3),
        "seconds_max": round(max(times), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["XS", "S"])
    parser.add_argument("--obs", nargs="+", default=["pixels"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [measure(size, obs, args.repeats) for size in args.sizes for obs in args.obs]
    print(json.dumps({"torch": torch.__version__, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
