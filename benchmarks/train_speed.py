"""Train steps/s and env steps/s of the Dreamer agent, printed as JSON.

    python benchmarks/train_speed.py                    # XS and S, state and pixels, batch 16 x 64
    python benchmarks/train_speed.py --sizes XS --obs state --steps 5

A train step is one world-model update on 16 x 64 replayed steps, a 15-step imagination from
all 1,024 posterior states, and one actor and one critic update (as DreamerV3 counts it). Env
steps/s is acting in CartPole-v1 with the policy (observe one step + sample an action + env step).
Compare rows of one run as ratios: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from worldmodels.agents.dreamer import make_dreamer
from worldmodels.config import DreamerConfig, ModelConfig, apply_size
from worldmodels.envs.make import make_vector_env
from worldmodels.run.collect import AgentPolicy, Collector
from worldmodels.specs import ActionSpec, ObsSpec


def synthetic_batch(obs: str, batch: int, length: int, action_dim: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    data = {
        "action": torch.nn.functional.one_hot(torch.randint(0, action_dim, (batch, length), generator=g), action_dim),
        "reward": torch.ones(batch, length),
        "is_first": torch.zeros(batch, length, dtype=torch.bool),
        "is_terminal": torch.zeros(batch, length, dtype=torch.bool),
    }
    data["action"] = data["action"].float()
    if obs == "pixels":
        data["image"] = torch.randint(0, 256, (batch, length, 64, 64, 3), dtype=torch.uint8, generator=g)
    else:
        data["vector"] = torch.randn(batch, length, 4, generator=g)
    return data


def measure(size: str, obs: str, steps: int, batch: int, length: int, fast: bool, model_bf16: bool = False) -> dict:
    """``fast``: gather-based sparse imagination under bf16; off: the dense fp32 equivalent."""
    spec = ObsSpec(image=(64, 64, 3)) if obs == "pixels" else ObsSpec(vector=4)
    model = apply_size(ModelConfig(bf16=model_bf16), size)
    agent = make_dreamer(spec, ActionSpec(2, True), model, DreamerConfig(imag_bf16=fast, sparse_imagination=fast))
    data = synthetic_batch(obs, batch, length, 2)
    agent.train_step(data)  # warm-up: allocations, autocast caches
    start = time.perf_counter()
    for _ in range(steps):
        agent.train_step(data)
    train_s = (time.perf_counter() - start) / steps

    env = make_vector_env("CartPole-v1", 1, obs_mode=obs)
    collector, policy = Collector(env, seed=0), AgentPolicy(agent)
    for _ in range(20):
        collector.step(policy)
    n = 300
    start = time.perf_counter()
    for _ in range(n):
        collector.step(policy)
    env_s = (time.perf_counter() - start) / n
    env.close()
    return {
        "size": size,
        "obs": obs,
        "imagination": "sparse+bf16" if fast else "dense fp32",
        "model_bf16": model_bf16,
        "params_world_model": sum(p.numel() for p in agent.world_model.parameters()),
        "train_steps_per_s": round(1 / train_s, 3),
        "seconds_per_train_step": round(train_s, 4),
        "env_steps_per_s": round(1 / env_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["XS", "S"])
    parser.add_argument("--obs", nargs="+", default=["state", "pixels"])
    parser.add_argument("--steps", type=int, default=5, help="timed train steps per setting")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-compare", action="store_true", help="skip the dense fp32 imagination rows")
    parser.add_argument("--model-bf16", action="store_true", help="also time pixel rows with --model.bf16")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for size in args.sizes:
        for obs in args.obs:
            rows.append(measure(size, obs, args.steps, args.batch, args.length, fast=True))
            if not args.no_compare:
                rows.append(measure(size, obs, args.steps, args.batch, args.length, fast=False))
            if args.model_bf16 and obs == "pixels":
                rows.append(measure(size, obs, args.steps, args.batch, args.length, fast=True, model_bf16=True))
    meta = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "batch": [args.batch, args.length],
        "numpy": np.__version__,
    }
    print(json.dumps({"meta": meta, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
