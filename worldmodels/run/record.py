"""Recording a dataset with any policy: ``wm data collect``.

The policy is ``random`` (uniform actions), ``held:K`` (each random action held for 1..K steps,
which covers more of the state space than a per-step random walk), or a trained run's folder
(its agent acts; ``sample=True`` samples its actions instead of taking the most likely). Episode
``i`` is reset with a seed of its own (envs/seeding.py, the dataset purpose), none of them a
training or evaluation start, so a dataset recorded with one ``seed`` is the same every time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import Config
from ..data.datasets import require_episodes
from ..data.episodes import Dataset
from ..envs.seeding import dataset_seeds
from ..errors import DatasetError
from .collect import RandomAgent, run_episode
from .datasets import is_run_folder
from .runs import env_kwargs, load_run, make_single_env


@dataclass
class Recording:
    """What to record: an env (as a run's config describes one) and a policy."""

    env: str = ""
    policy: str = "random"
    episodes: int = 20
    seed: int = 0
    sample: bool = False  # a run's policy: sample actions rather than take the most likely
    overrides: dict = field(default_factory=dict)  # config fields: obs, image_size, randomize, ...


def _random_agent(spec: str, action_spec, seed: int) -> RandomAgent:
    """The agent of a ``random`` or ``held:K`` policy spec."""
    if spec == "random":
        return RandomAgent(action_spec, seed)
    if spec.startswith("held:"):
        try:
            hold = int(spec.split(":", 1)[1])
        except ValueError:
            hold = 0
        if hold < 1:
            raise DatasetError(f"--policy {spec}: held:K holds each random action for 1..K steps; K is an integer >= 1")
        return RandomAgent(action_spec, seed, hold)
    raise DatasetError(
        f"--policy {spec!r} is neither random, held:K nor a run folder (no {Path(spec) / 'config.json'}); "
        "give one of those"
    )


def record_dataset(rec: Recording, base: Config | None = None, echo=None) -> Dataset:
    """Play ``rec.episodes`` episodes and return them as a dataset. The env is set up as ``base``
    (a config; default: the library's defaults) with ``rec.overrides`` on top; with a run as the
    policy, the run's own config is the base."""
    if rec.episodes < 1:
        raise DatasetError(f"--episodes must be at least 1, got {rec.episodes}")
    agent, text = None, rec.policy
    if is_run_folder(rec.policy):
        run = load_run(rec.policy)
        agent, base = run.agent, run.config
        text = f"{Path(rec.policy).name} ({run.config.agent}, {int(run.counters.get('env_steps', 0))} env steps, "
        text += "sampled)" if rec.sample else "greedy)"
    cfg = replace(base or Config(), **{k: v for k, v in rec.overrides.items() if k != "image_size"})
    if "image_size" in rec.overrides:
        cfg = replace(cfg, model=replace(cfg.model, image_size=rec.overrides["image_size"]))
    if rec.env:
        cfg = replace(cfg, env=rec.env)
    env = make_single_env(cfg)
    try:
        if agent is None:
            agent = _random_agent(rec.policy, env.action_spec, rec.seed)
        elif (agent.obs_spec, agent.action_spec) != (env.obs_spec, env.action_spec):
            raise DatasetError(
                f"the run {rec.policy} sees {agent.obs_spec} and acts with {agent.action_spec}, but {cfg.env} gives "
                f"{env.obs_spec} and {env.action_spec}: record with the run's own env settings"
            )
        episodes = []
        for i, seed in enumerate(dataset_seeds(rec.seed, rec.episodes)):
            ep = run_episode(env, agent, seed=seed, mode=not rec.sample)
            episodes.append(ep.steps)
            if echo is not None:
                echo(f"episode {i + 1}/{rec.episodes}: return {ep.ret:.1f}, {len(ep) - 1} steps")
        observation_space, action_space = env.observation_space, env.env.action_space
        domain_names = list(env.domain_names)
    finally:
        env.close()
    meta = {
        "policy": text,
        "seed": rec.seed,
        "obs_mode": cfg.obs,
        "image_size": cfg.model.image_size,
        "action_repeat": cfg.action_repeat,
        "domain_names": domain_names,
        **{k: v for k, v in env_kwargs(cfg).items() if k in ("randomize", "disturb") and v},
    }
    dataset = Dataset(episodes, observation_space, action_space, env_id=cfg.env, source="recorded", meta=meta)
    return require_episodes(dataset)
