"""A family, a planner and an env suite from outside the package plug in through the registries
and work end to end through the CLI, with no file of the package changed for them."""

import json

import pytest
import torch

from tests import plugins
from tests.test_cli import TINY
from worldmodels.cli import main
from worldmodels.registry import AGENTS, FAMILIES, PLANNERS, UnknownNameError


@pytest.fixture
def registered():
    plugins.register()
    yield
    plugins.unregister()


def test_plugin_family_trains_evaluates_dreams_resumes_and_plans(tmp_path, registered):
    run = tmp_path / "linear"
    args = ["train", "--model", "linear", "--env", "CartPole-v1", "--steps", "300", "--logdir", str(run), *TINY]
    assert main(args) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["family"] == "linear" and cfg["agent"] == "dreamer"
    assert (run / "dream" / "metrics.json").exists() and (run / "curve.png").exists()  # dreamed at the end
    assert main(["train", "--resume", str(run), "--steps", "400", "--quiet", "--no-finish"]) == 0
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    assert json.loads((run / "eval.json").read_text())["env_steps"] == 400
    assert main(["dream", str(run), "--context", "3", "--horizon", "10", "--episodes", "1"]) == 0
    metrics = json.loads((run / "dream" / "metrics.json").read_text())
    assert metrics["observation"] == "vector" and 1 <= len(metrics["mse"]) <= 10
    # A Dreamer run plans with its world model as latent MPC: here MCTS over the linear model.
    assert main(["plan", str(run), "--episodes", "1", "--plan.simulations", "4"]) == 0
    assert json.loads((run / "plan" / "plan.json").read_text())["planner"] == "MCTS"


def test_plugin_planner_and_suite(tmp_path, registered):
    run = tmp_path / "toy"
    args = ["train", "--agent", "pets", "--env", "oned:right", "--env-kwarg", "scale=2", "--planner", "best_of_random"]
    args += ["--steps", "120", "--prefill", "40", "--plan.population", "16", "--plan.horizon", "4"]
    args += ["--plan.iterations", "2", "--ensemble.batch", "8", "--eval-every", "100", "--eval-episodes", "1"]
    assert main([*args, "--checkpoint-every", "100", "--logdir", str(run), "--quiet", "--threads", "1"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["planner"] == "best_of_random" and json.loads(cfg["env_kwargs"]) == {"scale": 2}
    assert main(["plan", str(run), "--episodes", "1", "--planner", "best_of_random"]) == 0
    result = json.loads((run / "plan" / "plan.json").read_text())
    assert result["planner"] == "BestOfRandom" and "mean_disagreement" in result
    assert main(["plan", str(run), "--plan.horizon", "0"]) == 2  # overrides are range-checked too
    # rewards are -2|x - 0.5| per step for 20 steps: the scale reached the env
    assert -2 * 20 * 2.5 <= result["mean_return"] <= 0


def test_registry_errors_name_the_registered_choices(tmp_path, capsys, registered):
    with pytest.raises(UnknownNameError, match="registered: dreamer, mpc, pets, vmc"):
        AGENTS.get("dremer")
    with pytest.raises(UnknownNameError, match="Did you mean mppi"):
        PLANNERS.get("mppj")
    assert "linear" in FAMILIES.names()
    with pytest.raises(SystemExit):  # argparse lists the choices
        main(["train", "--model", "transformerz", "--logdir", str(tmp_path / "x")])
    assert "linear" in capsys.readouterr().err
    # A family without latent features cannot feed an actor-critic; the error names those that can.
    assert main(["train", "--model", "ensemble", "--logdir", str(tmp_path / "y"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "does not give" in err and "rssm" in err and "linear" in err
    assert main(["train", "--agent", "pets", "--model", "rssm", "--logdir", str(tmp_path / "z"), *TINY]) == 2
    assert "learns with the ensemble" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in ("x", "y", "z"))


def test_a_registered_family_must_be_a_world_model(tmp_path, capsys):
    FAMILIES.register("broken", lambda o, a, cfg: torch.nn.Linear(2, 2), features=True)
    try:
        assert main(["train", "--model", "broken", "--logdir", str(tmp_path / "b"), *TINY]) == 2
        assert "not a WorldModelBase" in capsys.readouterr().err
    finally:
        FAMILIES.unregister("broken")
