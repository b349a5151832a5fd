"""The ``safe:`` suite (worldmodels/envs/safe.py): each step's ``info["cost"]`` is what it claims."""

import numpy as np
import pytest

from worldmodels.envs.make import make_env
from worldmodels.envs.safe import TASKS, VELOCITY_THRESHOLDS, PointGoal, make_safe
from worldmodels.errors import UnknownEnvError

RIGHT, LEFT = np.array([0.0, 1.0]), np.array([1.0, 0.0])  # CartPole's actions as the model's one-hots


def _red(frame: np.ndarray) -> np.ndarray:
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return (r > 150) & (g < 90) & (b < 90)


def _drive_cart(env, start: list[float], action: np.ndarray, zone: float) -> list[float]:
    """Step from ``start`` with one action until the episode ends; every cost must be the zone's."""
    env.reset(seed=0)
    env.unwrapped.state = np.array(start)
    costs = []
    for _ in range(40):
        _, _, terminated, truncated, info = env.step(action)
        assert isinstance(info["cost"], float)
        assert info["cost"] == float(abs(env.unwrapped.state[0]) > zone)
        costs.append(info["cost"])
        if terminated or truncated:
            break
    return costs


def test_cartpole_zone_costs_exactly_beyond_the_zone():
    env = make_env("safe:CartPoleZone")  # default zone 1.0; the model's adapter passes the raw info
    costs = _drive_cart(env, [0.9, 1.0, 0.0, 0.0], RIGHT, zone=1.0)
    assert 0.0 in costs and 1.0 in costs  # it started inside and drove out
    env.close()
    env = make_safe("CartPoleZone", zone=0.5)  # the other side, another zone
    costs = _drive_cart(env, [-0.4, -1.0, 0.0, 0.0], 0, zone=0.5)
    assert 0.0 in costs and 1.0 in costs
    env.close()


def test_cartpole_zone_tints_the_forbidden_columns():
    env = make_safe("CartPoleZone")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (400, 600, 3) and frame.dtype == np.uint8
    edge, middle = frame[5, 5].astype(int), frame[5, 300].astype(int)  # the sky above the track
    assert tuple(middle) == (255, 255, 255) and edge[0] > edge[1] + 20
    env.close()


def test_cartpole_zone_is_randomised_like_cartpole():
    env = make_env("safe:CartPoleZone", randomize="masspole=0.5:2.0")  # found through CartPoleEnv in the MRO
    _, info = env.reset(seed=3)
    inner = env.unwrapped
    assert "masspole" in info["domain"] and 0.05 <= inner.masspole <= 0.2 and inner.masspole != 0.1
    assert inner.total_mass == pytest.approx(inner.masspole + inner.masscart)
    _, _, _, _, info = env.step(RIGHT)
    assert info["cost"] == 0.0
    env.close()


def test_point_goal_observation_is_the_state_and_relative_vectors():
    hazards = [(0.2, 0.3, 0.1), (-0.5, 0.5, 0.2)]
    env = make_safe("PointGoal", hazards=hazards)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (10,) and obs.dtype == np.float32 and env.observation_space.contains(obs)
    pos = obs[:2]
    assert np.all(np.abs(pos - PointGoal.start) <= PointGoal.start_noise) and np.all(obs[2:4] == 0)
    np.testing.assert_allclose(obs[4:6], PointGoal.goal - pos, atol=1e-6)
    np.testing.assert_allclose(obs[6:10], (np.array(hazards)[:, :2] - pos).reshape(-1), atol=1e-6)
    obs, *_ = env.step(np.array([1.0, 0.5], np.float32))
    assert np.all(obs[2:4] > 0)  # the force moved it
    np.testing.assert_allclose(obs[4:6], PointGoal.goal - obs[:2], atol=1e-6)
    assert make_safe("PointGoal").observation_space.shape == (8,)  # one hazard by default
    env.close()


def test_point_goal_walls_stop_the_robot():
    env = make_safe("PointGoal")
    env.reset(seed=0)
    for _ in range(30):
        obs, *_ = env.step(np.array([-1.0, 0.0], np.float32))
    assert obs[0] == -1.0 and obs[2] == 0.0
    env.close()


