"""Disturbances: what the real world does to an agent that a simulator does not, unless asked.

    --disturb "push=0.5@0.02,action_noise=0.1,obs_noise=0.01,delay=1"

- ``push=SIZE@PROB`` (or ``push[body]=SIZE@PROB`` on MuJoCo): with probability PROB per step, a
  push of SIZE (a change of velocity; envs/physics.py says of what, per env).
- ``action_noise=S``: Gaussian noise of S half-ranges on continuous actions; on discrete ones,
  a uniformly random action with probability S.
- ``obs_noise=S``: Gaussian noise of standard deviation S on state-vector observations.
- ``delay=K``: the env executes the action chosen K steps earlier (the episode's first action
  until then), as a slow actuator or a control loop with latency would.
- ``adversarial=K`` (with ``push``): each push is the worst of K candidates of the same size
  for the agent, as its own world model judges (for pushes along one axis the candidates are
  the two ways, whatever K): the wrapper looks one step ahead in the simulator under each
  (state saved and restored) and hands the K (observation, reward, terminated) to a ``judge``
  (the trainer installs the agent's ``predicted_return``); the candidate with the lowest
  predicted return is applied. Without a judge (no agent yet), the first candidate, a random
  push, is.

Probabilities and delays count the env's own steps (with ``--action-repeat R`` an agent step
is R of them).

The draws come from a generator seeded by the reset's seed (like envs/domains.py's), so the
pushes of an episode are a function of its seed. ``info["push"]`` is the push applied at a step
(0 when none).
"""

from __future__ import annotations

import collections
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .domain_spec import DomainSpecError, number_text, parse_number
from .physics import no_physics_error, physics_of

_DISTURB_SALT = 0xD157
_PUSH = re.compile(r"^push(?:\[(?P<target>[^\]]+)\])?$")


@dataclass(frozen=True)
class Disturbance:
    """The disturbances of an env (all off by default)."""

    push: float = 0.0
    push_prob: float = 0.0
    push_target: str | None = None
    action_noise: float = 0.0
    obs_noise: float = 0.0
    delay: int = 0
    adversarial: int = 0

    def __bool__(self) -> bool:
        return bool(self.push and self.push_prob) or bool(self.action_noise or self.obs_noise or self.delay)

    @classmethod
    def parse(cls, text: str, *, flag: str = "--disturb") -> Disturbance:
        values: dict[str, Any] = {}
        seen: set[str] = set()
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            push = _PUSH.match(key)
            name = "push" if push else key
            if name in seen:
                raise DomainSpecError(f"{flag}: {name} is given twice")
            seen.add(name)
            if not eq or not value:
                raise DomainSpecError(f"{flag} {item!r} is not NAME=VALUE; e.g. push=0.5@0.02,action_noise=0.1")
            if push:
                size, at, prob = value.partition("@")
                if not at:
                    raise DomainSpecError(f"{flag} {item!r}: write push=SIZE@PROBABILITY, e.g. push=0.5@0.02")
                values["push"], values["push_prob"] = _number(size, item, flag), _number(prob, item, flag)
                values["push_target"] = push["target"]
                if not 0 <= values["push_prob"] <= 1:
                    raise DomainSpecError(f"{flag} {item!r}: the probability per step must be in [0, 1]")
            elif key in ("action_noise", "obs_noise"):
                values[key] = _number(value, item, flag)
            elif key in ("delay", "adversarial"):
                count = _number(value, item, flag)
                if not count.is_integer():
                    raise DomainSpecError(f"{flag} {item!r}: {key} is a whole number")
                if key == "adversarial" and count == 1:
                    raise DomainSpecError(f"{flag} {item!r}: the worst of one candidate is a random push; give >= 2")
                values[key] = int(count)
            else:
                raise DomainSpecError(
                    f"{flag}: unknown disturbance {key!r}; the disturbances are push=SIZE@PROB (push[body]=... on "
                    "MuJoCo), action_noise=S, obs_noise=S, delay=K, adversarial=K"
                )
        if values.get("adversarial") and not (values.get("push") and values.get("push_prob")):
            raise DomainSpecError(
                f"{flag}: adversarial=K chooses among pushes; give push=SIZE@PROB too, with SIZE and PROB > 0"
            )
        return cls(**values)

    @property
    def text(self) -> str:
        parts = []
        if self.push and self.push_prob:
            target = f"[{self.push_target}]" if self.push_target else ""
            parts.append(f"push{target}={number_text(self.push)}@{number_text(self.push_prob)}")
        parts += [f"{f.name}={number_text(getattr(self, f.name))}" for f in fields(self)[3:] if getattr(self, f.name)]
        return ",".join(parts)

    def wrap(self, env: gym.Env) -> Disturbed:
        return Disturbed(env, self)


