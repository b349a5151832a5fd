"""Turning gymnasium spaces into what the model sees (vectors, images) and does (one-hot, [-1, 1])."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ..errors import UnsupportedSpaceError
from ..specs import ActionSpec

SUPPORTED_OBS = (
    "Box (any shape; a uint8 (H, W, 1|3) Box is taken as an image), Discrete, MultiBinary, "
    "MultiDiscrete, and Dict/Tuple of those"
)
SUPPORTED_ACTIONS = "Discrete, and Box with finite bounds"


def is_image_space(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and space.shape[-1] in (1, 3)
    )


def vector_size(space: spaces.Space) -> int:
    """Length of the flat float vector :func:`flatten_obs` makes of ``space``."""
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiBinary):
        return int(np.prod(space.shape))
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    if isinstance(space, spaces.Dict):
        return sum(vector_size(s) for s in space.spaces.values())
    if isinstance(space, spaces.Tuple):
        return sum(vector_size(s) for s in space.spaces)
    raise UnsupportedSpaceError(
        f"the encoders cannot take an observation space {space}; supported: {SUPPORTED_OBS}. "
        "Wrap the env (gymnasium.ObservationWrapper) to turn it into one of these."
    )


def flatten_obs(space: spaces.Space, obs) -> np.ndarray:
    """A flat float32 vector of ``obs``; discrete parts become one-hots."""
    if isinstance(space, spaces.Box | spaces.MultiBinary):
        return np.asarray(obs, dtype=np.float32).reshape(-1)
    if isinstance(space, spaces.Discrete):
        out = np.zeros(space.n, np.float32)
        out[int(obs) - int(space.start)] = 1.0
        return out
    if isinstance(space, spaces.MultiDiscrete):
        return np.concatenate([np.eye(n, dtype=np.float32)[int(v)] for n, v in zip(space.nvec.ravel(), np.ravel(obs))])
    if isinstance(space, spaces.Dict):
        return np.concatenate([flatten_obs(s, obs[k]) for k, s in space.spaces.items()])
    if isinstance(space, spaces.Tuple):
        return np.concatenate([flatten_obs(s, o) for s, o in zip(space.spaces, obs)])
    vector_size(space)  # raises the explanatory error
    raise AssertionError("unreachable")


def action_spec(space: spaces.Space) -> ActionSpec:
    if isinstance(space, spaces.Discrete):
        return ActionSpec(dim=int(space.n), discrete=True)
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise UnsupportedSpaceError(
                f"action space {space} has infinite bounds; the actor outputs [-1, 1] scaled to the bounds. "
                "Wrap the env with gymnasium.wrappers.ClipAction or RescaleAction to give it finite bounds."
            )
        return ActionSpec(dim=int(space.shape[0]), discrete=False)
    raise UnsupportedSpaceError(f"action space {space} is not supported; supported: {SUPPORTED_ACTIONS}")


def to_env_action(space: spaces.Space, action: np.ndarray):
    """Model action (one-hot, or values in [-1, 1]) -> the env's own action."""
    env_action = to_env_actions(space, np.asarray(action)[None])[0]
    return int(env_action) if isinstance(space, spaces.Discrete) else env_action


def from_env_actions(space: spaces.Space, actions) -> np.ndarray:
    """The env's own actions ``(T, ...)`` -> model actions ``(T, dim)`` float32, the inverse of
    :func:`to_env_action` (exact where a Box's bounds are +-2^k, as in most MuJoCo and dm_control
    tasks; otherwise within a float32 rounding). Values beyond a Box's bounds are clipped, as the
    actor cannot give them."""
    actions = np.asarray(actions)
    if isinstance(space, spaces.Discrete):
        index = actions.reshape(len(actions)).astype(np.int64) - int(space.start)
        if len(index) and (index.min() < 0 or index.max() >= space.n):
            raise ValueError(f"discrete actions must lie in {space}; got values {index.min()}..{index.max()}")
        return np.eye(int(space.n), dtype=np.float32)[index]
    action_spec(space)  # refuses the unsupported ones with the explanatory error
    scaled = (actions.astype(np.float64).reshape(len(actions), -1) - space.low) / (space.high - space.low)
    return np.clip(scaled * 2.0 - 1.0, -1.0, 1.0).astype(np.float32)


def to_env_actions(space: spaces.Space, actions: np.ndarray) -> np.ndarray:
    """:func:`to_env_action` over a batch ``(T, dim)``: ints for ``Discrete``, the Box's dtype otherwise."""
    actions = np.asarray(actions)
    if isinstance(space, spaces.Discrete):
        return (np.argmax(actions, axis=-1) + int(space.start)).astype(np.int64)
    clipped = np.clip(actions.astype(np.float64), -1.0, 1.0)
    return (space.low + (clipped + 1.0) * 0.5 * (space.high - space.low)).astype(space.dtype)
