"""``wm eval``: play episodes with the trained policy; mean ± std return, optional video."""

from __future__ import annotations

import json

import numpy as np

from ..run.collect import run_episode
from ..run.runs import LoadedRun
from .video import write_video


def evaluate(run: LoadedRun, *, episodes: int = 10, video: bool = False, seed: int = 0, mode: bool = True) -> dict:
    """Writes ``RUN/eval.json`` (and ``RUN/eval.mp4`` with ``video``) and returns the summary."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    env = run.make_env()
    returns, frames = [], []
    try:
        for i in range(episodes):
            ep = run_episode(env, run.agent, seed=100_000 + seed * 1000 + i, mode=mode, render=video and i == 0)
            returns.append(ep.ret)
            frames += ep.frames
    finally:
        env.close()
    result = {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "episodes": episodes,
        "env_steps": int(run.counters.get("env_steps", 0)),
        "returns": [float(r) for r in returns],
    }
    (run.run_dir / "eval.json").write_text(json.dumps(result, indent=2))
    if video and frames:
        result["video"] = str(write_video(run.run_dir / "eval.mp4", frames, fps=30))
    return result
