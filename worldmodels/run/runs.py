"""Run folders: the resolved config, building the agent, and loading a trained run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..agents.dreamer import Dreamer, make_dreamer
from ..agents.mpc import make_mpc
from ..agents.pets import PETS, make_pets
from ..agents.vmc import VMC, make_vmc
from ..config import Config
from ..envs.adapter import ModelEnv
from ..envs.make import make_env
from ..errors import RunConfigError
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
    )


def make_single_env(cfg: Config) -> ModelEnv:
    return make_env(cfg.env, **env_kwargs(cfg))


def probe_specs(cfg: Config) -> tuple[ObsSpec, ActionSpec]:
    env = make_single_env(cfg)
    try:
        return env.obs_spec, env.action_spec
    finally:
        env.close()


Agent = Dreamer | PETS | VMC


def build_agent(cfg: Config, obs_spec: ObsSpec, action_spec: ActionSpec) -> Agent:
    """The agent ``cfg.agent`` names, with the trainer's replay batch shape."""
    if cfg.agent == "pets":
        return make_pets(obs_spec, action_spec, cfg)
    if cfg.agent == "vmc":
        return make_vmc(obs_spec, action_spec, cfg)
    agent = (make_mpc if cfg.agent == "mpc" else make_dreamer_from)(obs_spec, action_spec, cfg)
    agent.configure_replay(cfg.batch, cfg.seq_len)
    return agent


def make_dreamer_from(obs_spec: ObsSpec, action_spec: ActionSpec, cfg: Config) -> Dreamer:
    return make_dreamer(obs_spec, action_spec, cfg.model, cfg.dreamer)


@dataclass
class LoadedRun:
    """A trained run: its config, agent (world model inside) and counters."""

    run_dir: Path
    config: Config
    agent: Agent
    counters: dict

    @property
    def world_model(self):
        """The RSSM world model; for PETS the probabilistic ensemble; for V/M/C the agent (V and M)."""
        if isinstance(self.agent, VMC):
            return self.agent
        return self.agent.ensemble if isinstance(self.agent, PETS) else self.agent.world_model

    def make_env(self) -> ModelEnv:
        return make_single_env(self.config)


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run folder for evaluation, dreaming or use from Python."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    ckpt = checkpoint.load(run_dir / checkpoint.NAME)
    agent = build_agent(cfg, *probe_specs(cfg))
    checkpoint.load_agent_state(agent, ckpt, run_dir / checkpoint.NAME)
    agent.eval()
    return LoadedRun(run_dir, cfg, agent, ckpt["counters"])
