"""Imagined steps per second of each latent family: batch N starts, horizon H, under a policy.

    python benchmarks/imagination.py --batch 1024 --horizon 15 --contexts 16 64 256 --json imagination.json

What Dreamer's actor-critic update does each step (``imagine_features`` with the actor's
sampling, no gradients), timed for the RSSM at its size preset and the transformer at the same
preset for each attention window (``--contexts``): the RSSM's cost does not depend on how far
back it remembers, the transformer's attention grows with its window. Families are timed in
alternating rounds and the median is kept, since these machines are shared.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from json_out import emit  # noqa: E402

from worldmodels.config import Config, resolve  # noqa: E402
from worldmodels.registry import FAMILIES  # noqa: E402
from worldmodels.specs import ActionSpec, ObsSpec  # noqa: E402


def build(family: str, size: str, context: int, device: torch.device):
    cfg: Config = resolve({"size": size, "family": family})
    cfg = dataclasses.replace(cfg, transformer=dataclasses.replace(cfg.transformer, context=context))
    return FAMILIES.get(family)(ObsSpec(vector=8), ActionSpec(2, False), cfg).to(device).eval()


def starts(model, batch: int, device: torch.device):
    """Filtered states of one replayed-like sequence per start, the last step of each."""
    T = getattr(model, "context", 8)
    obs = {"vector": torch.randn(batch, T, 8, device=device)}
    is_first = torch.zeros(batch, T, dtype=torch.bool, device=device)
    is_first[:, 0] = True
    with torch.no_grad():
        posts = model.observe(None, obs, torch.zeros(batch, T, 2, device=device), is_first)
    return posts.map(lambda x: x[:, -1].contiguous())


def time_rollout(model, start, horizon: int, repeats: int) -> float:
    def policy(feat):
        lead = feat.dense.shape[0] if hasattr(feat, "dense") else feat.shape[0]
        return torch.rand(lead, 2, device=model.device) * 2 - 1

    with torch.no_grad():
        model.imagine_features(start, policy, horizon)  # warm-up
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        for _ in range(repeats):
            model.imagine_features(start, policy, horizon)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - began) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--contexts", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--size", default="XXS")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [("rssm", None)] + [("transformer", c) for c in args.contexts]
    models = {row: build(row[0], args.size, row[1] or 16, device) for row in rows}
    begun = {row: starts(models[row], args.batch, device) for row in rows}
    seconds: dict = {row: [] for row in rows}
    for _ in range(args.rounds):
        for row in rows:
            seconds[row].append(time_rollout(models[row], begun[row], args.horizon, args.repeats))
    results = []
    for row in rows:
        median = statistics.median(seconds[row])
        results.append(
            {
                "family": row[0],
                "context": row[1],
                "describe": models[row].describe(),
                "seconds_per_rollout": median,
                "imagined_steps_per_s": args.batch * args.horizon / median,
            }
        )
    base = results[0]["imagined_steps_per_s"]
    for r in results:
        r["vs_rssm"] = r["imagined_steps_per_s"] / base
    emit(
        {
            "batch": args.batch,
            "horizon": args.horizon,
            "size": args.size,
            "device": str(device),
            "threads": args.threads,
            "results": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
