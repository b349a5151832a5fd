"""The evaluation protocol: which start states each kind of episode plays, and what is recorded."""

import json

import pytest

from tests.conftest import tiny_config
from worldmodels.envs.seeding import (
    Purpose,
    episode_seed,
    evaluation_seeds,
    held_out_seeds,
    report_seeds,
    seed_purpose,
)
from worldmodels.report.evaluate import evaluate
from worldmodels.run.runs import load_run
from worldmodels.run.train import Trainer


def test_seed_sets_are_disjoint_by_purpose():
    train = {episode_seed(s, stream, ep) for s in range(3) for stream in range(2) for ep in range(300)}
    evals = {x for s in range(3) for k in range(40) for x in evaluation_seeds(s, k, 10)}
    report = {x for s in range(3) for e in range(3) for x in report_seeds(s, e, 20)}
    held = {x for tag in (0, 1) for e in range(3) for x in held_out_seeds(tag, e, 20)}
    for seeds, purpose in ((train, Purpose.TRAIN), (evals, Purpose.EVAL), (report, Purpose.REPORT)):
        assert {seed_purpose(x) for x in seeds} == {purpose}
    assert {seed_purpose(x) for x in held} == {Purpose.HELD_OUT}
    assert not train & evals and not train & report and not evals & report and not held & (train | evals | report)
    assert all(0 <= x < 2**32 for x in train | evals | report | held)  # what every suite's RNG takes


def test_every_evaluation_plays_fresh_starts():
    first, second = evaluation_seeds(0, 1, 10), evaluation_seeds(0, 2, 10)
    assert len(set(first)) == 10 and not set(first) & set(second)
    assert evaluation_seeds(0, 1, 10) == first  # reproducible: a resumed run evaluates on the same starts
    assert set(evaluation_seeds(1, 1, 10)).isdisjoint(first)  # another run seed, other starts


def test_training_metrics_and_eval_json_record_the_protocol(tmp_path):
    cfg = tiny_config(tmp_path, env="CartPole-v1", steps=400, eval_every=200, eval_episodes=3)
    Trainer(cfg, progress=False, echo=lambda *_: None).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/return" in r]
    assert [r["eval/index"] for r in evals] == [1, 2] and all(r["eval/episodes"] == 3 for r in evals)
    assert all(r["eval/return_min"] <= r["eval/return"] <= r["eval/return_max"] for r in evals)
    # The model-drift diagnostic: the same loss terms on the newest replay and on all of it.
    trained = [r for r in rows if r.get("train_steps", 0) > 0]
    assert trained and all({"drift/recent/vector", "drift/all/vector", "drift/all/reward"} <= r.keys() for r in trained)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["eval_episodes"] == 3 and stored["eval_policy"] == "greedy"

    result = evaluate(load_run(cfg.logdir), episodes=4, seed=2, mode=False)
    protocol = result["protocol"]
    assert protocol["policy"] == "sampled" and protocol["eval_seed"] == 2
    assert protocol["reset_seeds"] == report_seeds(cfg.seed, 2, 4)
    assert len(result["returns"]) == len(result["lengths"]) == 4
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["protocol"] == protocol


def test_eval_with_no_episodes_is_refused(tmp_path):
    cfg = tiny_config(tmp_path, env="CartPole-v1", steps=200)
    Trainer(cfg, progress=False, echo=lambda *_: None).train()
    with pytest.raises(ValueError, match="--episodes must be >= 1"):
        evaluate(load_run(cfg.logdir), episodes=0)
    assert not (tmp_path / "run" / "eval.json").exists()


def test_bad_eval_policy_is_refused(tmp_path):
    from worldmodels.config import validate

    with pytest.raises(ValueError, match="--eval-policy must be one of greedy, sampled"):
        validate(tiny_config(tmp_path, eval_policy="best"))
