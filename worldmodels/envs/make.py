"""Making environments from ids: gymnasium ids (``CartPole-v1``, or ``module:Id`` to import the
module that registers ``Id`` first), or ``suite:task`` for a registered suite (``dmc:walker-walk``).
Ids of known packages that register on import (``ALE/Pong-v5``, ``MiniGrid-Empty-5x5-v0``,
``VizdoomTakeCover-v1``) import their package first; see :data:`ENV_PROVIDERS`."""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym

from ..errors import UnknownEnvError
from ..registry import SUITES
from .adapter import ModelEnv
from .disturbances import Disturbance
from .domain_spec import DomainSpecError
from .domains import Domain
from .seeding import EpisodeSeeds


class EnvKwargsError(UnknownEnvError, ValueError):
    """``env_kwargs`` the environment does not take; the message names the env and the keywords."""


def _install_hint(extra: str | None) -> str:
    return f"pip install -c constraints.txt -e '.[{extra}]'" if extra else "install the package it needs"


def _suites_hint() -> str:
    spellings = [str(SUITES.meta(n).get("spelling") or f"{n}:TASK") for n in SUITES.names()]
    return f" Registered suites: {', '.join(spellings)}." if spellings else ""


def _closest(env_id: str) -> list[str]:
    ids = list(gym.registry.keys())
    close = difflib.get_close_matches(env_id, ids, n=5, cutoff=0.5)
    if not close:  # fall back to ids sharing the name without version
        stem = env_id.split("-v")[0].lower()
        close = [i for i in ids if stem and stem in i.lower()][:5]
    return close


def _renders_rgb(env_id: str) -> bool:
    """Whether the registered env declares ``rgb_array`` rendering (asked for only then).
    A ``module:Id`` id imports its module first (gymnasium's ``spec`` does not)."""
    env_id = _import_env_module(env_id)
    spec = gym.spec(env_id)  # raises gym.error.Error for unknown ids
    if not isinstance(spec.entry_point, str):
        return "rgb_array" in getattr(spec.entry_point, "metadata", {}).get("render_modes", [])
    creator = gym.envs.registration.load_env_creator(spec.entry_point)
    return "rgb_array" in getattr(creator, "metadata", {}).get("render_modes", [])


def _import_env_module(env_id: str) -> str:
    """For ``module:Id``, import ``module`` (which registers ``Id``) and return ``Id``; other ids as
    they are. A module that is not installed is an :class:`UnknownEnvError` naming the pip install."""
    module, sep, name = env_id.partition(":")
    if not sep:
        return env_id
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        top = module.split(".")[0]
        if err.name == top:  # the package itself is missing, not something inside it
            raise UnknownEnvError(
                f"{env_id!r}: module {top!r} is not installed (pip install {top.replace('_', '-')}).{_suites_hint()}"
            ) from err
        raise UnknownEnvError(f"{env_id!r}: importing module {module!r} failed: {err}") from err
    except ImportError as err:
        raise UnknownEnvError(f"{env_id!r}: importing module {module!r} failed: {err}") from err
    return name


class Provider(NamedTuple):
    """A package whose import registers a family of gymnasium ids: ``module`` to import, the pip
    ``package`` to suggest when it is missing, and the project ``extra`` that installs it, if any."""

    module: str
    package: str
    extra: str | None = None


# Id prefix -> the package that registers those ids on import (gymnasium 1.x does not import them
# itself). Crafter is not here: its releases register with the old ``gym``, not gymnasium.
ENV_PROVIDERS: dict[str, Provider] = {
    "ALE/": Provider("ale_py", "ale-py"),
    "MiniGrid-": Provider("minigrid", "minigrid"),
    "BabyAI-": Provider("minigrid", "minigrid"),
    "Vizdoom": Provider("vizdoom.gymnasium_wrapper", "vizdoom", extra="games"),
}


def _provider_for(env_id: str) -> Provider | None:
    """The provider whose prefix ``env_id`` starts with (the longest such prefix), else None."""
    matches = [prefix for prefix in ENV_PROVIDERS if env_id.startswith(prefix)]
    if not matches:
        return None
    return Provider(*ENV_PROVIDERS[max(matches, key=len)])  # plain tuples work too


