"""PETS and latent MPC through the same trainer, run folders and CLI as Dreamer."""

import dataclasses
import json

import pytest

from tests.conftest import tiny_config
from worldmodels.cli import main
from worldmodels.config import EnsembleConfig, PlanConfig
from worldmodels.report.evaluate import evaluate
from worldmodels.run.runs import load_run
from worldmodels.run.train import Trainer

SMALL_PLAN = PlanConfig(horizon=8, population=100, iterations=3, elites=10, simulations=8, policy_samples=4)
SMALL_ENSEMBLE = EnsembleConfig(members=3, units=32, layers=2, batch=64)


@pytest.mark.parametrize("controller", ["sequence", "linear"])
def test_pets_learns_to_drive_a_point_mass(tmp_path, controller):
    """PointMass: a mass at rest near x = -1 must reach x = 0 and stop there (reward -x^2 per
    step, 25 steps). Doing nothing scores -23.6. Uniformly random forces score -146 on average,
    and only 1% of random episodes beat -5.5 (2,000 simulated episodes), so a mean of at least
    -6 over 10 evaluation episodes by chance has a probability below 0.01^10. Planning must
    accelerate and then brake ahead of the goal, which needs the learned dynamics, not just
    the reward. A linear feedback law (``--plan.controller linear``) can do both: a PD law
    towards the goal."""
    cfg = tiny_config(
        tmp_path,
        env="wmtest/PointMass-v0",
        agent="pets",
        steps=500,
        prefill=50,
        train_ratio=256,
        eval_every=500,
        # a law's few gains plan cheaply over the whole approach (20 of the episode's 25 steps)
        plan=dataclasses.replace(SMALL_PLAN, controller=controller, horizon=8 if controller == "sequence" else 20),
        ensemble=SMALL_ENSEMBLE,
    )
    Trainer(cfg, progress=False).train()
    result = evaluate(load_run(cfg.logdir), episodes=10)
    assert result["mean_return"] >= -6.0, result


def test_pets_cli_train_resume_eval(tmp_path, capsys):
    run = str(tmp_path / "pets")
    small = ["--plan.population", "40", "--plan.elites", "5", "--plan.horizon", "5", "--ensemble.units", "16"]
    args = ["train", "--agent", "pets", "--env", "Pendulum-v1", "--logdir", run, "--quiet", "--no-finish", *small]
    assert main([*args, "--steps", "120", "--prefill", "60", "--eval-every", "1000"]) == 0
    assert main(["train", "--resume", run, "--steps", "160", "--quiet", "--no-finish"]) == 0
    stored = json.loads((tmp_path / "pets" / "config.json").read_text())
    assert stored["agent"] == "pets" and stored["prefill"] == 60 and stored["plan"]["population"] == 40
    assert main(["eval", run, "--episodes", "1"]) == 0
    assert set(json.loads((tmp_path / "pets" / "eval.json").read_text())) >= {"mean_return", "std_return"}

    # wm plan: returns, latency, and the ensemble's disagreement at every real step
    assert main(["plan", run, "--episodes", "1", "--video"]) == 0
    plan = json.loads((tmp_path / "pets" / "plan" / "plan.json").read_text())
    assert plan["planner"] == "CEM" and plan["ms_per_action"]["median"] > 0
    assert len(plan["disagreement"][0]) == 200 and plan["mean_disagreement"] >= 0
    assert (tmp_path / "pets" / "plan" / "uncertainty.png").exists()
    assert (tmp_path / "pets" / "plan" / "plan.mp4").exists()
    assert main(["plan", run, "--episodes", "1", "--planner", "mppi"]) == 0
    assert json.loads((tmp_path / "pets" / "plan" / "plan.json").read_text())["planner"] == "MPPI"
    # the same model re-planned closed loop: a feedback law's gains instead of an action sequence
    assert main(["plan", run, "--episodes", "1", "--plan.controller", "linear"]) == 0
    assert json.loads((tmp_path / "pets" / "plan" / "plan.json").read_text())["plan"]["controller"] == "linear"

    # wm dream on an ensemble: open-loop error per horizon and the members' spread
    assert main(["dream", run, "--horizon", "20", "--episodes", "1"]) == 0
    metrics = json.loads((tmp_path / "pets" / "dream" / "metrics.json").read_text())
    assert len(metrics["mse"]) == 20 and len(metrics["member_std"]) == 20
    assert "horizon   1" in capsys.readouterr().out


def test_bench_planners_writes_the_latency_table(tmp_path):
    from worldmodels.report.bench import bench_planners

    small = PlanConfig(horizon=4, population=20, iterations=2, elites=4, simulations=4, policy_samples=2)
    result = bench_planners(decisions=1, plan=small)
    assert set(result) == {
        "setting",
        "cem",
        "cem_constrained",
        "mppi",
        "mcts",
        "cem_linear",
        "cem_latent",
        "cem_latent_constrained",
        "mppi_latent",
        "mcts_latent",
    }
    assert result["cem_constrained"]["ms_per_action"] > 0 and result["cem_latent_constrained"]["ms_per_action"] > 0
    assert result["cem_linear"]["ms_per_action"] > 0
    assert result["cem"]["ms_per_action"] > 0 and result["mppi_latent"]["ms_per_action_bf16"] > 0
    out = tmp_path / "bench.json"
    assert main(["bench", "planners", "--decisions", "1", "--json", str(out), "--threads", "1"]) == 0
    assert json.loads(out.read_text())["setting"]["population"] == 500


