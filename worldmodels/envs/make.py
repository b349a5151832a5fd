"""Making environments from ids: gymnasium ids, or ``dmc:domain-task`` for dm_control."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable

import gymnasium as gym

from ..errors import UnknownEnvError
from .adapter import ModelEnv


def _closest(env_id: str) -> list[str]:
    ids = list(gym.registry.keys())
    close = difflib.get_close_matches(env_id, ids, n=5, cutoff=0.5)
    if not close:  # fall back to ids sharing the name without version
        stem = env_id.split("-v")[0].lower()
        close = [i for i in ids if stem and stem in i.lower()][:5]
    return close


def _renders_rgb(env_id: str) -> bool:
    """Whether the registered env declares ``rgb_array`` rendering (asked for only then)."""
    spec = gym.spec(env_id)  # raises gym.error.Error for unknown ids
    if not isinstance(spec.entry_point, str):
        return "rgb_array" in getattr(spec.entry_point, "metadata", {}).get("render_modes", [])
    creator = gym.envs.registration.load_env_creator(spec.entry_point)
    return "rgb_array" in getattr(creator, "metadata", {}).get("render_modes", [])


def _register_extra(env_id: str) -> None:
    """Envs that register on import of their package: ViZDoom's gymnasium wrapper."""
    if env_id.startswith("Vizdoom") and env_id not in gym.registry:
        try:
            import vizdoom.gymnasium_wrapper  # noqa: F401
        except ImportError as err:
            raise UnknownEnvError(
                f"{env_id} needs ViZDoom: pip install -c constraints.txt -e '.[games]' (or pip install vizdoom)"
            ) from err


def make_env(
    env_id: str,
    *,
    obs_mode: str = "state",
    image_size: int = 64,
    action_repeat: int = 1,
    max_episode_steps: int = 0,
    render_size: int | None = None,
) -> ModelEnv:
    """One environment adapted for the model (see :class:`ModelEnv`)."""
    if env_id.startswith("dmc:"):
        from .dmc import DMCEnv

        domain, _, task = env_id[4:].partition("-")
        env: gym.Env = DMCEnv(domain, task.replace("-", "_"), render_size=render_size or image_size)
        if max_episode_steps:
            env = gym.wrappers.TimeLimit(env, max_episode_steps)
    else:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # classic-control renders without a screen
        _register_extra(env_id)
        kwargs = {"max_episode_steps": max_episode_steps} if max_episode_steps else {}
        try:
            can_render = _renders_rgb(env_id)
            env = gym.make(env_id, **({"render_mode": "rgb_array"} if can_render else {}), **kwargs)
        except gym.error.DependencyNotInstalled as err:
            raise UnknownEnvError(
                f"{env_id} needs a package that is not installed ({err}); for CarRacing and the other Box2D "
                "games: pip install -c constraints.txt -e '.[games]'"
            ) from err
        except gym.error.Error as err:
            if env_id in gym.registry:
                raise UnknownEnvError(f"could not make {env_id!r}: {err}") from err
            close = _closest(env_id)
            hint = f" Closest registered ids: {', '.join(close)}." if close else ""
            raise UnknownEnvError(
                f"unknown environment id {env_id!r}.{hint} dm_control tasks are spelled dmc:walker-walk."
            ) from err
    return ModelEnv(env, obs_mode=obs_mode, image_size=image_size, action_repeat=action_repeat)


def env_factory(env_id: str, **kwargs) -> Callable[[], ModelEnv]:
    """A picklable thunk for vector envs."""
    return _Factory(env_id, kwargs)


class _Factory:
    def __init__(self, env_id: str, kwargs: dict):
        self.env_id, self.kwargs = env_id, kwargs

    def __call__(self) -> ModelEnv:
        return make_env(self.env_id, **self.kwargs)


def make_vector_env(env_id: str, num: int, **kwargs) -> gym.vector.VectorEnv:
    """``num`` envs: in this process for one, in worker processes for more.

    Autoreset is gymnasium's next-step mode: the step after an episode ends returns the reset
    observation with reward 0 and ignores the action; the collector stores it as ``is_first``.
    """
    fns = [env_factory(env_id, **kwargs) for _ in range(num)]
    if num == 1:
        return gym.vector.SyncVectorEnv(fns)
    return gym.vector.AsyncVectorEnv(fns, context="spawn")
