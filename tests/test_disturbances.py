"""Disturbances: pushes at the stated rate and size, action and observation noise, delays."""

import json

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch

from worldmodels.envs.disturbances import Disturbance
from worldmodels.envs.domain_spec import DomainSpecError
from worldmodels.envs.make import make_env


class ActionLog(gym.Wrapper):
    """Records the actions the env really executes."""

    def __init__(self, env):
        super().__init__(env)
        self.actions = []

    def step(self, action):
        self.actions.append(np.copy(action))
        return self.env.step(action)


def test_spec_round_trips_and_bad_specs_are_refused():
    d = Disturbance.parse("push=0.5@0.02,action_noise=0.1,obs_noise=0.01,delay=2")
    assert (d.push, d.push_prob, d.action_noise, d.obs_noise, d.delay) == (0.5, 0.02, 0.1, 0.01, 2)
    assert Disturbance.parse(d.text) == d and not Disturbance.parse("")
    assert Disturbance.parse("push[pole]=1@0.1").push_target == "pole"
    for text, message in [
        ("push=0.5", "push=SIZE@PROBABILITY"),
        ("push=0.5@2", r"probability per step must be in \[0, 1\]"),
        ("wind=3", "unknown disturbance 'wind'"),
        ("delay=1.5", "delay is a whole number"),
        ("adversarial=4", "give push=SIZE@PROB too"),
        ("push=1@0.1,adversarial=1", "give >= 2"),
        ("obs_noise=-1", ">= 0"),
        ("push=1@0.1,push=2@0.1", "push is given twice"),
        ("push=1@0,adversarial=2", "with SIZE and PROB > 0"),
    ]:
        with pytest.raises(DomainSpecError, match=message):
            Disturbance.parse(text)


def test_pushes_come_at_the_stated_rate_and_size():
    # CartPole: a push adds +-size to the pole's angular velocity before the step.
    env = Disturbance.parse("push=0.5@0.2").wrap(gym.make("CartPole-v1"))
    twin = gym.make("CartPole-v1")
    env.reset(seed=0)
    pushes, steps = 0, 0
    for _ in range(3000):
        state = np.array(env.unwrapped.state)
        twin.reset()
        twin.unwrapped.state = state.copy()
        expected, *_ = twin.step(1)
        obs, _, terminated, truncated, info = env.step(1)
        if info["push"]:
            pushes += 1
            undisturbed_theta_dot = expected[3]
            # The push changes theta_dot by +-0.5 before the step; one step of CartPole's Euler
            # integration carries it through, plus what the changed velocity does to the angle.
            assert abs(abs(obs[3] - undisturbed_theta_dot) - 0.5) < 0.05
        else:
            assert obs == pytest.approx(expected)
        steps += 1
        if terminated or truncated:
            env.reset()
    # Binomial(3000, 0.2): mean 600, std 22; 5 std either way.
    assert abs(pushes - 0.2 * steps) < 5 * np.sqrt(steps * 0.2 * 0.8)


def test_mujoco_push_changes_the_body_velocity_by_its_size():
    env = make_env("InvertedPendulum-v5", disturb="push=1.0@1.0")
    plain = make_env("InvertedPendulum-v5")
    env.reset(seed=0)
    plain.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    plain.step(np.zeros(1, np.float32))
    # A force of size x subtree mass / step time on the cart changes the velocity of the centre
    # of mass of the cart and its pole by size (the cart alone moves faster: the pole lags).
    velocities = []
    for e in (env, plain):
        model, data = e.unwrapped.model, e.unwrapped.data
        mujoco.mj_subtreeVel(model, data)
        velocities.append(data.subtree_linvel[1, 0])
    assert abs(velocities[0] - velocities[1]) == pytest.approx(1.0, rel=0.02)
    assert not env.unwrapped.data.xfrc_applied.any()  # released after the step


def test_action_noise_delay_and_observation_noise():
    log = ActionLog(gym.make("CartPole-v1"))
    env = Disturbance.parse("action_noise=0.3").wrap(log)
    env.reset(seed=0)
    for _ in range(2000):
        _, _, term, trunc, _ = env.step(1)
        if term or trunc:
            env.reset()
    flipped = np.mean(np.array(log.actions) == 0)
    assert abs(flipped - 0.15) < 0.03  # replaced with probability 0.3, by the other action half the time

    log = ActionLog(gym.make("Pendulum-v1"))
    env = Disturbance.parse("delay=2").wrap(log)
    env.reset(seed=0)
    sent = [np.array([v], np.float32) for v in (0.1, 0.2, 0.3, 0.4, 0.5)]
    for a in sent:
        env.step(a)
    executed = [float(a[0]) for a in log.actions]
    assert executed == pytest.approx([0.1, 0.1, 0.1, 0.2, 0.3])  # two steps late, the first action before

    plain, noisy = gym.make("Pendulum-v1"), Disturbance.parse("obs_noise=0.05").wrap(gym.make("Pendulum-v1"))
    diffs = []
    for seed in range(200):
        diffs.append(noisy.reset(seed=seed)[0] - plain.reset(seed=seed)[0])
    assert np.std(diffs) == pytest.approx(0.05, rel=0.15)

    log = ActionLog(gym.make("Pendulum-v1"))
    env = Disturbance.parse("action_noise=0.1").wrap(log)
    env.reset(seed=0)
    for _ in range(500):
        env.step(np.zeros(1, np.float32))
    assert np.std(log.actions) == pytest.approx(0.1 * 2.0, rel=0.15)  # 0.1 half-ranges of [-2, 2]