def _number(text: str, item: str, flag: str) -> float:
    value = parse_number(text, item, flag)
    if value < 0:
        raise DomainSpecError(f"{flag} {item!r}: sizes, noise and delays are numbers >= 0, got {text!r}")
    return value


class Disturbed(gym.Wrapper):
    """Applies a :class:`Disturbance` to any gymnasium env (pushes need envs/physics.py's backends)."""

    def __init__(self, env: gym.Env, disturbance: Disturbance):
        super().__init__(env)
        self.disturbance = d = disturbance
        self.physics = None
        if d.push and d.push_prob:
            self.physics = physics_of(env)
            if self.physics is None:
                raise no_physics_error(env, f"--disturb {d.text}")
            self.physics.check_push(d.push_target)
        if d.obs_noise and not (
            isinstance(env.observation_space, spaces.Box) and np.issubdtype(env.observation_space.dtype, np.floating)
        ):
            raise DomainSpecError(
                f"obs_noise perturbs state vectors; this env's observations are {env.observation_space}. "
                "For images use --randomize visual.noise=..."
            )
        if d.adversarial:
            self.physics.snapshot()  # refuses envs it cannot look ahead in
        if d.action_noise > 1 and isinstance(env.action_space, spaces.Discrete):
            raise DomainSpecError(
                f"action_noise={d.action_noise:g}: on discrete actions it is the probability of a random action, "
                "at most 1"
            )
        self._rng = np.random.default_rng(_DISTURB_SALT)
        self._queue: collections.deque = collections.deque()
        # Adversarial pushes: K looked-ahead (observation, reward, terminated) -> index of the push
        # to apply; and how a raw observation becomes what the judge reads (ModelEnv attaches its own).
        self.judge: Callable[[list], int] | None = None
        self.observer: Callable[[Any], Any] = lambda raw: raw

    def attach_observer(self, observer: Callable[[Any], Any]) -> None:
        """How looked-ahead observations are turned into what the judge reads."""
        self.observer = observer

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng([int(seed), _DISTURB_SALT])
        self._queue.clear()
        obs, info = self.env.reset(seed=seed, options=options)
        return self._observe(obs), {**info, "push": 0.0}

    def step(self, action):
        d = self.disturbance
        if d.delay:
            if not self._queue:  # the episode's first action stands in for the K before it
                self._queue.extend([action] * d.delay)
            self._queue.append(action)
            action = self._queue.popleft()
        action = self._noisy(action)
        pushed = 0.0
        if self.physics is not None and self._rng.random() < d.push_prob:
            self.physics.push(d.push, d.push_target, self._choose_push(action))
            pushed = d.push
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        finally:
            if self.physics is not None:
                self.physics.release()
        return self._observe(obs), reward, terminated, truncated, {**info, "push": pushed}

    def _choose_push(self, action) -> np.ndarray:
        """A random direction, or with ``adversarial`` the worst of K for the judge."""
        d = self.disturbance
        candidates = self.physics.push_directions(self._rng, max(d.adversarial, 1))
        if not d.adversarial or self.judge is None:
            return candidates[0]
        return candidates[int(self.judge([self.lookahead(action, c) for c in candidates]))]

    def lookahead(self, action, direction: np.ndarray) -> tuple[Any, float, bool]:
        """What this step would bring under a push along ``direction``: the observation (as the
        observer makes it), the reward and whether the episode would end. The simulator is put
        back as it was."""
        snapshot = self.physics.snapshot()
        try:
            self.physics.push(self.disturbance.push, self.disturbance.push_target, direction)
            raw, reward, terminated, _, _ = self.env.unwrapped.step(action)
            return self.observer(raw), float(reward), bool(terminated)
        finally:
            self.physics.release()
            self.physics.restore(snapshot)

    def _noisy(self, action):
        noise, space = self.disturbance.action_noise, self.env.action_space
        if not noise:
            return action
        if isinstance(space, spaces.Discrete):
            if self._rng.random() < noise:
                return int(space.start + self._rng.integers(space.n))
            return action
        if isinstance(space, spaces.Box):
            half = (space.high - space.low) / 2
            noisy = np.asarray(action) + self._rng.normal(0.0, noise, space.shape) * half
            return np.clip(noisy, space.low, space.high).astype(space.dtype)
        raise DomainSpecError(f"action_noise works on Discrete and Box actions; this env's are {space}")

    def _observe(self, obs):
        if not self.disturbance.obs_noise:
            return obs
        noisy = obs + self._rng.normal(0.0, self.disturbance.obs_noise, np.shape(obs))
        return noisy.astype(self.env.observation_space.dtype)
