"""Safe (constrained) RL tasks as gymnasium envs (``safe:PointGoal``): each step also reports a cost.

The cost convention is Safety-Gymnasium's: every ``step`` puts ``info["cost"]``, a float >= 0, the
cost paid on that step, beside an unchanged reward; a constrained agent keeps the episode's summed
cost under a budget while it maximises the return. Every env of the suite has ``reports_cost = True``
(on the env or its outermost cost wrapper), which ``env.get_wrapper_attr("reports_cost")`` finds,
and a ``set_difficulty(level)`` for ``--curriculum``: level 0 an easy version of the task (a
narrow zone, small hazards, a loose speed limit), level 1 the task as given.

- ``CartPoleZone``: gymnasium's CartPole (500 steps); cost 1 on a step ending with the cart's
  ``|x| > zone`` (default 1.0; the track ends at 2.4). The forbidden zone is tinted in the frame.
- ``PointGoal``: a 2-D point robot pushed by a force towards a goal (150 steps); cost 1 on a
  step ending inside a hazard, by default one disc on the straight line from the start to the goal.
- ``HalfCheetahVelocity``, ``HopperVelocity``, ``Walker2dVelocity``: gymnasium's MuJoCo ``-v5``
  envs (1000 steps); cost 1 on a step whose forward velocity exceeds Safety-Gymnasium's
  threshold for the robot (``threshold=`` overrides it).

Safety-Gymnasium itself is not used: every release (up to 1.0.0) pins gymnasium==0.28.1 and
mujoco==2.3.3, so pip cannot install it beside gymnasium 1.x and mujoco 3 (constraints.txt).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from ..errors import UnknownEnvError

# Safety-Gymnasium 1.0.0's velocity tasks, safety_gymnasium/tasks/safe_velocity/*_v1.py
# (SafetyHalfCheetahVelocity-v1 etc.): ``cost = float(x_velocity > self._velocity_threshold)``.
VELOCITY_THRESHOLDS: dict[str, float] = {
    "HalfCheetah-v5": 3.2096,
    "Hopper-v5": 0.7402,
    "Walker2d-v5": 2.3415,
}


# CartPoleZone's zone at curriculum level 0: only the last 0.4 of the track on either side.
EASIEST_ZONE = 2.0


def check_level(level: float) -> float:
    """A curriculum level, in [0, 1] (0 the easiest version of a task, 1 the task as given)."""
    level = float(level)
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"a difficulty level is in [0, 1], got {level}")
    return level


class CartPoleZone(CartPoleEnv):
    """CartPole with a forbidden zone at both ends of the track: cost 1.0 on every step that
    ends with ``|x| > zone``. Reward, termination and dynamics are CartPole's, so its physical
    constants are randomisable as CartPole's are (envs/physics.py finds them through the MRO)."""

    reports_cost = True
    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}
    _ZONE_TINT = np.array([255.0, 90.0, 90.0])

    def __init__(self, zone: float = 1.0, render_mode: str | None = "rgb_array", **kwargs):
        super().__init__(render_mode=render_mode, **kwargs)
        if not 0.0 < zone < self.x_threshold:
            raise ValueError(f"zone must lie inside the track (0 < zone < {self.x_threshold}), got {zone}")
        self.zone = self.final_zone = float(zone)
        self.difficulty = 1.0  # the curriculum's level: 1, the task as given

    def set_difficulty(self, level: float) -> None:
        """Curriculum (``--curriculum``): at level 0 the zone starts at 2.0, near the track's ends; at 1
        it is ``zone``."""
        self.difficulty = check_level(level)
        easiest = max(EASIEST_ZONE, self.final_zone)
        self.zone = easiest + (self.final_zone - easiest) * self.difficulty

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info = {**info, "cost": float(abs(self.state[0]) > self.zone)}
        return obs, reward, terminated, truncated, info

    def render(self):
        frame = super().render()
        if frame is None:
            return frame
        # The columns CartPoleEnv.render draws at |x| > zone, with its own world-to-pixel scale.
        scale = self.screen_width / (2 * self.x_threshold)
        columns = np.arange(frame.shape[1]) + 0.5
        outside = np.abs(columns - self.screen_width / 2.0) > self.zone * scale
        frame = np.array(frame)  # pixels3d's copy may be read-only
        frame[:, outside] = (0.75 * frame[:, outside] + 0.25 * self._ZONE_TINT).astype(np.uint8)
        return frame


