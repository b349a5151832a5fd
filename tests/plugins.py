"""A world-model family, a planner and an env suite that live in the tests only, registered the
way another package would register its own (``worldmodels.register_*``).

The family is a linear-Gaussian latent model: ``z_t = A z_{t-1} + B a_{t-1} + noise`` as the
prior, a linear encoder as the posterior, linear heads for observation, reward and continue.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import worldmodels
from worldmodels.models.base import DECODES, FEATURES, WorldModelBase, unroll
from worldmodels.planning.shooting import ShootingPlanner
from worldmodels.registry import FAMILIES, PLANNERS, SUITES
from worldmodels.specs import VECTOR


class LinearState(NamedTuple):
    z: Tensor  # (..., L)

    def map(self, fn) -> LinearState:
        return LinearState(fn(self.z))


class LinearGaussian(WorldModelBase):
    capabilities = frozenset({FEATURES, DECODES})

    def __init__(self, obs_spec, action_dim: int, latent: int = 8, noise: float = 0.1):
        super().__init__()
        if obs_spec.vector is None or obs_spec.image is not None:
            raise ValueError("the linear family models state vectors only (--obs state)")
        self.obs_spec, self.action_dim, self.latent, self.noise = obs_spec, action_dim, latent, noise
        self.encoder = nn.Linear(obs_spec.vector, latent)
        self.transition = nn.Linear(latent + action_dim, latent)
        self.decoder = nn.Linear(latent, obs_spec.vector)
        self.reward_head = nn.Linear(latent, 1)
        self.cont_head = nn.Linear(latent, 1)

    @property
    def feature_size(self) -> int:
        return self.latent

    @property
    def loss_scales(self) -> dict[str, float]:
        return {"vector": 1.0, "reward": 1.0, "cont": 1.0, "dynamics": 0.5}

    def initial(self, batch: int) -> LinearState:
        return LinearState(self.encoder.weight.new_zeros(batch, self.latent))

    def observe(self, state, obs, prev_action, is_first) -> LinearState:
        return LinearState(self.encoder(obs[VECTOR].float()))

    def _prior(self, z: Tensor, action: Tensor) -> Tensor:
        return self.transition(torch.cat([z, action.to(z.dtype)], -1))

    def imagine(self, state, policy_or_actions, horizon=None, sample: bool = True):
        def step(state: LinearState, action: Tensor) -> LinearState:
            z = self._prior(state.z, action)
            return LinearState(z + self.noise * torch.randn_like(z) if sample else z)

        return unroll(state, policy_or_actions, horizon, step)

    def advance(self, state, action):
        return LinearState(self._prior(state.z, action))

    def features(self, states: LinearState) -> Tensor:
        return states.z

    def predict(self, feat: Tensor, decode_obs: bool = True) -> dict[str, Tensor]:
        out = {"reward": self.reward_head(feat)[..., 0], "cont": torch.sigmoid(self.cont_head(feat)[..., 0])}
        return {VECTOR: self.decoder(feat), **out} if decode_obs else out

    def loss(self, batch):
        z = self.encoder(batch[VECTOR].float())  # (B, T, L)
        pred = self.predict(z)
        prior = self._prior(z[:, :-1].detach(), batch["action"][:, :-1].float())
        valid = (~batch["is_first"][:, 1:].bool()).float()
        dyn = ((prior - z[:, 1:]) ** 2).sum(-1) * valid
        cont = 1.0 - batch["is_terminal"].float()
        terms = {
            VECTOR: ((pred[VECTOR] - batch[VECTOR].float()) ** 2).sum(-1),
            "reward": (pred["reward"] - batch["reward"].float()) ** 2,
            "cont": F.binary_cross_entropy(pred["cont"].clamp(1e-6, 1 - 1e-6), cont, reduction="none"),
            "dynamics": torch.cat([torch.zeros_like(dyn[:, :1]), dyn], 1),
        }
        return terms, LinearState(z), {}


def make_linear(obs_spec, action_spec, cfg) -> LinearGaussian:
    return LinearGaussian(obs_spec, action_spec.dim)


class BestOfRandom(ShootingPlanner):
    """Random shooting: the best sampled sequence becomes the mean; the spread never narrows."""

    name = "best_of_random"

    def refit(self, population, scores, mean, std):
        return population[scores.argmax()], std


class ToySuiteEnv(gym.Env):
    """A one-number env of a suite: the task name sets the target the agent is paid to reach."""

    metadata = {"render_modes": []}

    def __init__(self, task: str, scale: float = 1.0):
        self.target = {"left": -0.5, "right": 0.5}[task]
        self.scale = scale
        self.observation_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 0.0, 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x = float(np.clip(self.x + 0.1 * float(np.asarray(action).reshape(-1)[0]), -2, 2))
        self.t += 1
        reward = -abs(self.x - self.target) * self.scale
        return np.array([self.x], np.float32), reward, False, self.t >= 20, {}


def make_toy(task: str, scale: float = 1.0) -> gym.Env:
    return ToySuiteEnv(task, scale)


def register_family() -> None:
    worldmodels.register_family("linear", make_linear, features=True, replace=True)


def register() -> None:
    worldmodels.register_family("linear", make_linear, features=True, replace=True)
    worldmodels.register_planner("best_of_random", BestOfRandom, replace=True)
    worldmodels.register_suite("oned", make_toy, replace=True)


def unregister() -> None:
    FAMILIES.unregister("linear")
    PLANNERS.unregister("best_of_random")
    SUITES.unregister("oned")
