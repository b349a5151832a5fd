"""The README's Python example, run against a tiny trained run."""

import torch

import worldmodels as wm
from tests.conftest import tiny_config


def test_readme_python_example(tmp_path):
    wm.Trainer(tiny_config(tmp_path, env="CartPole-v1", steps=200), progress=False).train()
    run = wm.load_run(tmp_path / "run")
    model = run.world_model
    episode = wm.run_episode(run.make_env(), run.agent, seed=0)
    steps = {k: torch.as_tensor(v)[None] for k, v in episode.steps.items()}
    prev_action = torch.cat([torch.zeros_like(steps["action"][:, :1]), steps["action"][:, :-1]], 1)
    obs = {k: steps[k][:, :5] for k in model.obs_spec.keys()}
    with torch.no_grad():
        posts = model.observe(None, obs, prev_action[:, :5], steps["is_first"][:, :5])
        start = posts.map(lambda x: x[:, -1])
        horizon = min(50, len(episode) - 5)
        states, _ = model.imagine(start, steps["action"][:, 4 : 4 + horizon])
        pred = model.predict(states.feat())
    assert pred["vector"].shape == (1, horizon, 4) and pred["reward"].shape == (1, horizon)
    # A policy works as well as an action tensor.
    with torch.no_grad():
        states, actions = model.imagine(start, lambda s: run.agent.actor.act(s.feat()), 7)
    assert actions.shape == (1, 7, 2)


def test_readme_planner_example():
    """The README's planner snippet runs as written and does what its comments say."""
    import re
    from pathlib import Path

    readme = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "from worldmodels.planning" in b)
    scope: dict = {}
    exec(code, scope)
    assert (scope["plan"].actions - scope["target"]).abs().max() < 0.05
    assert scope["first"].shape == (2,)


def test_configs_written_before_planning_agents_still_load():
    """Runs from before the agent choice stored the actor-critic block under "agent"."""
    cfg = wm.Config.from_dict({"env": "Pendulum-v1", "agent": {"horizon": 7, "actor_lr": 3e-5}})
    assert cfg.agent == "dreamer" and cfg.dreamer.horizon == 7 and cfg.dreamer.actor_lr == 3e-5