def test_a_dreamer_run_can_act_by_planning(tmp_path):
    cfg = tiny_config(tmp_path, env="CartPole-v1", steps=150, prefill=120)
    Trainer(cfg, progress=False).train()
    assert main(["plan", cfg.logdir, "--episodes", "1"]) == 0
    assert json.loads((tmp_path / "run" / "plan" / "plan.json").read_text())["planner"] == "MCTS"


def test_pets_defaults_follow_the_agent(tmp_path):
    from worldmodels.cli import build_parser, resolve_config

    args = build_parser().parse_args(["train", "--agent", "pets", "--logdir", str(tmp_path / "r")])
    cfg, _ = resolve_config(args)
    assert cfg.prefill == 200 and cfg.plan.horizon == 30  # PETS preset, not Dreamer's 1000 / 15
    args = build_parser().parse_args(["train", "--agent", "pets", "--prefill", "7", "--logdir", str(tmp_path / "r")])
    assert resolve_config(args)[0].prefill == 7  # a given flag wins over the preset
    args = build_parser().parse_args(["train", "--agent", "mpc", "--logdir", str(tmp_path / "r")])
    assert resolve_config(args)[0].plan.horizon == 5  # latent MPC bootstraps with its critic
    args = build_parser().parse_args(
        ["train", "--agent", "mpc", "--plan.horizon", "9", "--logdir", str(tmp_path / "r")]
    )
    assert resolve_config(args)[0].plan.horizon == 9


@pytest.mark.parametrize(
    "env,planner,match",
    [
        ("Pendulum-v1", "mcts", "continuous"),
        ("CartPole-v1", "cem", "discrete"),
    ],
)
def test_planner_that_cannot_fit_the_actions_is_a_clear_error(tmp_path, capsys, env, planner, match):
    code = main(["train", "--agent", "mpc", "--planner", planner, "--env", env, "--logdir", str(tmp_path / "x")])
    assert code == 2
    assert match in capsys.readouterr().err


def test_bad_plan_settings_are_clear_errors(tmp_path, capsys):
    base = ["train", "--agent", "pets", "--env", "Pendulum-v1", "--logdir", str(tmp_path / "y")]
    assert main([*base, "--plan.elites", "600"]) == 2
    assert "--plan.elites 600 exceeds --plan.population 500" in capsys.readouterr().err
    assert main([*base, "--plan.horizon", "0"]) == 2
    assert "horizon" in capsys.readouterr().err
    assert main([*base, "--obs", "pixels"]) == 2
    assert "--agent mpc" in capsys.readouterr().err
    assert main([*base, "--plan.controller", "pid"]) == 2
    assert "--plan.controller must be one of sequence, linear" in capsys.readouterr().err
    linear = ["--plan.controller", "linear"]
    assert main(["train", "--agent", "mpc", *linear, "--logdir", str(tmp_path / "z")]) == 2
    assert "only --agent pets" in capsys.readouterr().err
    assert main([*base, *linear, "--env", "CartPole-v1"]) == 2
    assert "discrete" in capsys.readouterr().err


@pytest.mark.parametrize("env,planner", [("Pendulum-v1", "mppi"), ("CartPole-v1", "mcts")])
def test_latent_mpc_trains_and_acts_by_planning(tmp_path, env, planner):
    cfg = tiny_config(tmp_path, env=env, agent="mpc", planner=planner, steps=160, prefill=120, plan=SMALL_PLAN)
    Trainer(cfg, progress=False).train()
    run = load_run(cfg.logdir)
    assert type(run.agent).__name__ == "LatentMPC"
    result = evaluate(run, episodes=1)
    assert result["episodes"] == 1


def test_pets_value_learns_td_targets_and_bootstraps_plans():
    """With --ensemble.value, V is fitted by TD(lambda) on replayed sequences: from states left
    of 0 every transition is terminal (V = r = 1; the sequence then crosses into a new episode,
    which must not leak into the target); right of 0 the episode goes on and stays right
    (V = 1 + 0.5 V = 2 at discount 0.5). Plans then add discount^H V(final state)."""
    import dataclasses

    import torch

    from worldmodels.agents.pets import make_pets
    from worldmodels.config import Config
    from worldmodels.specs import VECTOR, ActionSpec, ObsSpec

    torch.manual_seed(0)
    cfg = Config(
        agent="pets",
        plan=dataclasses.replace(SMALL_PLAN, discount=0.5),
        ensemble=dataclasses.replace(SMALL_ENSEMBLE, value=True, batch=32, value_horizon=4),
    )
    pets = make_pets(ObsSpec(vector=1), ActionSpec(dim=1, discrete=False), cfg)
    rows, length = pets.replay_shape
    assert length == 4
    for _ in range(600):
        x = torch.rand(rows, 1) * 2 - 1
        left = x[:, 0] < 0
        no = torch.zeros(rows, dtype=torch.bool)
        batch = {
            VECTOR: x[:, None].expand(rows, length, 1),
            "action": torch.zeros(rows, length, 1),
            "reward": torch.ones(rows, length),
            "is_terminal": torch.stack([no, left, no, left], 1),
            "is_first": torch.stack([no, no, left, no], 1),
        }
        metrics = pets.train_step(batch)
    assert "loss/value" in metrics
    values = pets.mean_state_value(torch.tensor([[-0.6], [0.6]]))
    assert torch.allclose(values, torch.tensor([1.0, 2.0]), atol=0.15), values
    heads = pets.state_value(torch.tensor([[-0.6], [0.6]]).expand(pets.ensemble.members, 2, 1))
    assert heads.shape == (pets.ensemble.members, 2)  # one value per head, each fitted
    assert torch.allclose(heads, torch.tensor([1.0, 2.0]).expand_as(heads), atol=0.3), heads
