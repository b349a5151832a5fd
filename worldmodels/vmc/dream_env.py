"""The MDN-RNN as an environment: the controller acts inside the model's dream.

Observations are what the controller sees, ``[z, h]`` (or ``[z, h, c]``); an action advances the
LSTM, the next ``z`` is sampled from the mixture at temperature ``tau``, the reward is the reward
head's and the episode ends where the done head's logit exceeds ``done_threshold`` (0, the
paper's rule, unless calibrated: see ``vmc/stages.py``) or after ``max_steps``.
Episodes start from latents of real first frames.

:class:`DreamVecEnv` is a gymnasium vector env (next-step autoreset, like gymnasium's own), so a
whole CMA-ES population rolls out as one batch; ``reset_torch``/``step_torch`` skip numpy for the
evolution loop. :class:`DreamEnv` is the single-env view (gymnasium's ``check_env`` passes).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from ..agents.vmc import controller_features, feature_size
from ..models.mdnrnn import MDNRNN


class DreamVecEnv(gym.vector.VectorEnv):
    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        mdnrnn: MDNRNN,
        starts: Tensor,
        action_dim: int,
        *,
        num_envs: int,
        temperature: float = 1.0,
        max_steps: int = 1000,
        cell: bool = False,
        seed: int = 0,
        done_threshold: float = 0.0,
    ):
        if temperature <= 0:
            raise ValueError(f"the dream's temperature must be > 0 (try 1.0 or 1.15), got {temperature}")
        if starts.ndim != 2 or starts.shape[1] != mdnrnn.z or len(starts) == 0:
            raise ValueError(f"starts must be (N, {mdnrnn.z}) latents of real first frames, got {tuple(starts.shape)}")
        self.model, self.starts = mdnrnn.eval(), starts.float()
        self.num_envs, self.temperature, self.max_steps, self.cell = num_envs, temperature, max_steps, cell
        self.done_threshold = done_threshold
        feat = feature_size(mdnrnn.z, mdnrnn.units, cell)
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (feat,), np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.generator = torch.Generator().manual_seed(seed)
        self._needs_reset = torch.zeros(num_envs, dtype=torch.bool)

    # ---------------------------------------------------------------- torch API
    def _fresh(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        pick = torch.randint(len(self.starts), (n,), generator=self.generator)
        h, c = self.model.initial(n)
        return self.starts[pick], h, c

    def _obs(self) -> Tensor:
        return controller_features(self.z, (self.h, self.c), self.cell)

    @torch.no_grad()
    def reset_torch(self, seed: int | None = None) -> Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        self.z, self.h, self.c = self._fresh(self.num_envs)
        self.t = torch.zeros(self.num_envs, dtype=torch.long)
        self._needs_reset = torch.zeros(self.num_envs, dtype=torch.bool)
        return self._obs()

    @torch.no_grad()
    def step_torch(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``actions (N, A)`` -> observation, reward, terminated, truncated (all tensors)."""
        out, (h, c) = self.model.step(self.z, actions.float(), (self.h, self.c))
        z, reward, done = self.model.sample(out, self.temperature, self.generator, self.done_threshold)
        self.z, self.h, self.c, self.t = z, h, c, self.t + 1
        truncated = (self.t >= self.max_steps) & ~done
        reward = reward.float()
        # Next-step autoreset: envs that ended last step start afresh now, ignoring the action.
        again = self._needs_reset
        if again.any():
            z0, h0, c0 = self._fresh(int(again.sum()))
            self.z[again], self.h[:, again], self.c[:, again], self.t[again] = z0, h0, c0, 0
            reward, done, truncated = reward.masked_fill(again, 0.0), done & ~again, truncated & ~again
        self._needs_reset = done | truncated
        return self._obs(), reward, done, truncated

    # ------------------------------------------------------------ gymnasium API
    def reset(self, *, seed=None, options=None):
        return self.reset_torch(seed).numpy().astype(np.float32), {}

    def step(self, actions):
        obs, reward, term, trunc = self.step_torch(torch.as_tensor(np.asarray(actions), dtype=torch.float32))
        return obs.numpy().astype(np.float32), reward.numpy().astype(np.float64), term.numpy(), trunc.numpy(), {}


class DreamEnv(gym.Env):
    """One dream, as a plain gymnasium env (for users and ``check_env``)."""

    metadata = {"render_modes": []}

    def __init__(self, mdnrnn: MDNRNN, starts: Tensor, action_dim: int, **kwargs):
        self.vec = DreamVecEnv(mdnrnn, starts, action_dim, num_envs=1, **kwargs)
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        obs = self.vec.reset_torch(seed if seed is not None else int(self.np_random.integers(2**31)))
        return obs[0].numpy().astype(np.float32), {}

    def step(self, action):
        obs, reward, term, trunc = self.vec.step_torch(torch.as_tensor(np.asarray(action), dtype=torch.float32)[None])
        return obs[0].numpy().astype(np.float32), float(reward[0]), bool(term[0]), bool(trunc[0]), {}
