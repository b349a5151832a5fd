import numpy as np
import pytest

from worldmodels.envs.make import make_env
from worldmodels.errors import UnknownEnvError, UnsupportedSpaceError


def test_unknown_id_names_the_closest_registered_ids():
    with pytest.raises(UnknownEnvError, match="CartPole-v1"):
        make_env("CartPol-v1")


def test_unsupported_observation_space_says_what_is_supported():
    with pytest.raises(UnsupportedSpaceError, match="supported: Box"):
        make_env("wmtest/TextObs-v0")


def test_pixels_on_an_env_that_cannot_render():
    with pytest.raises(UnsupportedSpaceError, match="rgb_array"):
        make_env("wmtest/Counter-v0", obs_mode="pixels")


def test_pixels_and_both_give_resized_images():
    env = make_env("CartPole-v1", obs_mode="both", image_size=32)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (32, 32, 3) and obs["image"].dtype == np.uint8
    assert obs["vector"].shape == (4,)
    assert env.action_spec.discrete and env.action_spec.dim == 2
    obs, reward, *_ = env.step(np.array([1.0, 0.0]))
    assert reward == 1.0 and obs["image"].std() > 0  # a real frame, not a blank one
    env.close()


def test_continuous_actions_are_scaled_to_bounds():
    env = make_env("Pendulum-v1", action_repeat=2)
    assert not env.action_spec.discrete and env.action_spec.dim == 1
    env.reset(seed=0)
    _, reward, *_ = env.step(np.array([1.0]))
    assert reward < 0  # two Pendulum steps summed
    env.close()


def test_dm_control_renders_headless_and_unknown_tasks_are_named():
    pytest.importorskip("dm_control")
    env = make_env("dmc:cartpole-swingup", obs_mode="both")
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (64, 64, 3) and obs["vector"].shape == (5,)
    assert obs["image"].std() > 5  # a rendered scene, not a black frame
    assert not env.action_spec.discrete and env.action_spec.dim == 1
    obs, reward, terminated, truncated, _ = env.step(np.array([0.5]))
    assert 0 <= reward <= 1 and not terminated
    env.close()
    with pytest.raises(UnknownEnvError, match="dmc:cartpole-swingup"):
        make_env("dmc:cartpole-swingupp")
