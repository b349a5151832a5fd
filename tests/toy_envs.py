"""Tiny environments made for the tests; registered under ``wmtest/`` by conftest."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CueEnv(gym.Env):
    """Each step shows a random cue (one-hot of 2); the action matching the cue earns +1.

    Episodes last 10 steps. A policy that ignores the cue earns 5 per episode on average
    (binomial(10, 1/2), std 1.6); only a policy that reads the cue can average 9 or more.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, length: int = 10):
        self.observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.render_mode, self.length = render_mode, length

    def _obs(self):
        return np.eye(2, dtype=np.float32)[self.cue]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.cue = 0, int(self.np_random.integers(2))
        return self._obs(), {}

    def step(self, action):
        reward = float(int(action) == self.cue)
        self.t += 1
        self.cue = int(self.np_random.integers(2))
        return self._obs(), reward, False, self.t >= self.length, {}

    def render(self):
        frame = np.zeros((32, 32, 3), np.uint8)
        frame[:, :16, 0] = 255 * (self.cue == 0)
        frame[:, 16:, 1] = 255 * (self.cue == 1)
        return frame


class SignEnv(CueEnv):
    """CueEnv with a continuous action in [-1, 1]: reward = action x (+1 for cue 0, -1 for cue 1).

    Ignoring the cue earns 0 per episode on average; reading it earns up to 10.
    """

    def __init__(self, render_mode: str | None = None, length: int = 10):
        super().__init__(render_mode, length)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def step(self, action):
        reward = float(np.clip(action, -1, 1)[0]) * (1.0 if self.cue == 0 else -1.0)
        self.t += 1
        self.cue = int(self.np_random.integers(2))
        return self._obs(), reward, False, self.t >= self.length, {}


class RuleEnv(CueEnv):
    """CueEnv whose rule is a domain parameter: the action that pays is the cue while ``rule`` > 0
    and the other one while ``rule`` < 0. The observation shows the cue and the rule's value
    (a context the policy can read). Nominal ``rule`` is 1: the best policy of the nominal domain,
    "act as the cue says", earns 10 per episode there and 0 wherever ``rule`` < 0."""

    domain_parameters = {"rule": "rule"}
    rule = 1.0

    def __init__(self, render_mode: str | None = None, length: int = 10):
        super().__init__(render_mode, length)
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)

    def _obs(self):
        return np.array([*np.eye(2)[self.cue], self.rule], np.float32)

    def step(self, action):
        wanted = self.cue if self.rule > 0 else 1 - self.cue
        reward = float(int(action) == wanted)
        self.t += 1
        self.cue = int(self.np_random.integers(2))
        return self._obs(), reward, False, self.t >= self.length, {}


class CounterEnv(gym.Env):
    """obs_t = [t]; arriving at obs_t pays reward t; terminates on reaching t = 4."""

    metadata = {"render_modes": []}

    def __init__(self, render_mode: str | None = None):
        self.observation_space = spaces.Box(0.0, 10.0, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), float(self.t), self.t >= 4, False, {}


class PointMassEnv(gym.Env):
    """A 1-D mass starting at rest near x = -1 must reach and stay at x = 0. The action is a
    force in [-1, 1]: v' = v + 0.1 a, x' = x + v'. Reward -x'^2 per step, 25 steps.

    The mass has momentum, so a good controller accelerates, then brakes before the goal:
    one-step greed overshoots. Rendering is not supported (state observations only).
    """

    metadata = {"render_modes": []}
    length = 25

    def __init__(self, render_mode: str | None = None):
        self.observation_space = spaces.Box(-10.0, 10.0, (2,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.v, self.t = float(self.np_random.uniform(-1.1, -0.9)), 0.0, 0
        return np.array([self.x, self.v], np.float32), {}

    def step(self, action):
        self.v += 0.1 * float(np.clip(action, -1, 1)[0])
        self.x += self.v
        self.t += 1
        obs = np.array([self.x, self.v], np.float32)
        return obs, -(self.x**2), False, self.t >= self.length, {}


class DodgeEnv(gym.Env):
    """Pixels, like DoomTakeCover in miniature: a block falls in one of 8 columns over 4 steps;
    the player (bottom row) moves left, stays or moves right, and survives (+1 per step) unless
    the block lands on it. 64x64 RGB frames; at most 40 steps."""

    metadata = {"render_modes": ["rgb_array"]}
    length = 40

    def __init__(self, render_mode: str | None = None):
        self.observation_space = spaces.Box(0, 255, (64, 64, 3), np.uint8)
        self.action_space = spaces.Discrete(3)
        self.render_mode = render_mode

    def _frame(self) -> np.ndarray:
        img = np.zeros((64, 64, 3), np.uint8)
        img[56:64, self.player * 8 : self.player * 8 + 8] = 255
        img[self.height * 14 : self.height * 14 + 8, self.column * 8 : self.column * 8 + 8, 0] = 255
        return img

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.player, self.t = 4, 0
        self.column, self.height = int(self.np_random.integers(8)), 0
        return self._frame(), {}

    def step(self, action):
        self.player = int(np.clip(self.player + int(action) - 1, 0, 7))
        self.height += 1
        self.t += 1
        hit = self.height == 4 and self.column == self.player
        if self.height == 4:
            self.column, self.height = int(self.np_random.integers(8)), 0
        return self._frame(), 0.0 if hit else 1.0, hit, self.t >= self.length, {}

    def render(self):
        return self._frame()


class NaNRewardEnv(CueEnv):
    """Like CueEnv, but every reward is NaN."""

    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, float("nan"), terminated, truncated, info


class TextObsEnv(CueEnv):
    """An observation space no encoder takes."""

    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode)
        self.observation_space = spaces.Text(8)


class LaneEnv(gym.Env):
    """A lane with a hazard across its middle: the agent moves one tenth of the lane per step (10
    steps) and picks its sideways velocity (y += 0.25 a, within [-1, 1]). Each step pays 1 - |y|
    (the centre line pays most: the tempting shortcut) and costs 1 when it ends in the hazard:
    steps 3 to 6 with |y| < 0.3. Staying on the centre line earns 10 and pays 4; going round (out
    to |y| >= 0.3 before step 3, back after step 6) earns about 8 and pays 0."""

    reports_cost = True
    metadata = {"render_modes": []}

    def __init__(self, render_mode: str | None = None, nan_cost_at: int = 0):
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.nan_cost_at = nan_cost_at  # a broken cost signal, for the error tests

    def _obs(self):
        return np.array([self.t / 10, self.y], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.y = 0, 0.0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        self.y = float(np.clip(self.y + 0.25 * float(np.clip(action, -1, 1)[0]), -1, 1))
        cost = float(3 <= self.t <= 6 and abs(self.y) < 0.3)
        if self.t == self.nan_cost_at:
            cost = float("nan")
        return self._obs(), 1.0 - abs(self.y), False, self.t >= 10, {"cost": cost}


def register() -> None:
    for name, cls in [
        ("Cue", CueEnv),
        ("Sign", SignEnv),
        ("Rule", RuleEnv),
        ("Counter", CounterEnv),
        ("PointMass", PointMassEnv),
        ("Dodge", DodgeEnv),
        ("NaNReward", NaNRewardEnv),
        ("TextObs", TextObsEnv),
    ]:
        env_id = f"wmtest/{name}-v0"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=f"tests.toy_envs:{cls.__name__}")
    if "wmtest/Lane-v0" not in gym.registry:  # with a time limit: a cost limit is spread over it
        gym.register("wmtest/Lane-v0", entry_point="tests.toy_envs:LaneEnv", max_episode_steps=10)
