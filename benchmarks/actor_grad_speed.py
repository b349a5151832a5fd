"""Train-step time of Dreamer's three actor estimators (--dreamer.actor-grad), printed as JSON.

    python benchmarks/actor_grad_speed.py                      # XXS, Pendulum-shaped data, 16 x 32
    python benchmarks/actor_grad_speed.py --size S --rounds 5

REINFORCE imagines without gradients on the sparse fast path; ``dynamics`` and ``mix`` build the
dense rollout with gradients and backpropagate through 15 model steps. The estimators are timed
in interleaved rounds (ABCABC...) so that a shared machine's noise falls on all of them alike;
compare them as ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from worldmodels.agents.dreamer import make_dreamer
from worldmodels.config import DreamerConfig, ModelConfig, apply_size
from worldmodels.specs import ActionSpec, ObsSpec

ESTIMATORS = ("reinforce", "dynamics", "mix")


def batch(rows: int, length: int, obs_dim: int, action_dim: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "vector": torch.randn(rows, length, obs_dim, generator=g),
        "action": torch.rand(rows, length, action_dim, generator=g) * 2 - 1,
        "reward": -torch.rand(rows, length, generator=g) * 10,
        "is_first": torch.zeros(rows, length, dtype=torch.bool),
        "is_terminal": torch.zeros(rows, length, dtype=torch.bool),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="XXS")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5, help="timed train steps per estimator per round")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    spec, action = ObsSpec(vector=3), ActionSpec(1, False)
    data = batch(args.batch, args.length, 3, 1)
    agents = {}
    for name in ESTIMATORS:
        torch.manual_seed(0)
        agents[name] = make_dreamer(spec, action, apply_size(ModelConfig(), args.size), DreamerConfig(actor_grad=name))
        agents[name].train_step(data)  # warm-up
    times = {name: [] for name in ESTIMATORS}
    for _ in range(args.rounds):
        for name, agent in agents.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                agent.train_step(data)
            times[name].append((time.perf_counter() - start) / args.steps)
    best = {name: min(t) for name, t in times.items()}
    print(json.dumps({
        "size": args.size, "batch": [args.batch, args.length], "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "seconds_per_train_step": best,
        "relative_to_reinforce": {name: best[name] / best["reinforce"] for name in ESTIMATORS},
        "all_rounds": times,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