class PointGoal(gym.Env):
    """A point robot in the arena ``[-1, 1]^2`` pushed by a force towards a goal past hazards.

    Each step (``dt`` = 0.1): ``v <- v + dt (gain a - damping v)``, ``p <- p + dt v``; the walls
    stop the position and the velocity into them. It starts near ``(-0.8, 0)`` at rest; reaching
    the goal at ``(0.8, 0)`` (within 0.1) pays 1.0 and ends the episode. The reward is the progress
    towards the goal (10 x the distance gained) less 0.01 a step; the cost is 1.0 on each step that
    ends inside a hazard (``hazards``: ``(x, y, radius)`` discs). The default hazard sits on the
    straight line to the goal: the shortest path pays for it, a detour around it costs a few steps.

    Observation (float32): ``[px, py, vx, vy, gx - px, gy - py]`` then ``[hx - px, hy - py]`` for each
    hazard: the state, and where the goal and hazards are relative to the robot.
    """

    reports_cost = True
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    dt = 0.1
    # Terminal speed gain/damping = 1.2 a second: at full force from rest the robot crosses the
    # arena in ~26 steps and reaches the goal in ~21, a plan long enough to need a model.
    gain = 1.2
    damping = 1.0
    start = np.array([-0.8, 0.0])
    start_noise = 0.1
    goal = np.array([0.8, 0.0])
    goal_radius = 0.1
    goal_bonus = 1.0
    progress_weight = 10.0
    time_penalty = 0.01
    robot_radius = 0.05

    def __init__(
        self,
        hazards: Sequence[Sequence[float]] = ((0.0, 0.0, 0.3),),
        *,
        render_mode: str | None = "rgb_array",
        render_size: int = 64,
    ):
        self.hazards = np.array(hazards, dtype=np.float64).reshape(-1, 3) if len(hazards) else np.zeros((0, 3))
        if np.any(self.hazards[:, 2] <= 0):
            raise ValueError(f"hazards are (x, y, radius) with radius > 0, got {hazards!r}")
        self.radii = self.hazards[:, 2].copy()  # the full size, which the curriculum grows towards
        self.difficulty = 1.0
        self.render_mode, self.render_size = render_mode, int(render_size)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        size = 6 + 2 * len(self.hazards)
        self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self.pos = self.start.copy()
        self.vel = np.zeros(2)

    def set_difficulty(self, level: float) -> None:
        """Curriculum (``--curriculum``): hazards grow from a quarter of their radius at level 0 to
        their full size at 1."""
        self.difficulty = check_level(level)
        self.hazards[:, 2] = self.radii * (0.25 + 0.75 * self.difficulty)

    def _obs(self) -> np.ndarray:
        rel_hazards = (self.hazards[:, :2] - self.pos).reshape(-1)
        return np.concatenate([self.pos, self.vel, self.goal - self.pos, rel_hazards]).astype(np.float32)

    def _goal_distance(self) -> float:
        return float(np.linalg.norm(self.goal - self.pos))

    def _in_hazard(self) -> bool:
        distances = np.linalg.norm(self.hazards[:, :2] - self.pos, axis=1)
        return bool(np.any(distances < self.hazards[:, 2]))

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        noise = self.np_random.uniform(-self.start_noise, self.start_noise, size=2)
        self.pos, self.vel = self.start + noise, np.zeros(2)
        return self._obs(), {}

    def step(self, action):
        force = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        before = self._goal_distance()
        self.vel = self.vel + self.dt * (self.gain * force - self.damping * self.vel)
        self.pos = self.pos + self.dt * self.vel
        # A wall stops the robot: the velocity into it goes, the velocity along it stays.
        hit = np.abs(self.pos) > 1.0
        self.vel[hit & (np.sign(self.vel) == np.sign(self.pos))] = 0.0
        self.pos = np.clip(self.pos, -1.0, 1.0)
        after = self._goal_distance()
        reward = self.progress_weight * (before - after) - self.time_penalty
        terminated = after < self.goal_radius
        if terminated:
            reward += self.goal_bonus
        info = {"cost": float(self._in_hazard()), "goal_distance": after}
        return self._obs(), float(reward), terminated, False, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        size = self.render_size
        # Pixel centres in arena units, y up (row 0 is the top wall).
        centres = (np.arange(size) + 0.5) / size * 2.0 - 1.0
        x, y = np.meshgrid(centres, centres[::-1])
        frame = np.full((size, size, 3), (235, 235, 228), dtype=np.uint8)
        # At least half a pixel's diagonal, so a small robot never falls between pixel centres.
        least = 1.5 / size

        def disc(cx: float, cy: float, radius: float, colour: tuple[int, int, int]) -> None:
            frame[(x - cx) ** 2 + (y - cy) ** 2 < max(radius, least) ** 2] = colour

        for hx, hy, radius in self.hazards:
            disc(hx, hy, radius, (70, 110, 225))
        disc(*self.goal, self.goal_radius, (50, 180, 70))
        disc(*self.pos, self.robot_radius, (220, 35, 35))
        return frame