def _import_provider(env_id: str) -> None:
    """Import the package that registers ``env_id`` (see :data:`ENV_PROVIDERS`) if the id is not
    registered yet. A missing package is an :class:`UnknownEnvError` naming what to install."""
    if env_id in gym.registry:
        return
    provider = _provider_for(env_id)
    if provider is None:
        return
    try:
        module = importlib.import_module(provider.module)
    except ImportError as err:
        hint = f"pip install {provider.package}"
        if provider.extra:
            hint = f"{_install_hint(provider.extra)} (or {hint})"
        top = provider.module.split(".")[0]
        missing = isinstance(err, ModuleNotFoundError) and err.name == top
        detail = "" if missing else f" (importing {provider.module!r} failed: {err})"
        raise UnknownEnvError(f"{env_id} needs {provider.package}: {hint}{detail}") from err
    # Importing registers the ids (ale-py >= 0.9 and minigrid do it in their __init__);
    # gymnasium >= 1.0's register_envs is a no-op kept for packages that expect the call.
    register_envs = getattr(gym, "register_envs", None)
    if callable(register_envs):
        register_envs(module)


def _bad_kwargs(env_id: str, env_kwargs: dict, err: Exception) -> EnvKwargsError:
    given = ", ".join(f"{k}={v!r}" for k, v in env_kwargs.items())
    return EnvKwargsError(f"could not make {env_id!r} with env_kwargs {given}: {err}")


def _takes_render_size(sig: inspect.Signature | None) -> bool:
    if sig is None:
        return False
    return any(
        (p.name == "render_size" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)) or p.kind is p.VAR_KEYWORD
        for p in sig.parameters.values()
    )


def _make_suite_env(env_id: str, prefix: str, task: str, render_size: int, env_kwargs: dict) -> gym.Env:
    """``prefix:task`` for the registered suite ``prefix``: ``make(task, **env_kwargs)``."""
    extra = SUITES.meta(prefix).get("extra")
    try:
        make = SUITES.get(prefix)
    except ImportError as err:
        raise UnknownEnvError(
            f"{env_id!r} needs the {prefix!r} suite's packages: {_install_hint(extra)} ({err})"
        ) from err
    try:
        sig: inspect.Signature | None = inspect.signature(make)
    except (TypeError, ValueError):  # a callable without an introspectable signature
        sig = None
    kwargs = dict(env_kwargs)
    if _takes_render_size(sig):
        kwargs = {"render_size": render_size, **kwargs}
    if sig is not None:
        try:
            sig.bind(task, **kwargs)
        except TypeError as err:
            raise _bad_kwargs(env_id, env_kwargs, err) from err
    try:
        return make(task, **kwargs)
    except ImportError as err:
        raise UnknownEnvError(
            f"{env_id!r} needs the {prefix!r} suite's packages: {_install_hint(extra)} ({err})"
        ) from err
    except TypeError as err:
        if env_kwargs:  # most likely a keyword the env's constructor does not take
            raise _bad_kwargs(env_id, env_kwargs, err) from err
        raise


