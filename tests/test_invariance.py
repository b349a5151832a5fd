"""The domain-invariant encoder: gradient reversal, domain bins, the held-out probe, the flag."""

import json

import numpy as np
import pytest
import torch

from tests.conftest import tiny_config
from worldmodels.config import validate
from worldmodels.envs.domain_spec import parse_params
from worldmodels.errors import RunConfigError
from worldmodels.models.invariance import BINS, DomainAdversary, domain_labels, probe_accuracy, reverse_gradient
from worldmodels.run.train import Trainer


def test_gradient_reversal_negates_and_scales_the_gradient():
    x = torch.randn(5, 3, requires_grad=True)
    w = torch.randn(3)
    (reverse_gradient(x, 0.3) * w).sum().backward()
    assert torch.allclose(x.grad, -0.3 * w.expand(5, 3))
    assert torch.equal(reverse_gradient(x, 0.3), x)  # the identity going forward


def test_domain_bins_are_equally_likely_under_the_draw():
    params = parse_params("masspole=0.5:2,length==0.2:0.6,gravity=1")
    rng = np.random.default_rng(0)
    values = torch.tensor([[p.sample(rng) for p in params] for _ in range(4000)])
    labels = domain_labels(values, params)
    assert labels.shape == (4000, 2)  # gravity is fixed: no label
    for column in labels.T:
        counts = torch.bincount(column, minlength=BINS).float() / len(column)
        assert torch.all((counts - 1 / BINS).abs() < 0.03)


def test_probe_finds_domain_information_and_only_that():
    params = parse_params("masspole=0.5:2")
    rng = np.random.default_rng(1)
    episodes = torch.tensor([params[0].sample(rng) for _ in range(200)])
    values = episodes.repeat_interleave(10)[:, None].float()  # 200 episodes of 10 steps
    labels = domain_labels(values, params)[:, 0]
    noise = torch.randn(len(values), 16)
    telling = torch.cat([torch.nn.functional.one_hot(labels, BINS).float() * 3, noise], 1)
    assert probe_accuracy(telling, values, params) > 0.9
    # Features unrelated to the domain: held-out accuracy near chance (1/4). With ~1000 held-out
    # steps from ~100 episodes, 0.15 either way is far outside what chance gives.
    assert abs(probe_accuracy(noise, values, params) - 1 / BINS) < 0.15


def test_adversary_learns_while_the_encoder_is_pushed_away():
    params = parse_params("masspole=0.5:2")
    adversary = DomainAdversary(8, params, weight=1.0, units=16)
    embed = torch.randn(4, 5, 8, requires_grad=True)
    values = torch.full((4, 5, 1), 1.9)
    loss, accuracy = adversary.loss(embed, values)
    loss.backward()
    assert embed.grad is not None and 0 <= float(accuracy) <= 1
    # The encoder's gradient is the negation of the classifier's: descending it raises the loss.
    with torch.no_grad():
        moved = embed - 0.5 * embed.grad
    assert adversary.loss(moved, values)[0] > loss
    assert adversary.head.head.weight.grad.abs().sum() > 0  # while the classifier itself learns


def test_invariant_encoder_trains_and_logs_the_probe(tmp_path):
    cfg = tiny_config(tmp_path, env="CartPole-v1", steps=300, randomize="masspole=0.5:2", invariant_encoder=True)
    validate(cfg)
    Trainer(cfg, progress=False, echo=lambda *_: None).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/domain" in r and "domain/adversary_acc" in r for r in rows)
    probes = [r for r in rows if "domain/probe_acc" in r]
    assert probes and all(0 <= r["domain/probe_acc"] <= 1 and r["domain/probe_chance"] == 0.25 for r in probes)


def test_invariant_encoder_that_cannot_work_is_refused(tmp_path):
    with pytest.raises(RunConfigError, match="nothing is randomised"):
        Trainer(tiny_config(tmp_path, env="CartPole-v1", invariant_encoder=True), progress=False)
    with pytest.raises(ValueError, match="pets' ensemble has none"):
        validate(tiny_config(tmp_path, agent="pets", env="Pendulum-v1", randomize="m=0.5:2", invariant_encoder=True))
    with pytest.raises(ValueError, match="V/M/C trains its VAE"):
        validate(tiny_config(tmp_path, agent="vmc", randomize="visual.hue=-0.2:0.2", invariant_encoder=True))
    assert not (tmp_path / "run").exists()
