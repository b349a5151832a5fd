import torch

from tests.conftest import TINY_MODEL
from worldmodels.agents.dreamer import make_dreamer
from worldmodels.config import DreamerConfig, ModelConfig
from worldmodels.specs import ActionSpec, ObsSpec

B, T, A = 3, 6, 2


def make(obs_spec: ObsSpec | None = None):
    obs_spec = obs_spec or ObsSpec(vector=3)
    return make_dreamer(obs_spec, ActionSpec(A, True), ModelConfig(**TINY_MODEL), DreamerConfig(horizon=4))


def batch(image=False):
    b = {
        "action": torch.nn.functional.one_hot(torch.randint(0, A, (B, T)), A).float(),
        "reward": torch.randn(B, T),
        "is_first": torch.zeros(B, T, dtype=torch.bool),
        "is_terminal": torch.zeros(B, T, dtype=torch.bool),
        "vector": torch.randn(B, T, 3),
    }
    if image:
        b["image"] = torch.randint(0, 255, (B, T, 16, 16, 3), dtype=torch.uint8)
    return b


def test_shapes_of_the_four_verbs():
    agent = make(ObsSpec(image=(16, 16, 3), vector=3))
    wm, data = agent.world_model, batch(image=True)
    losses, posts, _ = wm.loss(data)
    assert set(losses) == set(wm.loss_scales)
    assert all(v.shape == (B, T) for v in losses.values())
    D, S, C = TINY_MODEL["deter"], TINY_MODEL["stoch"], TINY_MODEL["classes"]
    assert posts.deter.shape == (B, T, D) and posts.stoch.shape == (B, T, S * C) and posts.logits.shape == (B, T, S, C)
    states, actions = wm.imagine(posts.map(lambda x: x[:, -1]), data["action"][:, :4])
    assert states.deter.shape == (B, 4, D) and actions.shape == (B, 4, A)
    pred = wm.predict(states.feat())
    assert pred["image"].shape == (B, 4, 16, 16, 3) and pred["vector"].shape == (B, 4, 3)
    assert pred["reward"].shape == (B, 4) and pred["cont"].shape == (B, 4)
    assert 0 <= pred["image"].min() and pred["image"].max() <= 1


def test_wrong_observation_shape_is_named():
    wm = make().world_model
    data = batch()
    data["vector"] = torch.randn(B, T, 5)
    try:
        wm.loss(data)
    except ValueError as err:
        assert "obs['vector']" in str(err) and "(3, 6, 3)" in str(err)
    else:
        raise AssertionError("expected a shape error")


def test_is_first_resets_the_state():
    wm = make().world_model
    data = batch()
    k = 3
    data["is_first"][:, k] = True
    prev = torch.cat([torch.zeros_like(data["action"][:, :1]), data["action"][:, :-1]], 1)
    obs = {"vector": data["vector"]}
    torch.manual_seed(5)
    embed = wm.encode(obs)
    full, _ = wm.rssm.observe(embed, prev, data["is_first"], sample=False)
    fresh, _ = wm.rssm.observe(embed[:, k:], prev[:, k:], data["is_first"][:, k:], sample=False)
    torch.testing.assert_close(full.deter[:, k:], fresh.deter)
    torch.testing.assert_close(full.stoch[:, k:], fresh.stoch)


def test_imagine_under_posterior_actions_matches_observe_deterministic_path():
    wm = make().world_model
    data = batch()
    prev = torch.cat([torch.zeros_like(data["action"][:, :1]), data["action"][:, :-1]], 1)
    posts = wm.observe(None, {"vector": data["vector"]}, prev, data["is_first"])
    # One imagined step from the posterior at t under action_t gives the deter state at t+1.
    start = posts.map(lambda x: x[:, :-1].reshape(B * (T - 1), *x.shape[2:]))
    actions = data["action"][:, :-1].reshape(B * (T - 1), 1, A)
    states, _ = wm.imagine(start, actions)
    torch.testing.assert_close(states.deter[:, 0].reshape(B, T - 1, -1), posts.deter[:, 1:], atol=1e-5, rtol=1e-5)


