"""Learning from a dataset: offline runs never step an env while training; a dataset seeds an
online run's replay without counting as collected; an offline agent beats the data it learned from.
"""

import json

import numpy as np
import pytest
import torch

from tests.conftest import tiny_config
from tests.test_learning import learning_config
from worldmodels.cli import main
from worldmodels.data.datasets import save_dataset
from worldmodels.data.replay import ReplayStore
from worldmodels.models.base import prev_actions
from worldmodels.report.evaluate import evaluate
from worldmodels.run import train as train_module
from worldmodels.run.record import Recording, record_dataset
from worldmodels.run.runs import load_run
from worldmodels.run.train import Trainer, to_torch


@pytest.fixture(scope="module")
def cue_data(tmp_path_factory):
    """100 episodes of uniformly random play on the cue task (1,000 steps, return ~5 each)."""
    folder = tmp_path_factory.mktemp("data")
    dataset = record_dataset(Recording(env="wmtest/Cue-v0", episodes=100, seed=3))
    return save_dataset(dataset, folder / "cue-random.h5"), dataset


def test_offline_training_never_steps_an_env(tmp_path, cue_data, monkeypatch):
    path, _ = cue_data

    def no_env(*args, **kwargs):
        raise AssertionError("an offline run made a training env")

    monkeypatch.setattr(train_module, "make_vector_env", no_env)
    cfg = tiny_config(tmp_path, env="wmtest/Cue-v0", dataset=str(path), offline=True, steps=40, eval_every=20,
                      log_every=10, checkpoint_every=20)  # fmt: skip
    counters = Trainer(cfg, progress=False).train()
    assert counters["env_steps"] == 0 and counters["agent_steps"] == 0 and counters["train_steps"] == 40
    assert not list((tmp_path / "run" / "replay").glob("chunk-*"))  # nothing collected, nothing written
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_steps"] for r in rows] == [10, 20, 30, 40]
    assert [r["train_steps"] for r in rows if "eval/return" in r] == [20, 40]
    # a resumed offline run goes on counting train steps
    cfg.steps = 60
    assert Trainer(cfg, resume=True, progress=False).train()["train_steps"] == 60
    # and it is a run like any other: evaluated, dreamed, its curve drawn against train steps
    assert main(["eval", cfg.logdir, "--episodes", "2"]) == 0
    assert main(["dream", cfg.logdir, "--episodes", "1", "--context", "2", "--horizon", "5"]) == 0
    from worldmodels.report.finish import finish

    assert any(p.endswith("curve.png") for p in finish(tmp_path / "run"))


def test_a_dataset_seeds_an_online_run_without_counting_as_collected(tmp_path, cue_data):
    path, dataset = cue_data
    cfg = tiny_config(tmp_path, env="wmtest/Cue-v0", dataset=str(path), steps=120, prefill=0)
    trainer = Trainer(cfg, progress=False)
    assert len(trainer.store) == dataset.steps + len(dataset.episodes) and trainer.store.collected == 0
    counters = trainer.train()
    assert counters["env_steps"] == 120 and counters["train_steps"] > 0
    assert sum(p.steps for p in ReplayStore(tmp_path / "run" / "replay", capacity=10_000, streams=1).positions) == 120


def test_the_datasets_share_of_each_batch(tmp_path):
    store = ReplayStore(None, capacity=1000, streams=1)
    live = {"reward": np.zeros(1, np.float32), "is_first": np.ones(1, bool), "is_last": np.zeros(1, bool),
            "source": np.zeros(1, np.float32)}  # fmt: skip
    for _ in range(100):
        store.add(live)
    recorded = {k: np.ones((900, *v.shape[1:]), v.dtype) for k, v in live.items()}
    store.add_recorded([recorded], share=0.25)
    batch = store.sample(4000, 2, np.random.default_rng(0))
    assert abs(batch["source"][:, 0].mean() - 0.25) < 0.03  # not 0.9, the dataset's share of the steps
    store.add_recorded([recorded])  # a second one, in proportion to its steps: 0.75 * 899 / 998 of the rest
    assert abs(store.sample(4000, 2, np.random.default_rng(0))["source"][:, 0].mean() - 0.926) < 0.03
    with pytest.raises(ValueError, match="sum below 1"):
        store.add_recorded([recorded], share=0.8)


def test_an_offline_agent_beats_the_random_play_it_learned_from(tmp_path, cue_data):
    """From 100 episodes of random play on the cue task (the dataset averages about 5 per episode:
    each step pays 1 with probability 1/2), Dreamer trained offline must average 8.5 over 20
    evaluation episodes. A policy that ignores the cue averages 5 (binomial(10, 1/2)); reaching
    8.5 over 200 independent steps by luck has a probability below 1e-24, so the model must have
    learned from the recorded steps alone that the reward follows the cue and the action, and the
    actor must have learned in imagination to read the cue."""
    path, dataset = cue_data
    assert 4.0 < dataset.returns().mean() < 6.0
    cfg = learning_config(tmp_path, "wmtest/Cue-v0")
    cfg.dataset, cfg.offline, cfg.steps, cfg.eval_every = str(path), True, 900, 10_000
    cfg.penalty = 1.0  # as `wm train --offline` sets it
    assert Trainer(cfg, progress=False).train()["env_steps"] == 0
    result = evaluate(load_run(cfg.logdir), episodes=20)
    assert result["mean_return"] >= 8.5, result


