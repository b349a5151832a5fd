"""The transformer family: the cached step equals the full pass, the future and other episodes
stay hidden, acting step by step filters as training does, and its settings are checked."""

import dataclasses

import pytest
import torch

from tests.conftest import TINY_MODEL, TINY_TRANSFORMER, tiny_config
from worldmodels.config import Config, ModelConfig, TransformerConfig, resolve, validate
from worldmodels.models.base import prev_actions
from worldmodels.models.transformer import TransformerWorldModel, make_transformer
from worldmodels.specs import IMAGE, VECTOR, ActionSpec, ObsSpec

B, T, A = 2, 7, 2
SPEC = ObsSpec(image=(16, 16, 3), vector=3)


def model(context: int = 4) -> TransformerWorldModel:
    cfg = Config(
        family="transformer",
        model=ModelConfig(**TINY_MODEL),
        transformer=TransformerConfig(**{**TINY_TRANSFORMER, "context": context}),
    )
    torch.manual_seed(0)
    wm = make_transformer(SPEC, ActionSpec(A, False), cfg)
    # Relative biases start at zero; give them values so that order matters in these tests.
    torch.nn.init.normal_(wm.transformer.rel_bias)
    return wm.eval()


def sequence(seed: int = 1, length: int = T) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    is_first = torch.zeros(B, length, dtype=torch.bool)
    is_first[:, 0] = True
    return {
        IMAGE: torch.randint(0, 256, (B, length, *SPEC.image), dtype=torch.uint8, generator=g),
        VECTOR: torch.randn(B, length, SPEC.vector, generator=g),
        "action": torch.rand(B, length, A, generator=g) * 2 - 1,
        "is_first": is_first,
    }


def observe(wm, data, state=None, span=slice(None)):
    obs = {k: data[k][:, span] for k in (IMAGE, VECTOR)}
    prev = prev_actions(data["action"])[:, span]
    return wm.observe(state, obs, prev, data["is_first"][:, span], sample=False)


def full_pass(wm, z: torch.Tensor, prev_action: torch.Tensor) -> torch.Tensor:
    """The transformer run once over a whole sequence of latents ``z (B, T, S*C)`` (no cache)."""
    Bz, Tz = z.shape[:2]
    is_first = torch.zeros(Bz, Tz, dtype=torch.bool)
    is_first[:, 0] = True
    keep = (~is_first).float().unsqueeze(-1)
    prev_z = torch.cat([torch.zeros_like(z[:, :1]), z[:, :-1]], 1)
    tokens = wm.token_in(torch.cat([prev_action * keep, prev_z * keep], -1))
    state = wm.initial(Bz)
    allowed, distance = wm.transformer.visibility(state.mask, is_first)
    h, _, _ = wm.transformer(tokens, state.keys, state.values, allowed, distance)
    return h


@pytest.mark.parametrize("context", [3, 16])
def test_cached_imagination_equals_the_uncached_pass(context):
    """Observe 4 steps, imagine 5 more with the key/value cache; running the transformer once
    over all 9 steps' latents and actions gives the same outputs (windows shorter and longer
    than the rollout)."""
    wm, data = model(context), sequence()
    seen = 4
    posts = observe(wm, data, span=slice(0, seen))
    actions = torch.rand(B, 5, A) * 2 - 1
    with torch.no_grad():
        imagined, _ = wm.imagine(posts.map(lambda x: x[:, -1]), actions, sample=False)
        z = torch.cat([posts.stoch, imagined.stoch], 1)
        # Step k of the rollout follows actions[:, k] taken in the state before it.
        prev = torch.cat([prev_actions(data["action"][:, :seen]), actions], 1)
        reference = full_pass(wm, z, prev)
    assert torch.allclose(torch.cat([posts.deter, imagined.deter], 1), reference, atol=1e-5)

    # The fast path (class indices, lists of cached keys) follows the same rollout.
    with torch.no_grad():
        torch.manual_seed(5)
        states, _ = wm.imagine(posts.map(lambda x: x[:, -1]), actions)
        torch.manual_seed(5)
        feat, _ = wm.imagine_features(posts.map(lambda x: x[:, -1]), actions)
    assert torch.allclose(feat.dense[:, 1:], states.deter, atol=1e-5)
    assert torch.equal(feat.index[:, 1:], states.index())


