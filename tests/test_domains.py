"""Domains: the spec grammar, physical and visual parameters, their draws and their record."""

import gymnasium as gym
import numpy as np
import pytest

from worldmodels.envs.domain_spec import DomainSpecError, ParamSpec, format_params, parse_params
from worldmodels.envs.domains import Domain
from worldmodels.envs.make import make_env, make_vector_env
from worldmodels.envs.visual import hue_matrix, transform
from worldmodels.run.collect import Collector, random_policy


@pytest.mark.parametrize(
    "text",
    [
        "masspole=0.5:2",
        "masspole==0.05:0.2,length=1.5",
        "body_mass[pole]=0.5:2,dof_damping=0.25:4",
        "visual.hue=-0.5:0.5,visual.brightness=0.6:1.4",
        "body_mass[a.b-c]=0.1:10",
    ],
)
def test_spec_round_trips(text):
    params = parse_params(text)
    assert parse_params(format_params(params)) == params
    grid = parse_params("length=0.25:4:9,masspole==0.1:0.5:5", mode="grid")
    assert parse_params(format_params(grid), mode="grid") == grid


def test_spec_meaning():
    (scale, absolute, visual) = parse_params("body_mass[pole]=0.5:2,masspole==0.05:0.2,visual.hue=-0.2:0.2")
    assert (scale.name, scale.target, scale.key) == ("body_mass", "pole", "body_mass[pole]")
    assert scale.scale and not absolute.scale and not visual.scale and visual.visual
    # Scales are drawn log-uniformly: half of them below the nominal value, half above.
    draws = np.array([scale.sample(np.random.default_rng(i)) for i in range(2000)])
    assert draws.min() >= 0.5 and draws.max() <= 2.0 and abs(np.mean(draws < 1.0) - 0.5) < 0.05
    assert parse_params("length=0.25:4:5", mode="grid")[0].grid() == pytest.approx([0.25, 0.5, 1, 2, 4])
    assert parse_params("length==1:3:3", mode="grid")[0].grid() == pytest.approx([1, 2, 3])


