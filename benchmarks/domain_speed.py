"""What domain randomisation and disturbances cost in env steps per second.

    python benchmarks/domain_speed.py --env InvertedPendulum-v5 --steps 20000 --json docs/domain_speed.json

Steps the same env (random actions, through ``make_env``) plain and under each setting below,
interleaved over ``--rounds`` so that a machine that slows down mid-run slows all settings
alike; prints JSON with steps/s per setting (the median over rounds) and its ratio to plain.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from worldmodels.envs.make import make_env

SETTINGS = {
    "InvertedPendulum-v5": {
        "randomize": {"randomize": "body_mass[pole]=0.5:2,dof_damping=0.5:2"},
        "randomize all": {"randomize": "body_mass=0.5:2,geom_friction=0.5:2,dof_damping=0.5:2,actuator_gear=0.8:1.2"},
        "disturb": {"disturb": "push=0.5@0.05,action_noise=0.1,obs_noise=0.01,delay=1"},
        "both": {"randomize": "body_mass[pole]=0.5:2,dof_damping=0.5:2", "disturb": "push=0.5@0.05,obs_noise=0.01"},
    },
    "CartPole-v1": {
        "randomize": {"randomize": "masspole=0.5:2,length=0.5:2"},
        "disturb": {"disturb": "push=0.5@0.05,action_noise=0.1,obs_noise=0.01,delay=1"},
        "visual (pixels)": {"obs_mode": "pixels", "randomize": "visual.hue=-0.5:0.5,visual.brightness=0.6:1.4"},
        "plain (pixels)": {"obs_mode": "pixels"},
    },
}


def steps_per_second(env_id: str, steps: int, seed: int, **kwargs) -> float:
    env = make_env(env_id, **kwargs)
    rng = np.random.default_rng(seed)
    spec = env.action_spec
    env.reset(seed=seed)
    start = time.perf_counter()
    for i in range(steps):
        if spec.discrete:
            action = np.eye(spec.dim, dtype=np.float32)[rng.integers(spec.dim)]
        else:
            action = rng.uniform(-1, 1, spec.dim).astype(np.float32)
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset(seed=seed + i + 1)
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="InvertedPendulum-v5", choices=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per setting and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    settings = {"plain": {}, **SETTINGS[args.env]}
    rates: dict[str, list[float]] = {name: [] for name in settings}
    for r in range(args.rounds):
        for name, kwargs in settings.items():
            rates[name].append(steps_per_second(args.env, args.steps, seed=r, **kwargs))
    median = {name: statistics.median(v) for name, v in rates.items()}
    base = {name: median["plain (pixels)" if "pixels" in name else "plain"] for name in settings}
    out = {
        "env": args.env,
        "steps": args.steps,
        "rounds": args.rounds,
        "steps_per_s": {k: round(v, 1) for k, v in median.items()},
        "ratio_to_plain": {k: round(median[k] / base[k], 3) for k in settings},
    }
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
