"""A gymnasium env seen the way the model sees it: dict observations and model-space actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from PIL import Image

from ..errors import RunConfigError, UnsupportedSpaceError
from ..specs import COST, DOMAIN, IMAGE, VECTOR, ActionSpec, ObsSpec
from .costs import declares_cost, step_cost
from .spaces import SUPPORTED_OBS, action_spec, flatten_obs, is_image_space, to_env_action, vector_size


def resize(frame: np.ndarray, size: int) -> np.ndarray:
    """``(H, W, C)`` uint8 -> ``(size, size, C)`` uint8 (antialiased when shrinking)."""
    if frame.shape[:2] == (size, size):
        return frame
    channels = frame.shape[-1]
    img = Image.fromarray(frame[..., 0] if channels == 1 else frame)
    out = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
    return out[..., None] if channels == 1 else out


class StateView:
    """How an env's own observation becomes the model's: an image-like part (a uint8 ``(H, W, 1|3)``
    Box, alone or one entry of a Dict) becomes ``"image"``, resized; the rest is flattened into
    ``"vector"``. ``take_image=False`` flattens everything (``--obs both`` renders its image).
    The env adapter and the dataset importer (data/) read observations through it, so a recorded
    observation and a live one reach the model the same way."""

    def __init__(self, space: spaces.Space, take_image: bool = True):
        self.space = space
        self.image_key: str | None = None  # "" : the whole observation is the image
        self.vector_space: spaces.Space | None = None
        self.channels: int | None = None
        if take_image and is_image_space(space):
            self.image_key, self.channels = "", int(space.shape[-1])
        elif isinstance(space, spaces.Dict) and take_image and any(is_image_space(s) for s in space.spaces.values()):
            images = [k for k, s in space.spaces.items() if is_image_space(s)]
            if len(images) > 1:
                raise UnsupportedSpaceError(
                    f"observation has several images {images}; the model takes one. Supported: {SUPPORTED_OBS}"
                )
            self.image_key, self.channels = images[0], int(space[images[0]].shape[-1])
            rest = {k: s for k, s in space.spaces.items() if k != images[0]}
            self.vector_space = spaces.Dict(rest) if rest else None
        else:
            self.vector_space = space
        self.vector = vector_size(self.vector_space) if self.vector_space is not None else None  # raises if unsupported

    def __call__(self, raw, image_size: int) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = {}
        if self.image_key is not None:
            img = raw if self.image_key == "" else raw[self.image_key]
            obs[IMAGE] = resize(np.asarray(img, dtype=np.uint8), image_size)
        if self.vector_space is not None:
            part = raw
            if self.image_key:  # a Dict with an image: the vector is the other entries
                part = {k: raw[k] for k in self.vector_space.spaces}
            obs[VECTOR] = flatten_obs(self.vector_space, part)
        return obs


def check_levels(env: gym.Env) -> None:
    """A curriculum needs a task with levels: ``set_difficulty(level)`` and ``difficulty`` (0 to 1)."""
    try:
        env.get_wrapper_attr("set_difficulty")
        env.get_wrapper_attr("difficulty")
    except AttributeError:
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise RunConfigError(
            f"--curriculum raises a task's difficulty, and {name} defines none: the safe: suite's tasks do "
            "(CartPoleZone's zone, PointGoal's hazard size, the velocity tasks' speed limit); your own env takes part "
            "with a method set_difficulty(level) and an attribute difficulty, levels from 0 (easy) to 1 (the task)"
        ) from None


class ModelEnv(gym.Wrapper):
    """Observations ``{"image": uint8 (S, S, C), "vector": float32 (D,)}``; actions in model space.

    ``obs_mode``: ``state`` (the env's observation; an image-like Box becomes ``image``),
    ``pixels`` (``rgb_array`` renders only) or ``both`` (renders plus the state vector).
    Actions are one-hots for ``Discrete`` and values in [-1, 1] scaled to a ``Box``'s bounds.
    ``action_repeat`` repeats each action, summing rewards (and costs). ``costs`` (or an env that
    declares ``reports_cost``, envs/costs.py): every step's ``info["cost"]`` is required, finite,
    summed over repeats, and ``obs_spec.cost`` says so. ``difficulty`` (a curriculum): the task's
    level (``env.difficulty``, 0 to 1) is the last entry of ``"vector"``, since the level changes
    what costs what and the model must be able to tell. Under a
    :class:`~worldmodels.envs.domains.Randomization` the observations also hold ``"domain"``, the
    episode's parameter values (float32, in its ``domain_names`` order), which the replay records
    and no encoder reads.
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        obs_mode: str,
        image_size: int,
        action_repeat: int = 1,
        costs: bool = False,
        difficulty: bool = False,
    ):
        super().__init__(env)
        self.difficulty = difficulty
        self.obs_mode, self.image_size, self.repeat = obs_mode, image_size, action_repeat
        self.costs = costs or declares_cost(env)
        self._steps = 0  # of the episode, to name a step whose cost is bad
        self.view: StateView | None = None  # the state observation's split, where the model reads it
        if obs_mode in ("pixels", "both"):
            modes = env.metadata.get("render_modes", [])
            if getattr(env, "render_mode", None) != "rgb_array":
                raise UnsupportedSpaceError(
                    f"--obs {obs_mode} needs an env that renders rgb_array frames; {env.spec.id if env.spec else env} "
                    f"has render modes {modes}. Use --obs state, or an env that supports rgb_array."
                )
        if obs_mode in ("state", "both"):
            self.view = StateView(env.observation_space, take_image=obs_mode == "state")
        image = obs_mode in ("pixels", "both") or (self.view is not None and self.view.channels is not None)
        channels = self.view.channels if self.view is not None and self.view.channels is not None else 3
        vec = self.view.vector if self.view is not None else None
        if difficulty:
            check_levels(env)
            vec = (vec or 0) + 1
        self.obs_spec = ObsSpec(
            image=(image_size, image_size, channels) if image else None, vector=vec, cost=self.costs
        )
        self.action_spec: ActionSpec = action_spec(env.action_space)
        obs_spaces = {}
        if self.obs_spec.image is not None:
            obs_spaces[IMAGE] = spaces.Box(0, 255, self.obs_spec.image, np.uint8)
        if vec is not None:
            obs_spaces[VECTOR] = spaces.Box(-np.inf, np.inf, (vec,), np.float32)
        try:
            self.domain_names: tuple[str, ...] = tuple(env.get_wrapper_attr("domain_names"))
        except AttributeError:
            self.domain_names = ()
        if self.domain_names:
            obs_spaces[DOMAIN] = spaces.Box(-np.inf, np.inf, (len(self.domain_names),), np.float32)
        try:  # adversarial pushes judge looked-ahead observations as the model sees them
            env.get_wrapper_attr("attach_observer")(self._observe)
        except AttributeError:
            pass
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.Box(-1.0, 1.0, (self.action_spec.dim,), np.float32)

    def _observe(self, raw) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = {}
        if self.obs_mode in ("pixels", "both"):
            obs[IMAGE] = resize(np.asarray(self.env.render(), dtype=np.uint8), self.image_size)
        if self.view is not None:
            obs.update(self.view(raw, self.image_size))
        if self.difficulty:
            level = np.array([self.env.get_wrapper_attr("difficulty")], np.float32)
            obs[VECTOR] = np.concatenate([obs[VECTOR], level]) if VECTOR in obs else level
        return obs

    def _with_domain(self, obs: dict[str, np.ndarray], info: dict) -> dict[str, np.ndarray]:
        if self.domain_names:
            values = info.get("domain", {})
            obs[DOMAIN] = np.array([values.get(k, np.nan) for k in self.domain_names], np.float32)
        return obs

    def reset(self, **kwargs):
        raw, info = self.env.reset(**kwargs)
        self._steps = 0
        return self._with_domain(self._observe(raw), info), info

    def step(self, action):
        env_action = to_env_action(self.env.action_space, action)
        total, cost = 0.0, 0.0
        for _ in range(self.repeat):
            raw, reward, terminated, truncated, info = self.env.step(env_action)
            self._steps += 1
            total += float(reward)
            if self.costs:
                cost += step_cost(info, self._name(), self._steps)
            if terminated or truncated:
                break
        if self.costs:
            info = {**info, COST: cost}
        return self._with_domain(self._observe(raw), info), total, terminated, truncated, info

    @property
    def episode_limit(self) -> int | None:
        """The env's time limit in model steps (a ``TimeLimit`` wrapper's, or its spec's), or None."""
        env, limit = self.env, None
        while isinstance(env, gym.Wrapper) and limit is None:
            limit = getattr(env, "_max_episode_steps", None)
            env = env.env
        if limit is None and self.env.spec is not None:
            limit = self.env.spec.max_episode_steps
        return None if limit is None else -(-int(limit) // self.repeat)

    def _name(self) -> str:
        spec = self.env.spec
        return spec.id if spec is not None else type(self.env.unwrapped).__name__
