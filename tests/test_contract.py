"""Every registered world-model family honours the contract of models/base.py: shapes of
observe / imagine / predict / loss, imagine under a policy equals imagine under the actions it
chose, and a checkpoint round trip; plus devices and map_location."""

import dataclasses

import pytest
import torch

from tests import plugins
from tests.conftest import TINY_MODEL, TINY_TRANSFORMER
from worldmodels.config import Config, EnsembleConfig, ModelConfig, TransformerConfig, VMCConfig, resolve_device
from worldmodels.models.base import FEATURES, WorldModelBase
from worldmodels.registry import FAMILIES
from worldmodels.specs import IMAGE, VECTOR, ActionSpec, ObsSpec

plugins.register_family()  # the tests' own family is checked with the built-in ones
FAMILY_NAMES = FAMILIES.names()

B, T, H, A = 3, 5, 4, 2
TINY_VMC = VMCConfig(z=4, vae_depth=4, rnn_units=8, mixtures=2)
# Families' observation needs: the ensemble and the linear model take vectors, V+M 64x64 frames.
SPECS = {
    "vmc": ObsSpec(image=(64, 64, 3)),
    "rssm": ObsSpec(image=(16, 16, 3), vector=4),
    "transformer": ObsSpec(image=(16, 16, 3), vector=4),
}


def build(family: str) -> tuple[WorldModelBase, ObsSpec]:
    spec = SPECS.get(family, ObsSpec(vector=4))
    cfg = Config(
        family=family,
        model=ModelConfig(**TINY_MODEL),
        ensemble=EnsembleConfig(members=2, units=8, layers=2),
        vmc=TINY_VMC,
        transformer=TransformerConfig(**TINY_TRANSFORMER),
    )
    torch.manual_seed(0)
    return FAMILIES.get(family)(spec, ActionSpec(A, False), cfg), spec


def batch(spec: ObsSpec) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    out = {
        "action": torch.rand(B, T, A, generator=g) * 2 - 1,
        "reward": torch.randn(B, T, generator=g),
        "is_first": torch.zeros(B, T, dtype=torch.bool),
        "is_terminal": torch.zeros(B, T, dtype=torch.bool),
    }
    out["is_first"][:, 0] = True
    if spec.image is not None:
        out[IMAGE] = torch.randint(0, 256, (B, T, *spec.image), dtype=torch.uint8, generator=g)
    if spec.vector is not None:
        out[VECTOR] = torch.randn(B, T, spec.vector, generator=g)
    return out


def lead(state) -> set[tuple[int, ...]]:
    """The leading dims of every field of a state."""
    shapes = set()
    state.map(lambda x: shapes.add(tuple(x.shape[:2])) or x)
    return shapes


