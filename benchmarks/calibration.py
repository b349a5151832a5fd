"""Is the ensemble's uncertainty honest? Held-out NLL, interval coverage, and disagreement off the data.

    python benchmarks/calibration.py runs/bench-pets-pendulum --json docs/pets_calibration.json

Takes the transitions a PETS run collected, holds out every fifth episode, and fits a fresh
ensemble of the run's configuration on the rest (so no held-out transition was trained on).
Reports, on held-out transitions: the Gaussian NLL per dimension (nats), RMSE, and how often the
true next state falls inside the predicted ±2σ interval (95% when calibrated). Then compares
the members' disagreement on held-out states with states outside the training data: the same
states with the angular velocity (last dimension) pushed beyond the largest value seen, and
states off the (cos, sin) unit circle.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from worldmodels.data.replay import ReplayStore
from worldmodels.models.ensemble import GaussianEnsemble
from worldmodels.run.runs import read_config
from worldmodels.specs import VECTOR


def transitions(run: Path) -> list[dict[str, torch.Tensor]]:
    """The run's replay as a list of episodes of transitions (obs, action, reward, next_obs)."""
    store = ReplayStore(run / "replay", capacity=10**7, streams=1)
    data = {k: v[: store.rings[0].size] for k, v in store.rings[0].data.items()}
    starts = list(np.flatnonzero(data["is_first"])) + [len(data["reward"])]
    episodes = []
    for a, b in zip(starts[:-1], starts[1:]):
        obs = torch.as_tensor(data[VECTOR][a:b]).float()
        if len(obs) < 2:
            continue
        episodes.append(
            {
                "obs": obs[:-1],
                "action": torch.as_tensor(data["action"][a : b - 1]).float(),
                "reward": torch.as_tensor(data["reward"][a + 1 : b]).float(),
                "next_obs": obs[1:],
                "terminal": torch.as_tensor(data["is_terminal"][a + 1 : b]),
            }
        )
    return episodes


def cat(eps: list[dict]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([e[k] for e in eps]) for k in eps[0]}


def fit(train: dict, cfg, steps: int, seed: int) -> GaussianEnsemble:
    torch.manual_seed(seed)
    e = cfg.ensemble
    obs_dim, act_dim = train["obs"].shape[1], train["action"].shape[1]
    ens = GaussianEnsemble(obs_dim, act_dim, members=e.members, units=e.units, layers=e.layers)
    ens.inputs.update(torch.cat([train["obs"], train["action"]], -1))
    ens.targets.update(torch.cat([train["next_obs"] - train["obs"], train["reward"][:, None]], -1))
    opt = torch.optim.AdamW(ens.parameters(), lr=e.lr, weight_decay=e.weight_decay)
    n, k = len(train["obs"]), e.members
    for _ in range(steps):
        idx = torch.randint(0, n, (k, e.batch))  # bootstrap: each member its own draws
        mask = torch.ones(k, e.batch, dtype=torch.bool)
        loss, _ = ens.loss(*(train[x][idx] for x in ("obs", "action", "reward", "next_obs", "terminal")), mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return ens


@torch.no_grad()
def scores(ens: GaussianEnsemble, data: dict) -> dict[str, float]:
    mean, var = ens.predict_members(data["obs"], data["action"])  # (K, B, D)
    # The ensemble's predictive distribution: a mixture of the members, moment-matched.
    mu = mean.mean(0)
    total_var = var.mean(0) + mean.var(0, unbiased=False)
    err = data["next_obs"] - mu
    nll = 0.5 * (err**2 / total_var + total_var.log() + math.log(2 * math.pi))
    inside = (err.abs() <= 2 * total_var.sqrt()).float()
    return {
        "nll_per_dim": float(nll.mean()),
        "rmse": float(err.pow(2).mean().sqrt()),
        "coverage_2sigma": float(inside.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--steps", type=int, default=3000, help="gradient steps of the fresh ensemble")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cfg = read_config(args.run)
    eps = transitions(args.run)
    held, train = cat(eps[::5]), cat([e for i, e in enumerate(eps) if i % 5])
    ens = fit(train, cfg, args.steps, args.seed)
    inside = ens.disagreement(held["obs"], held["action"])
    fast = held["obs"].clone()
    fast[:, -1] = torch.sign(fast[:, -1] + 1e-6) * (train["obs"][:, -1].abs().max() + 4.0)
    off_circle = held["obs"].clone()
    off_circle[:, :-1] *= 2.0
    out = {
        "run": str(args.run),
        "env": cfg.env,
        "train_transitions": len(train["obs"]),
        "held_out_transitions": len(held["obs"]),
        "train": scores(ens, train),
        "held_out": scores(ens, held),
        "disagreement": {
            "held_out": float(inside.mean()),
            "velocity_beyond_data": float(ens.disagreement(fast, held["action"]).mean()),
            "off_unit_circle": float(ens.disagreement(off_circle, held["action"]).mean()),
        },
    }
    d = out["disagreement"]
    d["ratio_velocity"] = d["velocity_beyond_data"] / d["held_out"]
    d["ratio_off_circle"] = d["off_unit_circle"] / d["held_out"]
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
