"""How closely the world model encodes each state dimension, with and without --model.vector-norm.

    python benchmarks/vector_norm.py runs/bench/cartpole-v1-v3/seed-0 --updates 1500

Loads a run's replay, holds its newest ``--held-out`` steps out, trains the run's world model
architecture from scratch on the rest (world-model updates only, LaProp + AGC as Dreamer takes
them) once with plain symlog vectors and once standardised per dimension, and prints JSON: for
every state dimension the RMSE of the posterior's reconstruction on the held-out steps (the
first 5 of each window skipped, for the filter to settle), in the dimension's own units and as a
fraction of its spread. The same batches in the same order feed both models.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from worldmodels.data.replay import ReplayStore
from worldmodels.models.world_model import make_rssm
from worldmodels.nn.optim import clip_by_agc_, make_optimizer
from worldmodels.run.runs import probe_specs, read_config
from worldmodels.specs import VECTOR


def windows(steps: dict[str, np.ndarray], starts: np.ndarray, length: int) -> dict[str, torch.Tensor]:
    idx = starts[:, None] + np.arange(length)[None]
    return {k: torch.as_tensor(v[idx]) for k, v in steps.items() if k != "is_last"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--updates", type=int, default=1500)
    p.add_argument("--held-out", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = read_config(args.run)
    obs_spec, action_spec = probe_specs(cfg)
    store = ReplayStore(args.run / "replay", capacity=cfg.capacity, streams=cfg.envs, chunk=cfg.chunk)
    steps = next(store.stream_steps())
    n, length = len(steps["reward"]), cfg.seq_len
    split = n - args.held_out
    if split < 4 * length:
        raise SystemExit(f"{args.run} holds {n} steps; need more than {args.held_out + 4 * length}")
    spread = steps[VECTOR][split:].std(0)
    rng = np.random.default_rng(0)
    train_starts = [rng.integers(0, split - length, size=cfg.batch) for _ in range(args.updates)]
    test_starts = np.arange(split, n - length, length // 2)
    out = {"run": str(args.run), "steps": n, "held_out": args.held_out, "updates": args.updates, "variants": {}}
    for norm in (False, True):
        torch.manual_seed(0)
        model_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, vector_norm=norm))
        wm = make_rssm(obs_spec, action_spec, model_cfg)
        opt = make_optimizer("laprop", wm.parameters(), lr=cfg.model.lr, eps=1e-20, warmup=100)
        scales = wm.loss_scales
        for starts in train_starts:
            wm.train()
            terms, _, _ = wm.loss(windows(steps, starts, length))
            loss = sum(scales[k] * v.mean() for k, v in terms.items())
            opt.zero_grad()
            loss.backward()
            clip_by_agc_(list(wm.parameters()), 0.3)
            opt.step()
        wm.eval()
        with torch.no_grad():
            batch = windows(steps, test_starts, length)
            obs = {k: batch[k] for k in obs_spec.keys()}
            posts = wm.observe(None, obs, wm.prev_actions(batch["action"].float()), batch["is_first"])
            recon = wm.predict(wm.features(posts))[VECTOR][:, 5:].numpy()
        err = recon - batch[VECTOR][:, 5:].numpy()
        rmse = np.sqrt((err**2).reshape(-1, err.shape[-1]).mean(0))
        out["variants"]["vector_norm" if norm else "symlog"] = {
            "rmse": rmse.tolist(),
            "rmse_over_spread": (rmse / spread).tolist(),
        }
    out["held_out_spread"] = spread.tolist()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