def make_env(
    env_id: str,
    *,
    obs_mode: str = "state",
    image_size: int = 64,
    action_repeat: int = 1,
    max_episode_steps: int = 0,
    render_size: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    randomize: str | Domain = "",
    disturb: str | Disturbance = "",
    costs: bool = False,
    difficulty: bool = False,
) -> ModelEnv:
    """One environment adapted for the model (see :class:`ModelEnv`).

    ``env_id``: ``suite:task`` for a registered suite (``dmc:walker-walk``), else a gymnasium id,
    which may be ``module:Id`` to import ``module`` first. ``env_kwargs`` go to the env's
    constructor (``gym.make(env_id, **env_kwargs)``, or the suite's ``make``). ``randomize``
    (envs/domains.py) and ``disturb`` (envs/disturbances.py) wrap the env before the adapter,
    as specs or objects. ``costs``: the env must report ``info["cost"]`` on every step, recorded
    beside the reward (envs/costs.py; an env that declares ``reports_cost`` does so anyway);
    ``difficulty``: the task's curriculum level is part of the observation.
    """
    domain = randomize if isinstance(randomize, Domain) else Domain.parse(randomize)
    disturbance = disturb if isinstance(disturb, Disturbance) else Disturbance.parse(disturb)
    env_kwargs = dict(env_kwargs or {})
    prefix, sep, task = env_id.partition(":")
    if sep and prefix in SUITES.names():
        env: gym.Env = _make_suite_env(env_id, prefix, task, render_size or image_size, env_kwargs)
        if max_episode_steps:
            env = gym.wrappers.TimeLimit(env, max_episode_steps)
    else:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # classic-control renders without a screen
        gym_id = _import_env_module(env_id)  # "module:Id" -> "Id", its module imported
        _import_provider(gym_id)  # ALE/..., MiniGrid-..., Vizdoom... register on import
        kwargs: dict[str, Any] = {"max_episode_steps": max_episode_steps} if max_episode_steps else {}
        try:
            if _renders_rgb(gym_id):
                kwargs["render_mode"] = "rgb_array"
            env = gym.make(gym_id, **{**kwargs, **env_kwargs})
        except gym.error.DependencyNotInstalled as err:
            raise UnknownEnvError(
                f"{env_id} needs a package that is not installed ({err}); for CarRacing and the other Box2D "
                "games: pip install -c constraints.txt -e '.[games]'"
            ) from err
        except gym.error.Error as err:
            if gym_id in gym.registry:
                raise UnknownEnvError(f"could not make {env_id!r}: {err}") from err
            close = _closest(gym_id)
            hint = f" Closest registered ids: {', '.join(close)}." if close else ""
            raise UnknownEnvError(f"unknown environment id {env_id!r}.{hint}{_suites_hint()}") from err
        except TypeError as err:
            if env_kwargs:  # most likely a keyword the env's constructor does not take
                raise _bad_kwargs(env_id, env_kwargs, err) from err
            raise
    try:
        if domain:
            env = domain.wrap(env, frame_size=image_size if obs_mode in ("pixels", "both") else None)
        if disturbance:
            env = disturbance.wrap(env)
        adapted = ModelEnv(
            env,
            obs_mode=obs_mode,
            image_size=image_size,
            action_repeat=action_repeat,
            costs=costs,
            difficulty=difficulty,
        )
    except BaseException:
        env.close()
        raise
    visual = [p.key for p in domain.params if p.visual]
    if visual and adapted.obs_spec.image is None:
        adapted.close()
        raise DomainSpecError(
            f"{', '.join(visual)} change what the camera sees, but this run sees state vectors (--obs {obs_mode}); "
            "use --obs pixels or --obs both, or randomise physical parameters instead"
        )
    if disturbance.obs_noise and obs_mode == "pixels":
        adapted.close()
        raise DomainSpecError(
            "obs_noise perturbs state vectors, which --obs pixels does not see; use --randomize visual.noise=S"
        )
    return adapted


def env_factory(env_id: str, stream: int | None = None, **kwargs) -> Callable[[], gym.Env]:
    """A picklable thunk for vector envs; with ``stream``, its episodes can be seeded one by one
    (:class:`~worldmodels.envs.seeding.EpisodeSeeds`)."""
    return _Factory(env_id, stream, kwargs)


class _Factory:
    def __init__(self, env_id: str, stream: int | None, kwargs: dict):
        self.env_id, self.stream, self.kwargs = env_id, stream, kwargs

    def __call__(self) -> gym.Env:
        env = make_env(self.env_id, **self.kwargs)
        return env if self.stream is None else EpisodeSeeds(env, self.stream)


def make_vector_env(env_id: str, num: int, first_stream: int = 0, **kwargs) -> gym.vector.VectorEnv:
    """``num`` envs: in this process for one, in worker processes for more.

    Autoreset is gymnasium's next-step mode: the step after an episode ends returns the reset
    observation with reward 0 and ignores the action; the collector stores it as ``is_first``.
    Env ``i`` is stream ``first_stream + i`` of :class:`~worldmodels.envs.seeding.EpisodeSeeds`.
    """
    fns = [env_factory(env_id, stream=first_stream + i, **kwargs) for i in range(num)]
    if num == 1:
        return gym.vector.SyncVectorEnv(fns)
    return gym.vector.AsyncVectorEnv(fns, context="spawn")
