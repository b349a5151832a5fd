"""``wm plan``: act by planning with a trained model, and show what the model is unsure of.

Works on every run: PETS and latent-MPC runs plan with their own planner (or ``--planner``);
a Dreamer run plans in its world model with its critic as the bootstrap (latent MPC), so a
user can compare "act with the policy" against "act by planning" on the same model.

Writes ``RUN/plan/plan.json``: returns, decision latency and, for an ensemble, its disagreement
along every episode; ``uncertainty.png``: the ensemble's open-loop prediction (mean ± std)
against the real trajectory; ``plan.mp4`` with ``--video``.
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np

from ..config import check_ranges
from ..envs.seeding import held_out_seeds
from ..errors import RunConfigError
from ..registry import agent_spec
from ..run.collect import run_episode
from ..run.runs import LoadedRun, build_agent, probe_specs
from ..specs import VECTOR
from . import plots
from .video import write_video


class _Timed:
    """Wraps an agent's ``act`` to record the wall time of every decision."""

    def __init__(self, agent):
        self.agent, self.times = agent, []
        self.action_spec = agent.action_spec

    def act(self, *args, **kwargs):
        start = time.perf_counter()
        out = self.agent.act(*args, **kwargs)
        self.times.append(time.perf_counter() - start)
        return out


def planning_agent(run: LoadedRun, planner: str | None = None, plan: dict | None = None):
    """The run's agent, set up to act by planning; ``planner`` and ``plan`` (PlanConfig fields)
    override the stored settings."""
    cfg = run.config
    spec = agent_spec(cfg.agent)
    if spec.plans_with is None:
        raise RunConfigError(
            f"{run.run_dir} is a {cfg.agent} run: {spec.no_plan or 'it does not plan'}. Use `wm eval {run.run_dir}` "
            f"to play it, `wm dream {run.run_dir}` to see its model's predictions"
        )
    if planner is not None:
        cfg = dataclasses.replace(cfg, planner=planner)
    if plan:
        cfg = dataclasses.replace(cfg, plan=dataclasses.replace(cfg.plan, **plan))
    check_ranges(cfg)  # the --plan.* overrides, as `wm train` checks them
    if spec.plans_with != cfg.agent:  # e.g. a Dreamer run plans with its model as latent MPC
        cfg = dataclasses.replace(cfg, agent=spec.plans_with)
    elif planner is None and not plan:
        return run.agent
    agent = build_agent(cfg, *probe_specs(cfg), device=run.agent.device)
    agent.load_state_dict(run.agent.state_dict())
    agent.eval()
    return agent


def plan_episodes(
    run: LoadedRun,
    *,
    episodes: int = 5,
    video: bool = False,
    seed: int = 0,
    planner: str | None = None,
    plan: dict | None = None,
) -> dict:
    """Play ``episodes`` acting by planning; ``plan`` overrides PlanConfig fields (e.g. horizon)."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    agent = planning_agent(run, planner, plan)
    timed = _Timed(agent)
    out_dir = run.run_dir / "plan"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = run.make_env()
    eps, frames = [], []
    try:
        for i, s in enumerate(held_out_seeds(1, seed, episodes)):
            ep = run_episode(env, timed, seed=s, render=video and i == 0)
            eps.append(ep)
            frames += ep.frames
    finally:
        env.close()
    returns = [ep.ret for ep in eps]
    ms = 1000 * np.array(timed.times)
    result = {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "episodes": episodes,
        "returns": [float(r) for r in returns],
        "planner": type(getattr(agent, "planner", None)).__name__,
        "plan": {k: v for k, v in dataclasses.asdict(run.config.plan).items()} | (plan or {}),
        "ms_per_action": {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90))},
        "env_steps": int(run.counters.get("env_steps", 0)),
    }
    files = []
    model = agent.world_model
    doubt = [model.uncertainty(ep.steps) for ep in eps]
    if all(d is not None for d in doubt):  # a family that can say how unsure it is (an ensemble)
        result["disagreement"] = [d.tolist() for d in doubt]
        result["mean_disagreement"] = float(np.mean([np.mean(d) for d in doubt]))
        if VECTOR in model.obs_spec.keys():
            files.append(str(_uncertainty_plot(model, eps[0], run, out_dir)))
    (out_dir / "plan.json").write_text(json.dumps(result, indent=2))
    if video and frames:
        files.append(str(write_video(out_dir / "plan.mp4", frames, fps=30)))
    result["files"] = [str(out_dir / "plan.json"), *files]
    return result


def _uncertainty_plot(model, ep, run: LoadedRun, out_dir, context: int = 1, horizon: int = 50):
    """The model's open-loop prediction (mean ± its spread) against the real trajectory."""
    pred = model.open_loop(ep.steps, context, horizon)
    T = len(pred[VECTOR])
    title = f"{run.config.env}: open loop from step {context - 1}"
    return plots.trajectories(
        ep.steps[VECTOR][:T], pred[VECTOR], context, out_dir / "uncertainty.png", title, pred.get("std")
    )