class VelocityCost(gym.Wrapper):
    """Safety-Gymnasium's velocity constraint on a gymnasium MuJoCo env: cost 1.0 on a step whose
    ``info["x_velocity"]`` exceeds ``threshold``. A plain wrapper, so ``env.unwrapped`` stays the
    MuJoCo env (its model is what domain randomisation changes)."""

    reports_cost = True

    def __init__(self, env: gym.Env, threshold: float):
        super().__init__(env)
        self.threshold = self.final_threshold = float(threshold)
        self.difficulty = 1.0

    def set_difficulty(self, level: float) -> None:
        """Curriculum (``--curriculum``): the speed limit falls from twice ``threshold`` at level 0 to
        ``threshold`` at 1."""
        self.difficulty = check_level(level)
        self.threshold = self.final_threshold * (2.0 - self.difficulty)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "cost": float(info["x_velocity"] > self.threshold)}
        return obs, reward, terminated, truncated, info


def _cartpole_zone(render_size: int, zone: float = 1.0, **kwargs) -> gym.Env:
    # The frame is CartPole's 600x400 whatever render_size is; the model's adapter resizes it.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame renders without a screen
    return gym.wrappers.TimeLimit(CartPoleZone(zone=zone, **kwargs), 500)  # CartPole-v1's limit


def _point_goal(render_size: int, **kwargs) -> gym.Env:
    return gym.wrappers.TimeLimit(PointGoal(render_size=render_size, **kwargs), 150)


def _velocity(env_id: str) -> Callable[..., gym.Env]:
    def make(render_size: int, threshold: float | None = None, **kwargs) -> gym.Env:
        # EGL renders headless without a display; set before mujoco's GL context is first created.
        os.environ.setdefault("MUJOCO_GL", "egl")
        kwargs = {"width": render_size, "height": render_size, **kwargs}
        try:
            env = gym.make(env_id, render_mode="rgb_array", **kwargs)
        except gym.error.DependencyNotInstalled as err:
            raise UnknownEnvError(
                f"safe:{env_id.split('-')[0]}Velocity needs mujoco: pip install -c constraints.txt mujoco ({err})"
            ) from err
        # Default render settings are slow on CPU (4096 shadow map, 4x multisampling; docs/PLATFORM.md).
        vis = env.unwrapped.model.vis
        vis.quality.shadowsize = 512
        vis.quality.offsamples = 0
        return VelocityCost(env, VELOCITY_THRESHOLDS[env_id] if threshold is None else threshold)

    return make


TASKS: dict[str, Callable[..., gym.Env]] = {
    "CartPoleZone": _cartpole_zone,
    "PointGoal": _point_goal,
    "HalfCheetahVelocity": _velocity("HalfCheetah-v5"),
    "HopperVelocity": _velocity("Hopper-v5"),
    "Walker2dVelocity": _velocity("Walker2d-v5"),
}


def make_safe(task: str, *, render_size: int = 64, **kwargs) -> gym.Env:
    """The ``safe`` suite: ``task`` is one of :data:`TASKS` (``PointGoal``, ``CartPoleZone``, ...);
    ``kwargs`` go to the task (``zone=``, ``hazards=``, ``threshold=``; the MuJoCo tasks pass the
    rest to ``gym.make``). Every step's ``info["cost"]`` is the cost paid on it."""
    if task not in TASKS:
        close = difflib.get_close_matches(task, list(TASKS), n=1, cutoff=0.0)
        raise UnknownEnvError(
            f"unknown safe task safe:{task}; the tasks are {', '.join(f'safe:{t}' for t in TASKS)}; "
            f"closest: safe:{close[0]}"
        )
    return TASKS[task](render_size, **kwargs)
