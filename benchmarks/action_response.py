"""How strongly a trained model's predictions respond to actions, against the real env: from
recorded states, ``--horizon`` steps open loop under the recorded actions and under their
negation; the mean absolute difference of each observation dimension at the end, in the model
and in the env started from the same state. A model that learned from one policy's data can
predict the next state from the state alone and all but ignore the action: then an actor
trained in its imagination is told that any action is as safe as the data's.

    python benchmarks/action_response.py runs/bench/offline-ip-dreamer/none \\
        --dataset runs/bench/offline-ip-dreamer/dataset.h5 --json docs/action_response_offline.json

For MuJoCo envs whose observation is ``qpos ++ qvel`` (InvertedPendulum-v5), so that a recorded
observation sets the env's state. Prints JSON.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from json_out import emit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--dataset", required=True, help="recorded episodes whose states and actions to start from")
    parser.add_argument("--context", type=int, default=5)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import gymnasium as gym

    from worldmodels.data.datasets import load_dataset
    from worldmodels.envs.spaces import to_env_actions
    from worldmodels.run.runs import load_run

    run = load_run(args.run)
    data = load_dataset(args.dataset)
    env = gym.make(run.config.env)
    env.reset(seed=0)
    nq = env.unwrapped.model.nq
    model_diff, real_diff = [], []
    for ep in data.episodes[: args.episodes]:
        if len(ep["reward"]) < args.context + args.horizon + 1:
            continue
        last, model_end, real_end = args.context - 1, [], []
        for sign in (1.0, -1.0):
            steps = {k: v.copy() for k, v in ep.items()}
            steps["action"][last:] *= sign
            torch.manual_seed(0)
            with torch.no_grad():
                model_end.append(run.world_model.open_loop(steps, args.context, args.horizon)["vector"][-1])
            state = ep["vector"][last]
            env.unwrapped.set_state(state[:nq].astype(np.float64), state[nq:].astype(np.float64))
            for t in range(last, last + args.horizon):
                obs, *_ = env.step(to_env_actions(env.action_space, sign * ep["action"][t : t + 1])[0])
            real_end.append(obs)
        model_diff.append(np.abs(model_end[0] - model_end[1]))
        real_diff.append(np.abs(real_end[0] - real_end[1]))
    env.close()
    model, real = np.mean(model_diff, 0), np.mean(real_diff, 0)
    result = {
        "run": args.run,
        "dataset": args.dataset,
        "horizon": args.horizon,
        "episodes": len(model_diff),
        "model": model.round(4).tolist(),
        "real": real.round(4).tolist(),
        "model_over_real": (model / real).round(3).tolist(),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