def test_sparse_imagination_equals_general_imagination():
    agent = make()
    wm = agent.world_model
    _, posts, _ = wm.loss(batch())
    start = posts.detach().map(lambda x: x.reshape(B * T, *x.shape[2:]))
    policy = agent.actor.act
    with torch.no_grad():
        torch.manual_seed(7)
        states, actions = wm.imagine(start, lambda s: policy(s.feat()), 5)
        torch.manual_seed(7)
        feat, sparse_actions = wm.rssm.imagine_sparse(start, policy, 5)
    torch.testing.assert_close(feat.dense[:, 1:], states.deter, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.nn.functional.one_hot(feat.index[:, 1:], 4).flatten(-2).float(), states.stoch)
    torch.testing.assert_close(sparse_actions, actions)


def test_train_step_updates_everything_and_reports_finite_losses():
    agent = make()
    before = {n: p.detach().clone() for n, p in agent.named_parameters()}
    metrics = agent.train_step(batch())
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    moved = {n.split(".")[0] for n, p in agent.named_parameters() if not torch.equal(p, before[n])}
    assert {"world_model", "actor", "critic"} <= moved


def test_sparse_and_dense_imagination_give_the_same_update():
    data = batch()
    out = []
    for sparse in (True, False):
        torch.manual_seed(0)
        agent = make_dreamer(
            ObsSpec(vector=3),
            ActionSpec(A, True),
            ModelConfig(**TINY_MODEL),
            DreamerConfig(horizon=4, sparse_imagination=sparse, imag_bf16=False),
        )
        torch.manual_seed(1)
        out.append(agent.train_step(data))
    for key in ("loss/actor", "loss/critic", "return"):
        assert abs(out[0][key] - out[1][key]) < 1e-5, key


def test_running_scale_matches_numpy_and_round_trips():
    from worldmodels.nn.layers import RunningScale

    scale = RunningScale(3, floor=1e-2)
    x = torch.randn(500, 3) * torch.tensor([0.05, 1.0, 3.0]) + torch.tensor([1.0, -2.0, 0.0])
    assert torch.equal(scale.normalize(x), x)  # the identity before any data
    for part in x.split(77):
        scale.update(part)
    mean, std = x.double().mean(0), x.double().std(0, unbiased=False)
    assert torch.allclose(scale.mean, mean) and torch.allclose((scale.m2 / scale.count).sqrt(), std)
    z = scale.normalize(x)
    assert torch.allclose(z.mean(0), torch.zeros(3), atol=1e-5) and torch.allclose(z.std(0), torch.ones(3), atol=1e-2)
    assert torch.allclose(scale.denormalize(z), x, atol=1e-5)
    constant = RunningScale(1, floor=1e-2)
    constant.update(torch.ones(10, 1))
    assert torch.allclose(constant.normalize(torch.tensor([[1.5]])), torch.tensor([[50.0]]))  # the floor, not 1/0


def test_vector_norm_is_trained_saved_and_used_by_predict():
    from worldmodels.config import Config, ModelConfig
    from worldmodels.models.world_model import make_rssm
    from worldmodels.specs import ActionSpec, ObsSpec

    cfg = Config(model=ModelConfig(deter=16, stoch=2, classes=4, units=16, bins=15, vector_norm=True))
    wm = make_rssm(ObsSpec(vector=2), ActionSpec(2, True), cfg)
    B, T = 3, 5
    batch = {
        "vector": torch.randn(B, T, 2) * torch.tensor([0.1, 5.0]),
        "action": torch.nn.functional.one_hot(torch.randint(0, 2, (B, T)), 2).float(),
        "reward": torch.zeros(B, T),
        "is_first": torch.zeros(B, T, dtype=torch.bool),
        "is_terminal": torch.zeros(B, T, dtype=torch.bool),
    }
    wm.train()
    terms, posts, _ = wm.loss(batch)
    assert wm.vector_scale.count == B * T and "vector_scale.mean" in wm.state_dict()
    wm.eval()
    wm.loss(batch)
    assert wm.vector_scale.count == B * T  # evaluation does not move the statistics
    assert wm.predict(posts.feat())["vector"].shape == (B, T, 2)
