"""Dreamer train steps per second on 1 process against N data-parallel processes, printed as JSON.

    python benchmarks/ddp_scaling.py                          # XXS, CartPole-shaped batch 16 x 64, 1 vs 2 ranks
    python benchmarks/ddp_scaling.py --size S --ranks 2 --rounds 5 --json docs/ddp_scaling.json

Each setting trains the same global batch: one process with all of it (on ``--ranks`` threads,
and on one thread), and ``--ranks`` gloo processes of one thread each with ``batch / ranks``
rows (the gradient all-reduce and the statistics' reductions included, as in ``torchrun -m
worldmodels train``). Settings are timed in interleaved rounds so that a shared machine's noise
falls on all of them alike; compare them as ratios. The processes start once per round and
warm up before they are timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from json_out import emit

from worldmodels.agents.dreamer import make_dreamer
from worldmodels.config import DreamerConfig, ModelConfig, apply_size
from worldmodels.specs import ActionSpec, ObsSpec

OBS, ACTION = ObsSpec(vector=4), ActionSpec(2, discrete=True)


def batch(rows: int, length: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    actions = torch.randint(0, ACTION.dim, (rows, length), generator=g)
    no = torch.zeros(rows, length, dtype=torch.bool)
    return {
        "vector": torch.randn(rows, length, OBS.vector, generator=g),
        "action": torch.nn.functional.one_hot(actions, ACTION.dim).float(),
        "reward": torch.ones(rows, length),
        "is_first": no.clone().index_fill_(1, torch.tensor([0]), True),
        "is_terminal": no,
        "is_last": no,
    }


def seconds_per_step(size: str, rows: int, length: int, steps: int, warmup: int) -> float:
    torch.manual_seed(0)
    agent = make_dreamer(OBS, ACTION, apply_size(ModelConfig(), size), DreamerConfig())
    data = batch(rows, length, seed=dist.get_rank() if dist.is_initialized() else 0)
    for _ in range(warmup):
        agent.train_step(data)
    if dist.is_initialized():
        dist.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        agent.train_step(data)
    return (time.perf_counter() - start) / steps


def _rank(rank: int, world: int, port: int, args: argparse.Namespace, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        took = seconds_per_step(args.size, args.batch // world, args.length, args.steps, args.warmup)
        Path(out, f"rank{rank}.json").write_text(json.dumps(took))
    finally:
        dist.destroy_process_group()


def distributed_seconds(world: int, args: argparse.Namespace) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_rank, args=(world, port, args, out), nprocs=world, join=True)
        return max(json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(world))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="XXS")
    p.add_argument("--batch", type=int, default=16, help="global batch rows")
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5, help="timed train steps per setting per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()
    if args.batch % args.ranks:
        sys.exit(f"--batch {args.batch} must divide among --ranks {args.ranks}")
    names = (f"1 process, {args.ranks} threads", "1 process, 1 thread", f"{args.ranks} ranks, 1 thread each")
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for threads, name in ((args.ranks, names[0]), (1, names[1])):
            torch.set_num_threads(threads)
            times[name].append(seconds_per_step(args.size, args.batch, args.length, args.steps, args.warmup))
        times[names[2]].append(distributed_seconds(args.ranks, args))
    median = {n: statistics.median(t) for n, t in times.items()}
    result = {
        "size": args.size,
        "batch": [args.batch, args.length],
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "seconds_per_step": median,
        "all_rounds": times,
        f"speedup of {args.ranks} ranks over 1 process, {args.ranks} threads": median[names[0]] / median[names[2]],
        f"speedup of {args.ranks} ranks over 1 process, 1 thread": median[names[1]] / median[names[2]],
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
