"""Run folders: the resolved config, building the agent, and loading a trained run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..agents.base import Agent
from ..config import Config, resolve_device
from ..config import env_kwargs as parse_env_kwargs
from ..envs.adapter import ModelEnv
from ..envs.make import make_env
from ..errors import RunConfigError
from ..registry import agent_spec, load_target
from ..specs import ActionSpec, ObsSpec
from . import checkpoint

CONFIG = "config.json"


def read_config(run_dir: Path) -> Config:
    path = run_dir / CONFIG
    if not path.exists():
        raise RunConfigError(
            f"{run_dir} holds no run (no {CONFIG}). Start one with `wm train --logdir {run_dir}`, "
            "or point at the folder a run was started in."
        )
    try:
        return Config.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise RunConfigError(f"{path} is not a valid run config: {err}") from err


def write_config(run_dir: Path, cfg: Config) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (CONFIG + ".tmp")
    tmp.write_text(cfg.to_json())
    tmp.replace(run_dir / CONFIG)


def env_kwargs(cfg: Config) -> dict:
    return dict(
        obs_mode=cfg.obs,
        image_size=cfg.model.image_size,
        action_repeat=cfg.action_repeat,
        max_episode_steps=cfg.max_episode_steps,
        env_kwargs=parse_env_kwargs(cfg),
    )


def make_single_env(cfg: Config) -> ModelEnv:
    return make_env(cfg.env, **env_kwargs(cfg))


def probe_specs(cfg: Config) -> tuple[ObsSpec, ActionSpec]:
    env = make_single_env(cfg)
    try:
        return env.obs_spec, env.action_spec
    finally:
        env.close()


def build_agent(cfg: Config, obs_spec: ObsSpec, action_spec: ActionSpec, device: torch.device | None = None) -> Agent:
    """The registered agent ``cfg.agent`` names, on ``device`` (default: ``cfg.device`` resolved)."""
    agent = load_target(agent_spec(cfg.agent).build)(obs_spec, action_spec, cfg)
    return agent.to(resolve_device(cfg.device) if device is None else device)


@dataclass
class LoadedRun:
    """A trained run: its config, agent (world model inside) and counters."""

    run_dir: Path
    config: Config
    agent: Agent
    counters: dict

    @property
    def world_model(self):
        """The world model the agent learns with (the RSSM, the ensemble, V and M, or a plug-in family)."""
        return self.agent.world_model

    def make_env(self) -> ModelEnv:
        return make_single_env(self.config)


def load_run(run_dir: str | Path, device: str | None = None) -> LoadedRun:
    """Load a run folder for evaluation, dreaming or use from Python, onto ``device`` (default:
    the run's ``--device``, or the CPU where that is a GPU this machine lacks; ``auto`` means
    CUDA when available)."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    wanted = device or cfg.device
    if device is None and wanted.startswith("cuda") and not torch.cuda.is_available():
        wanted = "cpu"  # a run trained on a GPU, looked at on a machine without one
    target = resolve_device(wanted)
    ckpt = checkpoint.load(run_dir / checkpoint.NAME, map_location=target)
    agent = build_agent(cfg, *probe_specs(cfg), device=target)
    checkpoint.load_agent_state(agent, ckpt, run_dir / checkpoint.NAME)
    agent.eval()
    return LoadedRun(run_dir, cfg, agent, ckpt["counters"])
