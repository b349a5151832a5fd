"""``wm eval``: play episodes with the trained policy; the returns and the protocol they were
measured under go to ``RUN/eval.json``, optionally with a video of the first episode."""

from __future__ import annotations

import json

from ..config import has_cost_limit
from ..envs.seeding import report_seeds
from ..run.collect import cost_summary, play_episodes, return_summary
from ..run.runs import LoadedRun
from .video import write_video


def check_episodes(episodes: int, seed: int) -> None:
    """``wm eval``'s ``--episodes`` (at least one) and ``--seed`` (not negative)."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1 (the episodes to average over), got {episodes}")
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")


def evaluate(run: LoadedRun, *, episodes: int = 10, video: bool = False, seed: int = 0, mode: bool = True) -> dict:
    """Writes ``RUN/eval.json`` (and ``RUN/eval.mp4`` with ``video``) and returns the summary.

    Episode ``i`` starts from the reset seed ``report_seeds(run seed, seed, episodes)[i]``: start
    states no training episode and no evaluation during training used (envs/seeding.py)."""
    check_episodes(episodes, seed)
    seeds = report_seeds(run.config.seed, seed, episodes)
    env = run.make_env()
    try:
        played = play_episodes(env, run.agent, seeds, mode=mode, render_first=video)
    finally:
        env.close()
    returns = [ep.ret for ep in played]
    stats = return_summary(returns)
    result = {
        "mean_return": stats["mean"],
        "std_return": stats["std"],
        "median_return": stats["median"],
        "min_return": stats["min"],
        "max_return": stats["max"],
        "episodes": episodes,
        "env_steps": int(run.counters.get("env_steps", 0)),
        "returns": returns,
        "lengths": [len(ep) - 1 for ep in played],  # steps taken; an episode's rows include its first observation
        **costs(played, run.config),
        "protocol": {
            "policy": "greedy" if mode else "sampled",
            "start_states": "fresh: reset seeds of wm eval's own, disjoint from training and from in-training "
            "evaluations (worldmodels.envs.seeding.report_seeds)",
            "run_seed": run.config.seed,
            "eval_seed": seed,
            "reset_seeds": seeds,
        },
    }
    (run.run_dir / "eval.json").write_text(json.dumps(result, indent=2))
    frames = played[0].frames if video else []
    if frames:
        result["video"] = str(write_video(run.run_dir / "eval.mp4", frames, fps=30))
    return result


def costs(played, cfg) -> dict:
    """Where the env charges costs: their mean and spread over the episodes, each episode's cost,
    the limit, and (with one) the fraction of episodes that paid more than it."""
    if played[0].cost is None:
        return {}
    limit = cfg.cost_limit if has_cost_limit(cfg) else None
    return {**cost_summary([ep.cost for ep in played], limit), "costs": [ep.cost for ep in played], "cost_limit": limit}
