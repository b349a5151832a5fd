"""Domains: an env's physics and looks, drawn anew at every reset.

    domain = Domain.parse("masspole=0.5:2.0,visual.hue=-0.2:0.2")
    env = domain.wrap(gym.make("CartPole-v1", render_mode="rgb_array"))   # a Randomization
    obs, info = env.reset(seed=3)            # info["domain"]: {"masspole": 1.31, "visual.hue": -0.07}

Physical parameters go to the env's backend (envs/physics.py), visual ones transform every
rendered frame and every image observation (envs/visual.py). The draws come from a generator
seeded by the reset's seed, so an episode's domain is a function of its seed: a resumed run
continues the same distribution, and an evaluation seed names the same domain every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .adapter import resize
from .domain_spec import VISUAL_PREFIX, ParamSpec, format_params, parse_params
from .physics import no_physics_error, physics_of
from .visual import check_visual, transform

# Salt of the domain draws' generator, so they are not the env's own draws from the same seed.
_DOMAIN_SALT = 0x0D0A


@dataclass(frozen=True)
class Domain:
    """A set of parameters, each a range (drawn per episode) or a fixed value."""

    params: tuple[ParamSpec, ...] = ()

    @classmethod
    def parse(cls, text: str, *, flag: str = "--randomize", mode: str = "range") -> Domain:
        return cls(tuple(parse_params(text, flag=flag, mode=mode)))

    @property
    def text(self) -> str:
        return format_params(list(self.params))

    @property
    def names(self) -> tuple[str, ...]:
        """The parameters' keys, in the order of the recorded domain vector."""
        return tuple(p.key for p in self.params)

    def __bool__(self) -> bool:
        return bool(self.params)

    def merged(self, other: Domain) -> Domain:
        """This domain with ``other``'s parameters replacing those of the same key."""
        keys = {p.key for p in other.params}
        return Domain(tuple(p for p in self.params if p.key not in keys) + other.params)

    def sample(self, rng: np.random.Generator) -> dict[str, float]:
        return {p.key: p.sample(rng) for p in self.params}

    def wrap(self, env: gym.Env, frame_size: int | None = None) -> Randomization:
        return Randomization(env, self, frame_size)


class Randomization(gym.Wrapper):
    """Resamples ``domain`` at every reset and applies it: physical values to the env before it
    resets, visual ones to ``render()`` and to image observations. ``info["domain"]`` holds the
    episode's values on reset and on every step; ``domain_names`` their order.

    ``frame_size``: with visual parameters, ``render()`` resizes frames to this square size
    before changing them (``make_env`` passes the model's image size): a camera change then costs
    what the agent's 64x64 image costs, not what the renderer's 600x400 frame would."""

    def __init__(self, env: gym.Env, domain: Domain, frame_size: int | None = None):
        super().__init__(env)
        self.frame_size = frame_size
        self.domain = domain
        self.domain_names = domain.names
        self.physical = [p for p in domain.params if not p.visual]
        self.visual = [p for p in domain.params if p.visual]
        for p in self.visual:
            check_visual(p)
        self.physics = physics_of(env) if self.physical else None
        if self.physical:
            if self.physics is None:
                raise no_physics_error(env, f"--randomize {format_params(self.physical)}")
            for p in self.physical:
                self.physics.check(p)
        # Until a reset passes a seed, draws are fresh each time (gymnasium's convention for
        # unseeded resets); the sensor noise has a stream of its own, so frames rendered for a
        # video do not change the next episode's domain.
        self._rng = np.random.default_rng()
        self._noise_rng = np.random.default_rng()
        self.values: dict[str, float] = {}
        self._looks: dict[str, float] = {}
        self._image_obs = isinstance(env.observation_space, spaces.Box) and env.observation_space.dtype == np.uint8

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng([int(seed), _DOMAIN_SALT])
            self._noise_rng = np.random.default_rng([int(seed), _DOMAIN_SALT, 1])
        self.values = self.domain.sample(self._rng)
        if self.physics is not None:
            self.physics.set_values([(p, self.values[p.key]) for p in self.physical])
        self._looks = {p.name.removeprefix(VISUAL_PREFIX): self.values[p.key] for p in self.visual}
        obs, info = self.env.reset(seed=seed, options=options)
        return self._see(obs), {**info, "domain": dict(self.values)}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._see(obs), reward, terminated, truncated, {**info, "domain": dict(self.values)}

    def _see(self, obs):
        if self._looks and self._image_obs:
            return transform(obs, self._looks, self._noise_rng)
        return obs

    def render(self):
        frame = self.env.render()
        if self._looks and frame is not None:
            frame = np.asarray(frame, dtype=np.uint8)
            if self.frame_size is not None:
                frame = resize(frame, self.frame_size)
            return transform(frame, self._looks, self._noise_rng)
        return frame
