"""Run folders as datasets: a run's replay is the record of what it collected.

``open_dataset`` is ``data.load_dataset`` that also takes a run folder: its replay's episodes,
with the spaces the run's ``replay/spaces.json`` names (written when the run starts), or, for a
run older than that file, the spaces its config's env gives. ``add_to_replay`` puts a dataset
beside what a run collects, the one way every trainer (the replay loop, V/M/C's stages) does it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Config
from ..data.datasets import load_dataset, require_episodes, resized
from ..data.episodes import Dataset, conform_episode
from ..data.replay import ReplayStore
from ..data.replay_episodes import SPACES, read_replay, read_spaces, write_spaces
from ..envs.costs import declares_cost
from ..errors import RunConfigError
from ..specs import ActionSpec, ObsSpec
from .runs import CONFIG, make_single_env, read_config

REPLAY = "replay"


def probe_run(cfg: Config) -> tuple[ObsSpec, ActionSpec, dict]:
    """One env of the run, made and closed: the model's specs, and what the run's replay steps are
    (the model's observation space, the env's own action space, the env id and how the env was
    set up: obs mode, image size, domains, time limit). A run asked to respect a cost limit on an
    env that does not declare costs takes one step to see that it reports them."""
    env = make_single_env(cfg)
    try:
        if env.costs and not declares_cost(env.env):  # --cost-limit on an env that may charge none: try a step
            env.reset(seed=0)
            env.step(env.action_space.sample())
        spaces = {
            "observation_space": env.observation_space,
            "action_space": env.env.action_space,
            "env_id": cfg.env,
            "meta": {
                "obs_mode": cfg.obs,
                "image_size": cfg.model.image_size,
                "action_repeat": cfg.action_repeat,
                "domain_names": list(env.domain_names),
                "randomize": cfg.randomize,
                "disturb": cfg.disturb,
                "seed": cfg.seed,
                "policy": f"{cfg.agent} (training run)",
                "max_episode_steps": env.episode_limit,
            },
        }
        return env.obs_spec, env.action_spec, spaces
    finally:
        env.close()


def record_replay_spaces(run_dir: Path, spaces: dict) -> None:
    """Write ``RUN/replay/spaces.json`` (``spaces`` as :func:`probe_run` gives them) unless it
    is there (a resumed run keeps its own)."""
    replay = Path(run_dir) / REPLAY
    if not (replay / SPACES).is_file():
        write_spaces(replay, **spaces)


def is_run_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / CONFIG).is_file()


def open_dataset(path: str | os.PathLike, *, image_size: int | None = None, allow_empty: bool = False) -> Dataset:
    """The dataset at ``path`` (any format ``load_dataset`` reads), or a run folder's replay."""
    if not is_run_folder(path):
        return load_dataset(path, image_size=image_size, allow_empty=allow_empty)
    run_dir = Path(path)
    replay = run_dir / REPLAY
    spaces = read_spaces(replay) if (replay / SPACES).is_file() else probe_run(read_config(run_dir))[2]
    dataset = resized(read_replay(replay, spaces=spaces), image_size)
    dataset.source = str(run_dir)
    return dataset if allow_empty else require_episodes(dataset)


def add_to_replay(
    store: ReplayStore,
    dataset: Dataset,
    cfg: Config,
    obs_spec: ObsSpec,
    action_spec: ActionSpec,
    *,
    share: float,
    domain_names: tuple[str, ...] = (),
) -> tuple[int, str]:
    """``dataset``'s episodes as a recorded stream of ``store`` at ``share`` of each batch. They
    must fit the run's model (the same observation keys and shapes and the same actions: refused
    naming what differs from the run's env) and its time step (``cfg.action_repeat`` env steps
    per step, where the dataset records its own); their domain values are kept where they name
    the run's ``domain_names``. Returns the steps held and a note on the episodes (and any skipped)."""
    dataset.check_matches(obs_spec, action_spec, against=f"--env {cfg.env} (--obs {cfg.obs})")
    recorded, action_repeat = int(dataset.meta.get("action_repeat") or 0), cfg.action_repeat
    if recorded and recorded != action_repeat:
        raise RunConfigError(
            f"{dataset.source} was recorded at --action-repeat {recorded} (each step {recorded} env steps) and this "
            f"run steps {action_repeat} at a time: a model of the one is wrong about the other. Train with "
            f"--action-repeat {recorded}"
        )
    episodes = [conform_episode(ep, obs_spec, domain_names, dataset.domain_names) for ep in dataset.episodes]
    held = store.add_recorded(episodes, share=share)
    skipped = f"; {len(dataset.skipped)} skipped: " + "; ".join(dataset.skipped[:3]) if dataset.skipped else ""
    return held, f" in {len(episodes)} episodes{skipped}"