def test_changing_a_later_step_never_changes_an_earlier_one():
    wm, data = model(), sequence()
    before = observe(wm, data)
    changed = {k: v.clone() for k, v in data.items()}
    changed[IMAGE][:, 4] = 255 - changed[IMAGE][:, 4]
    changed[VECTOR][:, 4] += 3.0
    changed["action"][:, 4] *= -1  # taken after step 4: seen from step 5 on
    after = observe(wm, changed)
    for field in ("deter", "stoch"):
        a, b = getattr(before, field), getattr(after, field)
        assert torch.equal(a[:, :4], b[:, :4]), field
        assert not torch.equal(a[:, 4:], b[:, 4:]), field  # the change is seen where it may be


def test_an_episode_start_hides_the_episode_before():
    wm, data = model(context=16), sequence()
    data["is_first"][:, 3] = True
    a = observe(wm, data)
    other = {k: v.clone() for k, v in data.items()}
    other[IMAGE][:, :3] = 0
    other["action"][:, :3] = 0.5
    b = observe(wm, other)
    assert torch.equal(a.deter[:, 3:], b.deter[:, 3:])
    assert torch.equal(a.mask[:, 3], torch.tensor([0.0] * 15 + [1.0]).expand(B, -1))


def test_acting_step_by_step_filters_as_the_whole_sequence_does():
    """The agent observes one step at a time, carrying the state: the same states as one pass
    (the window is carried in the state's keys and values)."""
    wm, data = model(context=3), sequence()
    whole = observe(wm, data)
    state = None
    for t in range(T):
        step = observe(wm, data, state, slice(t, t + 1))
        assert torch.allclose(step.deter[:, 0], whole.deter[:, t], atol=1e-5), t
        state = step.map(lambda x: x[:, 0])
    assert torch.allclose(state.keys, whole.keys[:, -1], atol=1e-5)


def test_training_a_sequence_in_one_pass_learns():
    """Twenty updates on one batch lower the loss: the terms train every part."""
    wm, data = model(), sequence(length=T)
    wm.train()
    data.update(reward=torch.randn(B, T), is_terminal=torch.zeros(B, T, dtype=torch.bool))
    opt = torch.optim.Adam(wm.parameters(), lr=3e-3)

    def total():
        terms, _, _ = wm.loss(data)
        return sum(wm.loss_scales[k] * v.mean() for k, v in terms.items())

    first = total().item()
    for _ in range(20):
        opt.zero_grad()
        total().backward()
        opt.step()
    assert total().item() < 0.8 * first


def test_settings_that_cannot_work_are_refused(tmp_path):
    cfg = tiny_config(tmp_path, family="transformer", seq_len=8)
    with pytest.raises(ValueError, match=r"--transformer.context 9 is longer than the replayed sequences"):
        validate(dataclasses.replace(cfg, transformer=dataclasses.replace(cfg.transformer, context=9)))
    with pytest.raises(ValueError, match=r"--transformer.dim 30 must be a multiple of --transformer.heads 4"):
        validate(dataclasses.replace(cfg, transformer=TransformerConfig(dim=30, heads=4, context=4)))
    validate(cfg)


def test_size_presets_set_the_transformer(tmp_path):
    assert resolve({"size": "S"}).transformer.dim == 512
    assert resolve({"size": "XXS", "transformer.dim": 64}).transformer.dim == 64
    text = make_transformer(SPEC, ActionSpec(A, False), tiny_config(tmp_path, family="transformer")).describe()
    assert "transformer 2x16 (2 heads, context 4)" in text and "parameters" in text


def test_a_run_keeps_its_window_when_resumed(tmp_path, capsys):
    """The keys and values of a state are sized by the context: a resume that asks for another
    is refused before anything is loaded, naming both values."""
    from worldmodels.cli import main

    run = str(tmp_path / "run")
    tiny = ["--model.deter", "16", "--model.stoch", "4", "--model.classes", "4", "--model.units", "16"]
    tiny += ["--transformer.dim", "16", "--transformer.heads", "2", "--transformer.context", "4", "--threads", "1"]
    args = ["--steps", "60", "--prefill", "40", "--batch", "2", "--seq-len", "8", "--eval-every", "60"]
    args += ["--eval-episodes", "1"]
    assert main(["train", "--model", "transformer", "--env", "wmtest/Cue-v0", "--logdir", run, *tiny, *args]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", run, "--steps", "80", "--transformer.context", "8"]) == 2
    assert "--transformer.context: stored 4, given 8" in capsys.readouterr().err
