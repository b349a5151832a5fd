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
import torch

from ..agents.mpc import make_mpc
from ..agents.pets import PETS
from ..errors import RunConfigError
from ..models.ensemble import GaussianEnsemble
from ..specs import VECTOR
from . import plots
from .collect import run_episode
from .dream import ensemble_open_loop
from .runs import LoadedRun, build_agent, probe_specs
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
    if cfg.agent == "vmc":
        raise RunConfigError(
            f"{run.run_dir} is a V/M/C run: its controller acts without planning. Use `wm eval {run.run_dir}` "
            f"to play it, `wm dream {run.run_dir}` to see its model's predictions"
        )
    if planner is not None:
        cfg = dataclasses.replace(cfg, planner=planner)
    if plan:
        cfg = dataclasses.replace(cfg, plan=dataclasses.replace(cfg.plan, **plan))
    if cfg.agent == "dreamer":
        cfg = dataclasses.replace(cfg, agent="mpc")
        agent = make_mpc(*probe_specs(cfg), cfg)
    elif planner is not None or plan:
        agent = build_agent(cfg, *probe_specs(cfg))
    else:
        return run.agent
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
        for i in range(episodes):
            ep = run_episode(env, timed, seed=200_000 + seed * 1000 + i, render=video and i == 0)
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
    if isinstance(agent, PETS):
        result["disagreement"] = [_disagreement(agent.ensemble, ep) for ep in eps]
        result["mean_disagreement"] = float(np.mean([np.mean(d) for d in result["disagreement"]]))
        files.append(str(_uncertainty_plot(agent.ensemble, eps[0], run, out_dir)))
    (out_dir / "plan.json").write_text(json.dumps(result, indent=2))
    if video and frames:
        files.append(str(write_video(out_dir / "plan.mp4", frames, fps=30)))
    result["files"] = [str(out_dir / "plan.json"), *files]
    return result


def _disagreement(ensemble: GaussianEnsemble, ep) -> list[float]:
    """One-step disagreement of the members at every real (state, action) of an episode."""
    obs = torch.as_tensor(ep.steps[VECTOR][:-1]).float()
    act = torch.as_tensor(ep.steps["action"][:-1]).float()
    return ensemble.disagreement(obs, act).tolist()


def _uncertainty_plot(ensemble: GaussianEnsemble, ep, run: LoadedRun, out_dir, context: int = 1, horizon: int = 50):
    pred = ensemble_open_loop(ensemble, ep, context, horizon)
    T = len(pred[VECTOR])
    title = f"{run.config.env}: ensemble open loop from step {context - 1}"
    return plots.trajectories(
        ep.steps[VECTOR][:T], pred[VECTOR], context, out_dir / "uncertainty.png", title, pred["std"]
    )