def test_disturbances_that_do_not_fit_the_env_are_refused():
    with pytest.raises(DomainSpecError, match="obs_noise perturbs state vectors"):
        make_env("CartPole-v1", obs_mode="pixels", disturb="obs_noise=0.01")
    with pytest.raises(DomainSpecError, match="probability of a random action, at most 1"):
        make_env("CartPole-v1", disturb="action_noise=1.5")
    with pytest.raises(DomainSpecError, match="no body named 'polx' to push; its bodies: cart, pole"):
        make_env("InvertedPendulum-v5", disturb="push[polx]=1@0.1")
    with pytest.raises(DomainSpecError, match="bodies are named only in MuJoCo envs; CartPoleEnv takes push=SIZE@PROB"):
        make_env("CartPole-v1", disturb="push[pole]=1@0.1")


def test_lookahead_restores_the_simulator():
    for env_id, action in (("CartPole-v1", 1), ("InvertedPendulum-v5", np.zeros(1, np.float32))):
        env = Disturbance.parse("push=0.5@1,adversarial=3").wrap(gym.make(env_id))
        twin = gym.make(env_id)
        env.reset(seed=4)
        twin.reset(seed=4)
        for _ in range(3):
            ahead = env.lookahead(action, env.physics.push_directions(np.random.default_rng(0), 1)[0])
            assert ahead is not None
            mine, *_ = env.env.step(action)  # below the disturbance: no push
            theirs, *_ = twin.step(action)
            assert mine == pytest.approx(theirs)  # looking ahead left no trace


def test_adversarial_push_is_never_better_for_the_agent_than_a_random_one(tmp_path):
    """The chosen push is the candidate with the lowest predicted return, so no random push of
    the same size (the first candidate is one) leaves the agent better off, as it predicts."""
    from tests.conftest import tiny_config
    from worldmodels.run.collect import AgentPolicy
    from worldmodels.run.runs import build_agent

    cfg = tiny_config(tmp_path, env="InvertedPendulum-v5", disturb="push=1.0@1,adversarial=4")
    env = make_env(cfg.env, disturb=cfg.disturb)
    agent = build_agent(cfg, env.obs_spec, env.action_spec)
    policy = AgentPolicy(agent)
    disturbed = env.env
    judged = []

    def judge(outcomes):
        scores = agent.predicted_return(policy.carry, outcomes)
        judged.append(scores)
        return int(torch.argmin(scores))

    disturbed.judge = judge
    obs, _ = env.reset(seed=0)
    first = np.array([True])
    for _ in range(3):
        action = policy({k: v[None] for k, v in obs.items()}, first)[0]
        obs, _, terminated, truncated, info = env.step(action)
        first = np.array([False])
        assert info["push"] == 1.0  # the full budget, every step (probability 1)
        if terminated or truncated:
            break
    assert judged and all(s.shape == (2,) for s in judged)  # along one axis: both ways
    assert all(float(s.min()) <= float(s[0]) for s in judged)  # never better than the random candidate
    assert any(float(s.max() - s.min()) > 0 for s in judged)  # the candidates really differ to the model
    # A push that ends the episode is worth its reward and nothing after it.
    ahead = disturbed.lookahead(np.zeros(1, np.float32), np.array([1.0, 0.0, 0.0]))
    torch.manual_seed(0)
    ending = agent.predicted_return(policy.carry, [(ahead[0], 1.0, True), (ahead[0], 1.0, False)])
    torch.manual_seed(0)
    future = agent.predicted_return(policy.carry, [(ahead[0], 0.0, True), (ahead[0], 0.0, False)])[1]
    assert float(ending[0]) == 1.0 and float(ending[1]) == pytest.approx(1.0 + float(future))


def test_adversarial_pushes_that_cannot_work_are_refused(tmp_path):
    from tests.conftest import tiny_config
    from worldmodels.config import validate
    from worldmodels.errors import RunConfigError
    from worldmodels.run.train import Trainer

    with pytest.raises(ValueError, match="use --envs 1"):
        validate(tiny_config(tmp_path, disturb="push=1@0.1,adversarial=4", envs=2))
    with pytest.raises(ValueError, match="use --action-repeat 1"):
        validate(tiny_config(tmp_path, disturb="push=1@0.1,adversarial=4", action_repeat=2))
    with pytest.raises(ValueError, match="V/M/C collects with a random policy"):
        validate(tiny_config(tmp_path, agent="vmc", disturb="push=1@0.1,adversarial=4"))
    with pytest.raises(RunConfigError, match="which pets does not give"):
        Trainer(tiny_config(tmp_path, agent="pets", env="Pendulum-v1", disturb="push=1@0.1,adversarial=4"))
    with pytest.raises(DomainSpecError, match="dm_control tasks do not allow"):
        make_env("dmc:cartpole-swingup", disturb="push=1@0.1,adversarial=4")


def test_training_with_adversarial_pushes_runs_and_resumes_its_distribution(tmp_path):
    from tests.conftest import tiny_config
    from worldmodels.run.train import Trainer

    cfg = tiny_config(tmp_path, env="CartPole-v1", steps=300, disturb="push=0.3@0.2,adversarial=3")
    trainer = Trainer(cfg, progress=False, echo=lambda *_: None)
    trainer.train()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["disturb"] == "push=0.3@0.2,adversarial=3"