def test_the_penalty_is_the_models_doubt_and_grows_away_from_the_data(tmp_path):
    """The RSSM's prior heads agree on states like those in the data and disagree on states far
    from it (here: observations shifted 10 units beyond anything recorded), and Dreamer's
    imagined rewards are lowered by exactly penalty x that disagreement."""
    data = record_dataset(Recording(env="wmtest/PointMass-v0", episodes=40, seed=0))
    path = save_dataset(data, tmp_path / "pm.h5")
    cfg = tiny_config(tmp_path, env="wmtest/PointMass-v0", dataset=str(path), offline=True, penalty=2.0, steps=200,
                      eval_every=10**6)  # fmt: skip
    trainer = Trainer(cfg, progress=False)
    trainer.train()
    agent, wm = trainer.agent, trainer.agent.world_model
    batch = to_torch(trainer.store.sample(16, 8, np.random.default_rng(1)))

    def features(shift: float):
        with torch.no_grad():
            obs = {"vector": batch["vector"] + shift}
            return wm.features(wm.observe(None, obs, prev_actions(batch["action"]), batch["is_first"]))

    seen, far = features(0.0), features(10.0)
    assert wm.disagreement(far).mean() > 1.3 * wm.disagreement(seen).mean()
    with torch.no_grad():  # the heads' standard deviation, summed over classes, per group, / sqrt(K - 1)
        deter = far[..., : wm.rssm.deter_dim]
        probs = torch.stack([wm._head_probs(head, deter) for head in wm.prior_ensemble])
        expected = probs.std(0, unbiased=False).sum(-1).mean(-1) / (len(wm.prior_ensemble) - 1) ** 0.5
    torch.testing.assert_close(wm.disagreement(far), expected)
    reward = torch.ones(far.shape[:-1])
    lowered, doubt = agent.penalised(far, reward)
    torch.testing.assert_close(lowered, reward - 2.0 * doubt)
    assert lowered.mean() < agent.penalised(seen, reward)[0].mean()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "imag/disagreement" in metrics[-1] and metrics[-1]["loss/ensemble"] > 0


def test_the_penalty_needs_a_family_that_measures_its_doubt(tmp_path):
    from worldmodels.config import resolve, validate

    assert resolve({"offline": True, "dataset": "d.h5"}).penalty == 1.0  # dreamer offline: on by default
    assert resolve({"offline": True, "dataset": "d.h5", "penalty": 0.0}).penalty == 0.0
    with pytest.raises(ValueError, match="--offline learns from recorded episodes alone"):
        validate(resolve({"offline": True}))
    with pytest.raises(ValueError, match="pets plans"):
        validate(resolve({"agent": "pets", "penalty": 1.0}))


def test_recorded_domains_are_matched_by_name():
    from worldmodels.data.episodes import conform_episode
    from worldmodels.specs import ObsSpec

    steps = {
        "vector": np.zeros((3, 2), np.float32),
        "domain": np.array([[1.0, 2.0]] * 3, np.float32),
        "action": np.zeros((3, 1), np.float32),
        "reward": np.zeros(3, np.float32),
        "is_first": np.array([1, 0, 0], bool),
        "is_terminal": np.zeros(3, bool),
        "is_last": np.array([0, 0, 1], bool),
    }
    spec = ObsSpec(vector=2)
    np.testing.assert_array_equal(conform_episode(steps, spec, ("b", "a"), ("a", "b"))["domain"][0], [2.0, 1.0])
    assert np.isnan(conform_episode(steps, spec, ("c",), ("a", "b"))["domain"]).all()  # not recorded: unknown
    assert "domain" not in conform_episode(steps, spec, (), ("a", "b"))


def test_an_invariant_encoder_needs_the_domains_of_the_dataset(tmp_path, cue_data):
    from worldmodels.errors import RunConfigError

    path, _ = cue_data
    cfg = tiny_config(tmp_path, env="wmtest/Rule-v0", dataset=str(path), randomize="rule==-1:1", invariant_encoder=True)
    with pytest.raises(Exception, match="does not match|did not record"):  # the cue data has 2-d observations
        Trainer(cfg, progress=False)
    rule = save_dataset(record_dataset(Recording(env="wmtest/Rule-v0", episodes=3)), tmp_path / "rule.h5")
    cfg.dataset, cfg.logdir = str(rule), str(tmp_path / "run2")
    with pytest.raises(RunConfigError, match="did not record rule"):
        Trainer(cfg, progress=False)