@pytest.fixture(autouse=True)
def _linear_family():
    plugins.register_family()


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_family_honours_the_contract(family, tmp_path):
    model, spec = build(family)
    assert isinstance(model, WorldModelBase)
    data = batch(spec)
    obs = {k: data[k] for k in spec.keys()}
    prev = torch.cat([torch.zeros_like(data["action"][:, :1]), data["action"][:, :-1]], 1)
    with torch.no_grad():
        states = model.observe(None, obs, prev, data["is_first"])
        assert lead(states) == {(B, T)}
        start = states.map(lambda x: x[:, -1])
        actions = torch.rand(B, H, A) * 2 - 1
        imagined, taken = model.imagine(start, actions)
        assert lead(imagined) == {(B, H)} and torch.equal(taken, actions)
        pred = model.predict(model.features(imagined))
        assert pred["reward"].shape == (B, H) and pred["cont"].shape == (B, H)
        assert ((pred["cont"] >= 0) & (pred["cont"] <= 1)).all()
        for key in spec.keys():
            if key in pred:
                shape = spec.image if key == IMAGE else (spec.vector,)
                assert pred[key].shape == (B, H, *shape)

        # Under a policy: the same rollout as under the actions the policy chose.
        policy_rng = torch.Generator().manual_seed(2)

        def policy(state):
            return torch.rand(B, A, generator=policy_rng) * 2 - 1

        torch.manual_seed(3)
        by_policy, chosen = model.imagine(start, policy, H)
        torch.manual_seed(3)
        by_actions, _ = model.imagine(start, chosen)
        for a, b in zip(by_policy, by_actions):
            assert torch.allclose(a, b)

        if FEATURES in model.capabilities:
            feat, _ = model.imagine_features(start, chosen)
            assert feat[:, 1:].float() is not None  # features index and cast like a tensor
            assert model.predict(feat[:, 1:], decode_obs=False)["reward"].shape == (B, H)

    terms, filtered, _ = model.loss(data)
    assert set(terms) == set(model.loss_scales), (sorted(terms), sorted(model.loss_scales))
    assert all(v.shape == (B, T) for v in terms.values()), {k: tuple(v.shape) for k, v in terms.items()}
    assert lead(filtered) == {(B, T)}
    total = sum(model.loss_scales[k] * v.mean() for k, v in terms.items())
    assert torch.isfinite(total)
    total.backward()  # the terms train the model
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    # Checkpoint round trip: a fresh model of the family predicts the same after loading.
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    fresh, _ = build(family)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    with torch.no_grad():  # the same draws for both (the RSSM samples its posterior)
        torch.manual_seed(6)
        a = model.predict(model.features(model.observe(None, obs, prev, data["is_first"])))
        torch.manual_seed(6)
        b = fresh.predict(fresh.features(fresh.observe(None, obs, prev, data["is_first"])))
    for key in a:
        assert torch.allclose(a[key], b[key]), key
    assert isinstance(model.describe(), str)


def test_open_loop_gives_what_wm_dream_needs():
    for family in FAMILY_NAMES:
        model, spec = build(family)
        data = batch(spec)
        steps = {k: v[0].numpy() for k, v in data.items()}
        out = model.open_loop(steps, context=2, horizon=10)
        key = IMAGE if IMAGE in out else VECTOR
        assert len(out[key]) == T, family  # context + min(horizon, T - context)


def test_device_auto_and_explicit():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_is_refused_without_cuda(tmp_path, capsys):
    from worldmodels.cli import main

    assert main(["train", "--device", "cuda", "--logdir", str(tmp_path / "r")]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_checkpoint_moves_between_devices(tmp_path):
    """A run's checkpoint loads onto another device (the meta device stands in for a GPU on CI)
    and back onto the CPU, where it acts as before."""
    import worldmodels as wm
    from tests.conftest import tiny_config
    from worldmodels.run import checkpoint
    from worldmodels.run.runs import build_agent, probe_specs

    cfg = tiny_config(tmp_path, env="CartPole-v1", steps=120, prefill=60)
    wm.Trainer(cfg, progress=False).train()
    path = tmp_path / "run" / checkpoint.NAME
    ckpt = checkpoint.load(path, map_location="meta")
    assert all(t.device.type == "meta" for t in ckpt["agent"].values())
    agent = build_agent(cfg, *probe_specs(cfg), device=torch.device("meta"))
    checkpoint.load_agent_state(agent, ckpt, path)
    assert agent.device.type == "meta"
    run = wm.load_run(tmp_path / "run", device="cpu")
    assert run.agent.device.type == "cpu"
    if not torch.cuda.is_available():  # a run trained with --device cuda, opened on a CPU-only machine
        stored = tmp_path / "run" / "config.json"
        stored.write_text(stored.read_text().replace('"device": "auto"', '"device": "cuda"'))
        assert wm.load_run(tmp_path / "run").agent.device.type == "cpu"
    cfg2 = dataclasses.replace(cfg, device="cpu")
    assert build_agent(cfg2, *probe_specs(cfg2)).device.type == "cpu"