def _toward(obs: np.ndarray, target: np.ndarray, damp_sideways: float = 0.0) -> np.ndarray:
    """Full force towards ``target``, less ``damp_sideways`` x the velocity across that line."""
    pos, vel = obs[:2], obs[2:4]
    unit = (target - pos) / np.linalg.norm(target - pos)
    action = unit - damp_sideways * (vel - (vel @ unit) * unit) / (PointGoal.gain / PointGoal.damping)
    return (action / max(1.0, np.linalg.norm(action))).astype(np.float32)


def _episode(env, seed: int, detour: bool) -> tuple[float, float, int, bool]:
    obs = env.reset(seed=seed)[0]["vector"]
    total = cost = 0.0
    around = detour  # heading for the waypoint above the hazard until it is level with it
    for steps in range(1, 200):
        goal = obs[:2] + obs[4:6]
        around = around and obs[0] < -0.1
        action = _toward(obs, np.array([0.0, 0.5]), 2.0) if around else _toward(obs, goal, 2.0 if detour else 0.0)
        out, reward, terminated, truncated, info = env.step(action)
        obs, total, cost = out["vector"], total + reward, cost + info["cost"]
        if terminated or truncated:
            return total, cost, steps, terminated
    raise AssertionError("the episode did not end")


def test_point_goal_shortcut_pays_and_the_detour_is_safe():
    env = make_env("safe:PointGoal")
    for seed in range(3):
        straight, straight_cost, straight_steps, reached = _episode(env, seed, detour=False)
        assert reached and straight_cost > 0  # the straight line crosses the hazard
        around, around_cost, around_steps, reached = _episode(env, seed, detour=True)
        assert reached and around_cost == 0.0
        assert around >= 0.8 * straight and around_steps <= straight_steps + 10
    env.close()


def test_point_goal_reset_seed_gives_the_same_start():
    env = make_safe("PointGoal")
    first, again, other = env.reset(seed=7)[0], env.reset(seed=7)[0], env.reset(seed=8)[0]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    env.close()


def test_point_goal_renders_the_scene():
    env = make_safe("PointGoal", render_size=48)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8
    assert _red(frame).any()
    assert (frame[24, 24] == (70, 110, 225)).all()  # the hazard at the centre
    env.close()
    env = make_env("safe:PointGoal", obs_mode="pixels", image_size=32)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"image"} and obs["image"].shape == (32, 32, 3) and _red(obs["image"]).any()
    env.close()


def test_half_cheetah_costs_above_safety_gymnasiums_threshold():
    pytest.importorskip("mujoco")
    env = make_safe("HalfCheetahVelocity")
    assert type(env.unwrapped).__name__ == "HalfCheetahEnv"  # domain randomisation finds its model
    threshold = VELOCITY_THRESHOLDS["HalfCheetah-v5"]
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(200):
        *_, info = env.step(env.action_space.sample())
        assert info["cost"] == float(info["x_velocity"] > threshold)
    # Random actions stay below 3.2 m/s: launch the torso forward to see the cost fire.
    qpos, qvel = env.unwrapped.data.qpos.copy(), env.unwrapped.data.qvel.copy()
    qvel[0] = 8.0
    env.unwrapped.set_state(qpos, qvel)
    *_, info = env.step(np.zeros(6, np.float32))
    assert info["x_velocity"] > threshold and info["cost"] == 1.0
    env.close()


def test_velocity_threshold_override():
    pytest.importorskip("mujoco")
    env = make_env("safe:HalfCheetahVelocity", env_kwargs={"threshold": 0.0})
    env.reset(seed=0)
    rng, costs = np.random.default_rng(0), []
    for _ in range(100):
        *_, info = env.step(rng.uniform(-1, 1, 6).astype(np.float32))
        assert info["cost"] == float(info["x_velocity"] > 0.0)
        costs.append(info["cost"])
    assert 1.0 in costs and 0.0 in costs
    env.close()


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_reports_cost(task):
    if "Velocity" in task:
        pytest.importorskip("mujoco")
    env = make_env(f"safe:{task}")
    assert env.get_wrapper_attr("reports_cost") is True
    env.reset(seed=0)
    *_, info = env.step(env.action_space.sample())
    assert isinstance(info["cost"], float) and info["cost"] >= 0.0
    env.close()


def test_unknown_task_names_the_closest():
    with pytest.raises(UnknownEnvError, match="closest: safe:PointGoal"):
        make_env("safe:PointGoals")
    with pytest.raises(UnknownEnvError, match="closest: safe:CartPoleZone"):
        make_safe("CartPoleZon")
