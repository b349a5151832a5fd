"""Run folders: the resolved config, building the agent, and loading a trained run."""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..agents.base import Agent, freeze_parts
from ..config import Config, parse_parts, parse_stored, resolve_device, validate
from ..config import env_kwargs as parse_env_kwargs
from ..envs.adapter import ModelEnv
from ..envs.make import make_env
from ..errors import RunConfigError, os_error_text
from ..registry import agent_spec, load_target
from ..specs import ActionSpec, ObsSpec
from . import checkpoint

CONFIG = "config.json"


def read_config(run_dir: Path) -> Config:
    """The config stored in ``run_dir/config.json``, checked key by key and setting by setting (as
    ``wm train`` checks its flags, but not whether this machine has its ``--device``), or a
    :class:`RunConfigError` naming what is wrong and how to fix it."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    no_run = RunConfigError(
        f"{run_dir} holds no run (no {CONFIG}). Start one with `wm train --logdir {run_dir}`, "
        "or point at the folder a run was started in."
    )
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the path
        raise no_run from None
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            raise no_run from None
        raise RunConfigError(f"cannot read {path}: {os_error_text(err)}.") from err
    fix = (
        f"Fix it in {path} (`wm train` wrote it; compare a fresh run's {CONFIG}), or start a new run with "
        "another --logdir."
    )
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise RunConfigError(f"{path} is not a valid run config: it is not UTF-8 text ({err}). {fix}") from err
    except json.JSONDecodeError as err:
        what = "it is empty (a write cut short?)" if not raw.strip() else f"it is not valid JSON ({err})"
        raise RunConfigError(f"{path} is not a valid run config: {what}. {fix}") from err
    except RecursionError as err:
        raise RunConfigError(f"{path} is not a valid run config: its JSON is nested too deep. {fix}") from err
    try:
        cfg = parse_stored(data)
        validate(cfg, device=False)  # a run trained on a GPU may be looked at on a CPU
    except (TypeError, ValueError) as err:
        raise RunConfigError(f"{path} is not a valid run config: {err}. {fix}") from err
    return cfg


def write_config(run_dir: Path, cfg: Config) -> None:
    """Make the run folder and write ``config.json`` in it atomically (a temp file, fsynced and
    renamed), or raise :class:`RunConfigError` saying why not and what to do; a failed write leaves
    no temp file and the folder's old ``config.json``, if any, as it was."""
    run_dir = Path(run_dir)
    path, tmp = run_dir / CONFIG, run_dir / (CONFIG + ".tmp")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as err:
        if isinstance(err, FileExistsError) and run_dir.is_file():
            raise RunConfigError(
                f"--logdir {run_dir} is a file, not a folder: choose another --logdir (a new folder, or one "
                "holding a run)."
            ) from err
        why = os_error_text(err) if isinstance(err, OSError) else str(err)
        raise RunConfigError(f"cannot make the run folder {run_dir}: {why}. Choose another --logdir.") from err
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(cfg.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if not isinstance(err, OSError):
            raise
        kept = f"its {CONFIG} is as it was" if path.exists() else "nothing was written"
        raise RunConfigError(
            f"cannot write {path}: {os_error_text(err)}. The run did not start ({kept}); fix that and run the "
            "command again, or choose another --logdir."
        ) from err


def env_kwargs(cfg: Config) -> dict:
    return dict(
        obs_mode=cfg.obs,
        image_size=cfg.model.image_size,
        action_repeat=cfg.action_repeat,
        max_episode_steps=cfg.max_episode_steps,
        env_kwargs=parse_env_kwargs(cfg),
        randomize=cfg.randomize,
        disturb=cfg.disturb,
        costs=cfg.cost_limit >= 0,
        difficulty=cfg.curriculum,
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
    if cfg.freeze:  # wm finetune --freeze: these parts keep the weights the run started from
        freeze_parts(agent.world_model, parse_parts(cfg.freeze))
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
