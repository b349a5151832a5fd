"""Out-of-distribution evaluation of a trained run, and randomised training end to end."""

import json

import numpy as np
import pytest

from tests.conftest import tiny_config
from worldmodels.cli import main
from worldmodels.data.replay import ReplayStore
from worldmodels.envs.domain_spec import DomainSpecError
from worldmodels.envs.seeding import report_seeds
from worldmodels.report.ood import evaluate_domain, evaluate_grid
from worldmodels.run.runs import load_run
from worldmodels.run.train import Trainer


@pytest.fixture(scope="module")
def randomised_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ood")
    cfg = tiny_config(
        tmp, env="CartPole-v1", steps=300, randomize="masspole=0.5:2,length=0.5:2", disturb="push=0.1@0.05"
    )
    Trainer(cfg, progress=False, echo=lambda *_: None).train()
    return cfg


def test_training_records_the_domain_and_keeps_it_in_the_config(randomised_run, capsys):
    run = load_run(randomised_run.logdir)
    assert run.config.randomize == "masspole=0.5:2,length=0.5:2" and run.config.disturb == "push=0.1@0.05"
    store = ReplayStore(f"{randomised_run.logdir}/replay", capacity=10_000, streams=1)
    steps = next(iter(store.stream_steps()))
    assert steps["domain"].shape == (len(steps["reward"]), 2)
    assert np.all((steps["domain"] >= 0.5) & (steps["domain"] <= 2.0))
    # A resumed run keeps its distribution: another one is a conflict, not a silent change.
    assert main(["train", "--resume", randomised_run.logdir, "--randomize", "masspole=0.1:10"]) == 2
    assert "--randomize: stored 'masspole=0.5:2,length=0.5:2'" in capsys.readouterr().err


def test_vary_writes_a_grid_of_the_right_shape(randomised_run):
    run = load_run(randomised_run.logdir)
    grid = evaluate_grid(run, "masspole=0.25:4:2,length==0.25:1:3", set_="gravity=1.5", episodes=2, seed=1)
    assert np.array(grid["mean"]).shape == (2, 3) and np.array(grid["returns"]).shape == (2, 3, 2)
    assert [a["key"] for a in grid["axes"]] == ["masspole", "length"]
    assert grid["axes"][0]["values"] == pytest.approx([0.25, 4.0]) and grid["axes"][1]["absolute"]
    assert grid["trained_range"] == {"masspole": [0.5, 2.0]}  # length's grid is absolute, its training range a scale
    assert grid["protocol"]["reset_seeds"] == report_seeds(randomised_run.seed, 1, 2)
    assert grid["disturb"] == "push=0.1@0.05" and grid["set"] == "gravity=1.5"
    stored = json.loads((run.run_dir / "ood" / "grid.json").read_text())
    assert stored["mean"] == grid["mean"] and (run.run_dir / "ood" / "grid.png").stat().st_size > 0
    # Every cell plays the same starts: a cell of the grid equals that domain played alone.
    alone = evaluate_domain(run, set_="masspole=4,length==0.25,gravity=1.5", episodes=2, seed=1)
    assert alone["returns"] == grid["returns"][1][0]


def test_one_domain_and_the_cli(randomised_run, capsys):
    run = load_run(randomised_run.logdir)
    result = evaluate_domain(run, set_="masspole=3", disturb="push=1@0.05", episodes=2)
    assert result["set"] == "masspole=3" and result["disturb"] == "push=1@0.05" and len(result["returns"]) == 2
    nominal = evaluate_domain(run, nominal=True, episodes=2)
    assert nominal["disturb"] == "" and nominal["path"].endswith("domain-nominal.json")
    assert main(["eval", randomised_run.logdir, "--vary", "length=0.5:2:2", "--episodes", "1"]) == 0
    out = capsys.readouterr().out
    assert "length=0.5: return" in out and "grid.png" in out
    assert not (run.run_dir / "eval.json").exists()  # out-of-distribution results stay in ood/


def test_bad_ood_requests_are_refused(randomised_run, capsys):
    run = load_run(randomised_run.logdir)
    with pytest.raises(DomainSpecError, match="both varied .--vary. and fixed .--set."):
        evaluate_grid(run, "masspole=1:2:2", set_="masspole=3")
    with pytest.raises(DomainSpecError, match="one or two parameters"):
        evaluate_grid(run, "masspole=1:2:2,length=1:2:2,gravity=1:2:2")
    with pytest.raises(ValueError, match="--episodes must be >= 1"):
        evaluate_grid(run, "masspole=1:2:2", episodes=0)
    assert main(["eval", randomised_run.logdir, "--set", "polemass=2"]) == 2
    assert "has no parameter 'polemass'; it has gravity, masscart, masspole" in capsys.readouterr().err
