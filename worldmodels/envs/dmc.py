"""dm_control suite tasks as gymnasium envs (``dmc:walker-walk``), rendering headless on CPU."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..errors import UnknownEnvError


def _suite():
    # EGL renders headless without a display; set before mujoco's GL context is first created.
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        from dm_control import suite
    except ImportError as err:  # pragma: no cover - depends on the install
        raise UnknownEnvError(
            f"dmc tasks need dm_control, which is not installed: pip install -c constraints.txt -e '.[dmc]' ({err})"
        ) from err
    return suite


def make_dmc(task: str, *, render_size: int = 64, **kwargs) -> gym.Env:
    """The ``dmc`` suite: ``task`` is ``domain-task`` (``walker-walk``, ``ball_in_cup-catch``);
    dashes after the first are the task's underscores. ``kwargs`` go to :class:`DMCEnv`."""
    domain, _, name = task.partition("-")
    return DMCEnv(domain, name.replace("-", "_"), render_size=render_size, **kwargs)


class DMCEnv(gym.Env):
    """A dm_control task with a flat float observation and its bounded action space."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, domain: str, task: str, *, render_size: int = 64, seed: int | None = None):
        suite = _suite()
        if (domain, task) not in suite.ALL_TASKS:
            names = [f"dmc:{d}-{t}" for d, t in suite.ALL_TASKS]
            import difflib

            close = difflib.get_close_matches(f"dmc:{domain}-{task}", names, n=5, cutoff=0.4)
            raise UnknownEnvError(
                f"unknown dm_control task dmc:{domain}-{task}; closest: {', '.join(close) or names[:5]}"
            )
        self._env = suite.load(domain, task, task_kwargs={"random": seed})
        # Default render settings are slow on CPU (4096 shadow map, 4x multisampling).
        vis = self._env.physics.model.vis
        vis.quality.shadowsize = 512
        vis.quality.offsamples = 0
        self.render_mode = "rgb_array"
        self.render_size = render_size
        spec = self._env.action_spec()
        self.action_space = spaces.Box(
            spec.minimum.astype(np.float32), spec.maximum.astype(np.float32), dtype=np.float32
        )
        size = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
        self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float32)

    def _flat(self, time_step) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float32).reshape(-1) for v in time_step.observation.values()])

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.task.random.seed(seed)
        return self._flat(self._env.reset()), {}

    def step(self, action):
        ts = self._env.step(action)
        terminated = ts.last() and ts.discount == 0.0
        truncated = ts.last() and not terminated
        return self._flat(ts), float(ts.reward or 0.0), terminated, truncated, {}

    def mujoco_handles(self):
        """``(MjModel, MjData, seconds per env step)``: what envs/physics.py changes and pushes."""
        physics = self._env.physics
        return physics.model.ptr, physics.data.ptr, float(self._env.control_timestep())

    def render(self):
        return self._env.physics.render(self.render_size, self.render_size, camera_id=0)
