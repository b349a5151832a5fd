import pickle

import numpy as np
import pytest

from worldmodels.envs.make import env_factory, make_env
from worldmodels.errors import UnknownEnvError, UnsupportedSpaceError, WorldModelsError
from worldmodels.registry import SUITES, register_suite


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


def _toy_suite(made: list):
    def make(task: str, *, length: int = 10):  # no render_size: make_env must not pass it
        from tests.toy_envs import CueEnv

        made.append((task, length))
        return CueEnv(length=length)

    return make


def test_a_registered_suite_makes_prefixed_ids():
    made: list = []
    register_suite("toy", _toy_suite(made), extra="toyextra")
    try:
        env = make_env("toy:any-task_name", env_kwargs={"length": 3}, max_episode_steps=2)
        assert made == [("any-task_name", 3)]
        env.reset(seed=0)
        *_, truncated, _ = env.step(np.array([1.0, 0.0]))
        assert not truncated
        *_, truncated, _ = env.step(np.array([1.0, 0.0]))
        assert truncated  # the TimeLimit, before the env's own 3 steps
        env.close()
        with pytest.raises(UnknownEnvError, match="toy:TASK"):  # listed for unknown ids
            make_env("NoSuchEnvAtAll-v0")
        with pytest.raises(WorldModelsError, match="colour"):
            make_env("toy:x", env_kwargs={"colour": "red"})
    finally:
        SUITES.unregister("toy")
    assert "toy" not in SUITES.names()


def test_a_suite_gets_render_size_when_it_takes_it():
    seen = {}

    def make(task, **kwargs):
        from tests.toy_envs import CueEnv

        seen.update(kwargs)
        return CueEnv()

    register_suite("toy", make)
    try:
        make_env("toy:t", image_size=32).close()
        assert seen == {"render_size": 32}
        make_env("toy:t", render_size=48, env_kwargs={"render_size": 16}).close()
        assert seen == {"render_size": 16}  # env_kwargs win
    finally:
        SUITES.unregister("toy")


def test_a_suite_whose_package_is_missing_names_its_extra():
    def make(task):
        raise ModuleNotFoundError("No module named 'toylib'", name="toylib")

    register_suite("toy", make, extra="toyextra")
    register_suite("toylazy", "nosuchpkg_xyz.suite:make", extra="lazyextra")
    try:
        with pytest.raises(UnknownEnvError, match=r"pip install -c constraints.txt -e '\.\[toyextra\]'"):
            make_env("toy:t")
        with pytest.raises(UnknownEnvError, match=r"-e '\.\[lazyextra\]'"):
            make_env("toylazy:t")
    finally:
        SUITES.unregister("toy")
        SUITES.unregister("toylazy")


def test_env_kwargs_reach_the_env_and_survive_the_factory():
    env = make_env("Pendulum-v1", env_kwargs={"g": 3.0})
    assert env.unwrapped.g == 3.0
    env.close()
    factory = pickle.loads(pickle.dumps(env_factory("Pendulum-v1", env_kwargs={"g": 4.0})))
    env = factory()
    assert env.unwrapped.g == 4.0
    env.close()


def test_a_bad_env_kwarg_names_the_env_and_the_keyword():
    with pytest.raises(WorldModelsError, match="Pendulum-v1.*gravity_typo") as info:
        make_env("Pendulum-v1", env_kwargs={"gravity_typo": 3.0})
    assert isinstance(info.value, (UnknownEnvError, ValueError))


def test_module_colon_id_imports_the_module():
    env = make_env("gymnasium.envs.classic_control:CartPole-v1", obs_mode="both", image_size=16)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (16, 16, 3)  # rendering found through the module:Id spec
    env.close()
    with pytest.raises(UnknownEnvError, match="pip install nosuchpkg-xyz"):
        make_env("nosuchpkg_xyz:Foo-v0")
    with pytest.raises(UnknownEnvError, match="CartPole-v1"):
        make_env("gymnasium.envs.classic_control:CartPol-v1")


def test_make_dmc_parses_domain_and_task():
    pytest.importorskip("dm_control")
    from worldmodels.envs.dmc import make_dmc

    env = make_dmc("ball_in_cup-catch", render_size=24)
    assert env.render().shape == (24, 24, 3)
    env.close()
    with pytest.raises(UnknownEnvError, match="dmc:cartpole-swingup"):
        make_dmc("cartpole-swingupp")


def test_a_provider_that_is_not_installed_names_its_package(monkeypatch):
    from worldmodels.envs import make

    monkeypatch.setitem(make.ENV_PROVIDERS, "FakeSuite/", make.Provider("nosuchpkg_xyz.envs", "fake-pkg"))
    monkeypatch.setitem(make.ENV_PROVIDERS, "FakeGames-", ("nosuchpkg_xyz", "fake-games", "fakeextra"))
    with pytest.raises(UnknownEnvError, match=r"FakeSuite/Thing-v0 needs fake-pkg: pip install fake-pkg"):
        make_env("FakeSuite/Thing-v0")
    with pytest.raises(UnknownEnvError, match=r"-e '\.\[fakeextra\]' \(or pip install fake-games\)"):
        make_env("FakeGames-Thing-v0")


def test_a_provider_prefix_is_only_imported_for_unregistered_ids(monkeypatch):
    from worldmodels.envs import make

    monkeypatch.setitem(make.ENV_PROVIDERS, "Cart", make.Provider("nosuchpkg_xyz", "fake-pkg"))
    make_env("CartPole-v1").close()  # registered already: the provider is not imported


def test_ale_ids_register_without_importing_ale_py():
    pytest.importorskip("ale_py")
    env = make_env("ALE/Pong-v5", obs_mode="state")
    assert env.obs_spec.image == (64, 64, 3) and env.obs_spec.vector is None
    assert env.action_spec.discrete
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    action = np.zeros(env.action_spec.dim, np.float32)
    action[0] = 1.0
    obs, reward, terminated, truncated, _ = env.step(action)
    assert obs["image"].shape == (64, 64, 3) and np.isfinite(reward)
    env.close()


def test_vizdoom_ids_register_on_demand():
    pytest.importorskip("vizdoom.gymnasium_wrapper")
    env = make_env("VizdoomTakeCover-v1", obs_mode="state", image_size=32)
    assert env.obs_spec.image == (32, 32, 3)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (32, 32, 3)
    action = np.zeros(env.action_spec.dim, np.float32)
    action[0] = 1.0
    obs, *_ = env.step(action)
    assert obs["image"].shape == (32, 32, 3)
    env.close()