@pytest.mark.parametrize(
    "text, mode, message",
    [
        ("masspole=2:1", "range", "low end 2 is above the high end 1"),
        ("masspole=0:2", "range", "scales of the nominal value and must be > 0"),
        ("masspole=-1", "range", "must be > 0; for absolute values write masspole==-1"),
        ("masspole", "range", "is not NAME=VALUES"),
        ("masspole=a:b", "range", "'a' is not a number"),
        ("masspole=1,masspole=2", "range", "given twice"),
        ("masspole=1:2:3", "range", "grids of LOW:HIGH:N are for --vary"),
        ("masspole=1:2", "value", "--set takes one value"),
        ("masspole=1:2", "grid", "give LOW:HIGH:POINTS"),
        ("masspole=1:2:1.5", "grid", "an integer >= 2"),
        ("a=1:2:3,b=1:2:3,c=1:2:3", "grid", "one or two parameters"),
    ],
)
def test_bad_specs_say_what_fits(text, mode, message):
    with pytest.raises(DomainSpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_params(text, mode=mode)


def test_classic_constants_are_set_and_resampled_per_episode():
    env = make_env("CartPole-v1", randomize="masspole=0.5:2,length==0.3:0.8")
    inner = env.unwrapped
    seen = []
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        values = info["domain"]
        assert inner.masspole == pytest.approx(0.1 * values["masspole"])
        assert inner.length == pytest.approx(values["length"])
        # Constants derived from them follow (CartPole's dynamics use these, not masspole itself).
        assert inner.total_mass == pytest.approx(inner.masspole + inner.masscart)
        assert inner.polemass_length == pytest.approx(inner.masspole * inner.length)
        assert obs["domain"] == pytest.approx([values["masspole"], values["length"]])
        _, _, _, _, step_info = env.step(np.array([1.0, 0.0], np.float32))
        assert step_info["domain"] == values  # the whole episode is one domain
        seen.append(values["masspole"])
    assert len(set(seen)) == 4  # a new draw every episode
    env.reset(seed=2)
    assert env.unwrapped.masspole == pytest.approx(0.1 * seen[2])  # an episode's domain is a function of its seed
    env.close()


def test_unknown_classic_parameter_lists_the_names():
    with pytest.raises(DomainSpecError, match="has no parameter 'mass'; it has gravity, masscart, masspole"):
        make_env("CartPole-v1", randomize="mass=0.5:2")
    with pytest.raises(DomainSpecError, match=r"neither a MuJoCo env nor one of the classic-control envs"):
        make_env("FrozenLake-v1", randomize="gravity=2")


def test_mujoco_parameters_follow_the_draw():
    env = make_env("InvertedPendulum-v5", randomize="body_mass[pole]=0.5:2,dof_damping[hinge]=0.25:4,gravity==5")
    model = env.unwrapped.model
    mass0, inertia0, damping0 = model.body_mass.copy(), model.body_inertia.copy(), model.dof_damping.copy()
    pole, hinge_dof = model.body("pole").id, model.joint("hinge").dofadr[0]
    for seed in (0, 1):
        _, info = env.reset(seed=seed)
        d = info["domain"]
        assert model.body_mass[pole] == pytest.approx(mass0[pole] * d["body_mass[pole]"])
        assert model.body_inertia[pole] == pytest.approx(inertia0[pole] * d["body_mass[pole]"])
        assert model.body_mass[pole - 1] == mass0[pole - 1]  # the cart is untouched
        assert model.dof_damping[hinge_dof] == pytest.approx(damping0[hinge_dof] * d["dof_damping[hinge]"])
        assert model.dof_damping[1 - hinge_dof] == damping0[1 - hinge_dof]
        assert model.opt.gravity == pytest.approx([0, 0, -5])
        assert model.body_subtreemass[pole] == pytest.approx(model.body_mass[pole])  # derived constants recomputed
    env.close()


def test_mujoco_names_not_in_the_model_are_listed():
    with pytest.raises(DomainSpecError, match="no body named 'polx'.*its bodies: cart, pole"):
        make_env("InvertedPendulum-v5", randomize="body_mass[polx]=0.5:2")
    with pytest.raises(DomainSpecError, match="no joint named 'knee'.*its joints: slider, hinge"):
        make_env("InvertedPendulum-v5", randomize="dof_damping[knee]=2")
    with pytest.raises(DomainSpecError, match="no parameter 'mass'; they have body_mass, geom_friction"):
        make_env("InvertedPendulum-v5", randomize="mass=2")
    with pytest.raises(DomainSpecError, match=r"body_mass\[pole\] must be > 0"):
        make_env("InvertedPendulum-v5", randomize="body_mass[pole]==-1:2")
    with pytest.raises(DomainSpecError, match="masspole is a positive physical constant"):
        make_env("CartPole-v1", randomize="masspole==0")


def test_visual_parameters_need_an_image():
    with pytest.raises(DomainSpecError, match=r"visual.hue change what the camera sees.*--obs state"):
        make_env("CartPole-v1", randomize="visual.hue=-0.2:0.2")
    with pytest.raises(DomainSpecError, match="no visual parameter 'visual.colour'; the visual parameters are"):
        make_env("CartPole-v1", obs_mode="pixels", randomize="visual.colour=1")


def test_visual_transforms_are_pinned():
    rng = np.random.default_rng(0)
    frame = rng.integers(60, 190, (8, 8, 3)).astype(np.uint8)
    assert np.array_equal(transform(frame, {}), frame)
    assert np.abs(transform(frame, {"hue": 1.0}).astype(int) - frame).max() <= 1  # a whole turn
    assert np.array_equal(transform(frame, {"brightness": 0.5}), np.rint(frame / 2).astype(np.uint8))
    flat = transform(frame, {"contrast": 0.0})
    assert np.all(flat == flat[0, 0]) and abs(int(flat[0, 0, 0]) - frame.mean()) <= 0.5
    shifted = transform(frame, {"shift_x": 0.25})  # 2 of 8 columns: the picture moves right
    assert np.array_equal(shifted[:, 2:], frame[:, :-2]) and np.array_equal(shifted[:, :2], frame[:, :1].repeat(2, 1))
    # A hue rotation keeps luma and turns the colour: pure red goes towards green and blue.
    luma = np.array([0.299, 0.587, 0.114])
    turned = np.array([0.6, 0.2, 0.2]) @ hue_matrix(1 / 3).T
    assert luma @ turned == pytest.approx(luma @ [0.6, 0.2, 0.2]) and turned[0] < turned[1]
    noisy = transform(np.full((64, 64, 3), 128, np.uint8), {"noise": 0.02}, np.random.default_rng(1))
    assert noisy.astype(float).std() == pytest.approx(0.02 * 255, rel=0.1)


def test_visual_domain_changes_the_pixels_the_agent_sees():
    plain = make_env("CartPole-v1", obs_mode="pixels", image_size=32)
    dark = make_env("CartPole-v1", obs_mode="pixels", image_size=32, randomize="visual.brightness=0.5")
    a, _ = plain.reset(seed=0)
    b, _ = dark.reset(seed=0)
    assert abs(b["image"].mean() - a["image"].mean() / 2) < 1.0
    assert np.abs(dark.render().astype(float).mean() - plain.render().astype(float).mean() / 2) < 1.0
    plain.close()
    dark.close()


def test_domain_is_recorded_in_the_replay_next_to_its_steps():
    env = make_vector_env("CartPole-v1", 1, randomize="masspole=0.5:2")
    collector = Collector(env, seed=0)
    act = random_policy(make_env("CartPole-v1").action_spec, np.random.default_rng(0))
    records = [collector.step(act)[0] for _ in range(120)]
    env.close()
    domain = np.concatenate([r["domain"] for r in records])[:, 0]
    first = np.concatenate([r["is_first"] for r in records])
    starts = np.flatnonzero(first)
    assert len(starts) >= 3  # random CartPole episodes last ~20 steps
    for a, b in zip(starts, list(starts[1:]) + [len(first)]):
        assert np.all(domain[a:b] == domain[a])  # one domain per episode
    assert len({float(domain[s]) for s in starts}) == len(starts)  # redrawn at every episode


def test_domain_objects_merge_and_wrap_any_env():
    base = Domain.parse("masspole=0.5:2,length=0.5:2")
    fixed = base.merged(Domain.parse("length=3", flag="--set", mode="value"))
    assert fixed.names == ("masspole", "length") and fixed.params[1] == ParamSpec("length", None, 3.0, 3.0, False)
    env = fixed.wrap(gym.make("CartPole-v1"))
    _, info = env.reset(seed=0)
    assert env.unwrapped.length == pytest.approx(1.5) and info["domain"]["length"] == 3.0
