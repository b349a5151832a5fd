"""Costs: recorded like rewards, predicted by every family with a cost head, learned under a limit
(a PID Lagrange multiplier) and planned under it (feasible-first ranking, MCTS pruning)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import tiny_config
from worldmodels.behavior.constraints import PIDLagrangian, episode_cost
from worldmodels.config import Config, DreamerConfig, EnsembleConfig, PlanConfig, resolve, validate, with_cost_horizon
from worldmodels.data.replay import ReplayStore
from worldmodels.envs.costs import CostWrapper
from worldmodels.envs.make import make_env, make_vector_env
from worldmodels.errors import CostError, RunConfigError
from worldmodels.models.base import COSTS
from worldmodels.models.ensemble import GaussianEnsemble
from worldmodels.models.world_model import make_rssm
from worldmodels.planning.mcts import MCTS
from worldmodels.planning.objectives import constrained, cost_budget, pessimistic_cost
from worldmodels.report.evaluate import evaluate
from worldmodels.run.collect import Collector
from worldmodels.run.runs import load_run
from worldmodels.run.train import Trainer
from worldmodels.specs import COST, ActionSpec, ObsSpec


def test_cost_is_aligned_like_the_reward():
    """Step t records the cost paid on arriving at obs_t, exactly where reward_t is (0 at a first
    step), across an autoreset: the lane pays cost 1 on steps 3..6 near the centre line."""
    env = make_vector_env("wmtest/Lane-v0", 1)
    collector = Collector(env, seed=0, costs=True)
    hold = lambda obs, first: np.zeros((1, 1), np.float32)  # noqa: E731 - stay on the centre line
    records = [collector.step(hold)[0] for _ in range(23)]
    env.close()
    cost = np.array([float(r[COST][0]) for r in records])
    reward = np.array([float(r["reward"][0]) for r in records])
    first = np.array([bool(r["is_first"][0]) for r in records])
    assert first[0] and first[11] and first[22]  # 10 steps then the last row, per episode
    t = np.array([round(float(r["vector"][0, 0]) * 10) for r in records])  # the step each row arrived at
    assert np.array_equal(cost, ((t >= 3) & (t <= 6) & ~first).astype(float))
    assert np.all(reward[~first] == 1.0) and np.all(reward[first] == 0.0)


def test_episode_and_total_costs_reach_the_metrics_and_survive_a_resume(tmp_path):
    cfg = tiny_config(
        tmp_path, env="wmtest/Lane-v0", agent="pets", steps=60, prefill=60, eval_every=60, eval_episodes=2
    )
    Trainer(cfg, progress=False).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    episode_costs = [r["episode/cost"] for r in rows if "episode/cost" in r]
    paid = [r["cost/paid"] for r in rows if "cost/paid" in r]
    store = ReplayStore(tmp_path / "run" / "replay", capacity=1000, streams=1)
    assert COST in store.sample(2, 4, np.random.default_rng(0))  # batches carry the costs
    recorded = float(
        np.sum([np.load(p)[COST].sum() for p in sorted((tmp_path / "run" / "replay").glob("chunk-*.npz"))])
    )
    assert paid[-1] == pytest.approx(recorded) and recorded > 0
    assert episode_costs and all(c >= 0 for c in episode_costs)
    assert store.positions[0].cost == pytest.approx(recorded)  # the replay alone says what was paid
    assert "eval/mean_cost" in rows[-1] and "eval/cost_violation_rate" not in rows[-1]  # no limit, no violations
    resumed = Trainer(Config.from_dict({**json.loads(cfg.to_json()), "steps": 80}), resume=True, progress=False)
    assert resumed.cost_paid == pytest.approx(recorded)
    resumed.close()


def test_wm_eval_reports_costs_and_the_violation_rate(tmp_path):
    cfg = tiny_config(
        tmp_path,
        env="wmtest/Lane-v0",
        agent="pets",
        steps=40,
        prefill=40,
        cost_limit=1.0,
        cost_horizon=10,
        plan=PlanConfig(horizon=3, population=20, elites=4, iterations=1, objective="constrained"),
    )
    Trainer(cfg, progress=False).train()
    result = evaluate(load_run(cfg.logdir), episodes=3)
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert {"mean_cost", "std_cost", "cost_violation_rate", "costs", "cost_limit"} <= set(saved)
    assert saved["cost_limit"] == 1.0 and len(saved["costs"]) == 3
    assert result["cost_violation_rate"] == pytest.approx(np.mean(np.array(saved["costs"]) > 1.0))


def test_the_run_sets_the_cost_horizon_from_the_time_limit(tmp_path):
    cfg = tiny_config(
        tmp_path, env="wmtest/Lane-v0", agent="pets", cost_limit=0.0, plan=PlanConfig(objective="constrained")
    )
    trainer = Trainer(cfg, progress=False)
    assert trainer.cfg.cost_horizon == 10 and trainer.agent.budget.plan(10) == pytest.approx(0.02)
    trainer.close()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["cost_horizon"] == 10
    with pytest.raises(ValueError, match="--cost-horizon"):
        with_cost_horizon(Config(cost_limit=1.0, env="X"), None)


# ---------------------------------------------------------------- bad input


def test_cost_limit_on_an_env_without_costs_is_refused_before_a_run_folder(tmp_path):
    cfg = tiny_config(tmp_path, env="CartPole-v1", cost_limit=5.0)
    with pytest.raises(CostError, match="CostWrapper"):
        Trainer(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_a_non_finite_cost_stops_and_names_the_step():
    env = make_env("wmtest/Lane-v0", env_kwargs={"nan_cost_at": 3})
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    env.step(np.zeros(1, np.float32))
    with pytest.raises(CostError, match="step 3"):
        env.step(np.zeros(1, np.float32))


@pytest.mark.parametrize(
    "given, message",
    [
        ({"cost_limit": -0.5}, "-1, the default, means no limit"),
        ({"cost_limit": -2.0}, "--cost-limit must be >= -1"),
        ({"plan.objective": "constrained"}, "--cost-limit"),
        ({"pretrain_dream": 100, "prefill": 10}, "--pretrain-dream"),
        ({"agent": "vmc", "cost_limit": 1.0}, "V/M/C"),
    ],
)
def test_bad_cost_settings_are_refused(tmp_path, given, message):
    cfg = resolve({"logdir": str(tmp_path / "run"), **given})
    with pytest.raises(ValueError, match=message):
        validate(cfg, device=False)


def test_a_cost_limit_makes_planners_constrained_unless_told_otherwise(tmp_path):
    assert resolve({"agent": "pets", "cost_limit": 0.0}).plan.objective == "constrained"
    assert resolve({"agent": "pets", "cost_limit": 0.0, "plan.objective": "risk"}).plan.objective == "risk"
    assert resolve({"agent": "pets"}).plan.objective == "mean"


def test_constrained_objective_without_a_cost_head_is_refused(tmp_path):
    """Pendulum charges no cost, so the ensemble has no cost output: the constrained objective
    cannot rank plans by it (the error names the cause), for pets and for latent mpc alike."""
    from worldmodels.agents.mpc import make_mpc
    from worldmodels.agents.pets import make_pets

    cfg = Config(cost_limit=1.0, cost_horizon=200, plan=PlanConfig(objective="constrained"))
    with pytest.raises(RunConfigError, match="predicts none"):
        make_pets(ObsSpec(vector=3), ActionSpec(1, False), cfg)
    with pytest.raises(RunConfigError, match="predicts none"):
        make_mpc(ObsSpec(vector=3), ActionSpec(1, False), tiny_config(tmp_path, cost_limit=1.0, cost_horizon=200))


# ------------------------------------------------------------------ pieces


def test_cost_wrapper_adds_a_cost_to_any_env():
    env = make_env("CartPole-v1", costs=True, env_kwargs={})
    with pytest.raises(CostError, match="reports no cost"):
        env.reset(seed=0)
        env.step(np.array([1.0, 0.0], np.float32))
    import gymnasium as gym

    from worldmodels.envs.adapter import ModelEnv

    wrapped = ModelEnv(CostWrapper(gym.make("CartPole-v1"), lambda o, a, i: 2.0), obs_mode="state", image_size=64)
    wrapped.reset(seed=0)
    assert wrapped.obs_spec.cost and wrapped.step(np.array([1.0, 0.0], np.float32))[4][COST] == 2.0


def test_every_family_with_a_cost_head_predicts_and_learns_cost(tmp_path):
    """The RSSM's cost term and prediction; the ensemble learns a known cost function: cost 1
    where the next state's x > 0.5 (a random guess or the base rate of 25% cannot reach 90%)."""
    spec = ObsSpec(vector=2, cost=True)
    wm = make_rssm(spec, ActionSpec(2, True), tiny_config(tmp_path))
    assert COSTS in wm.capabilities and "cost" in wm.loss_scales
    batch = {
        "vector": torch.randn(2, 5, 2),
        "action": torch.eye(2)[torch.randint(0, 2, (2, 5))],
        "reward": torch.zeros(2, 5),
        COST: torch.ones(2, 5),
        "is_first": torch.zeros(2, 5, dtype=torch.bool),
        "is_terminal": torch.zeros(2, 5, dtype=torch.bool),
    }
    losses, posts, _ = wm.loss(batch)
    assert losses[COST].shape == (2, 5) and wm.predict(wm.features(posts))[COST].shape == (2, 5)
    assert COSTS not in make_rssm(ObsSpec(vector=2), ActionSpec(2, True), tiny_config(tmp_path)).capabilities

    torch.manual_seed(0)
    e = GaussianEnsemble(1, 1, members=3, units=32, layers=2, costs=True)
    opt = torch.optim.Adam(e.parameters(), lr=3e-3)
    for _ in range(400):
        obs = torch.rand(3, 128, 1) * 2 - 1
        action = torch.rand(3, 128, 1) * 2 - 1
        nxt = obs + 0.2 * action
        cost = (nxt[..., 0] > 0.5).float()
        e.inputs.update(torch.cat([obs, action], -1))
        e.targets.update(torch.cat([nxt - obs, torch.zeros_like(cost)[..., None]], -1))
        loss, _ = e.transition_loss(
            obs, action, torch.zeros_like(cost), nxt, torch.zeros_like(cost), torch.ones_like(cost).bool(), cost
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    obs = torch.rand(1, 1000, 1) * 2 - 1
    action = torch.rand(1, 1000, 1) * 2 - 1
    _, _, _, predicted = e.step(obs.expand(3, -1, -1), action.expand(3, -1, -1), sample=False, with_cost=True)
    truth = ((obs + 0.2 * action)[..., 0] > 0.5).float()[0]
    accuracy = ((predicted.mean(0) > 0.5).float() == truth).float().mean()
    assert accuracy > 0.9, accuracy
    roll = e.rollout(obs[0, 0], action[0, :4, None].transpose(0, 1).expand(2, -1, -1))
    assert roll.costs.shape == (2, 3, 1, 4)


def test_lagrange_multiplier_rises_above_the_limit_and_falls_below_it():
    lagrangian = PIDLagrangian(10.0, kp=0.1, ki=0.05, kd=0.0, ceiling=100.0)
    above = [float(lagrangian.update(torch.tensor(30.0))) for _ in range(20)]
    assert all(b > a for a, b in zip(above, above[1:])) and above[-1] > 1.0
    below = [float(lagrangian.update(torch.tensor(0.0))) for _ in range(200)]
    assert below[0] < above[-1] and all(b <= a for a, b in zip(below, below[1:])) and below[-1] == 0.0
    assert float(lagrangian.integral) == 0.0  # no wind-up while the constraint is slack


def test_episode_cost_reads_the_imagined_cost_rate():
    """0.02 per step where the episode goes on (weight 1), whatever is predicted past its end."""
    cost = torch.full((8, 15), 0.02)
    cost[:, 10:] = 5.0
    weight = torch.ones(8, 15)
    weight[:, 10:] = 0.0
    assert float(episode_cost(cost, weight, 500)) == pytest.approx(10.0)


def test_feasible_first_ranking_never_prefers_an_infeasible_plan():
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        n = int(torch.randint(2, 30, (1,), generator=generator))
        returns = torch.randn(n, 5, 2, generator=generator) * 10
        costs = torch.rand(n, 5, 2, generator=generator) * 3
        scores = constrained(returns, costs, budget=1.0, quantile=0.9)
        feasible = pessimistic_cost(costs, 0.9) <= 1.0
        if feasible.any():
            assert feasible[scores.argmax()]
            assert scores[feasible].min() > scores[~feasible].max() if (~feasible).any() else True
            best = returns.mean((1, 2)).masked_fill(~feasible, -math.inf).argmax()
            assert scores.argmax() == best
        else:  # nothing fits: the least costly plan
            assert scores.argmax() == pessimistic_cost(costs, 0.9).argmin()


def test_the_pessimistic_cost_counts_a_doubtful_member():
    """One member of five predicts danger: its doubt makes the plan infeasible at the 0.9 quantile."""
    costs = torch.zeros(1, 5, 1)
    costs[0, 4] = 2.0
    assert float(pessimistic_cost(costs, 0.9)) > 1.0 and float(costs.mean()) < 1.0
    assert cost_budget(25.0, 15, 1000, 0.5) == pytest.approx(25 * 15 / 1000 + 0.5)


def test_mcts_never_takes_a_pruned_action():
    """Action 0 earns the most but is never allowed; MCTS picks among the others."""

    def step(state, a):
        return state + 1, [10.0, 1.0, 2.0][a], 1.0

    search = MCTS(3, simulations=50)
    pruned = search.search(0, step, value=lambda s: 0.0, allowed=lambda s: torch.tensor([False, True, True]))
    assert pruned.visits[0] == 0 and pruned.action in (1, 2)
    assert search.choose(0, step, value=lambda s: 0.0) == 0
    assert search.choose(0, step, value=lambda s: 0.0, allowed=lambda s: torch.zeros(3, dtype=torch.bool)) == 0


def test_pretrain_dream_trains_before_the_first_own_action(tmp_path):
    cfg = tiny_config(tmp_path, env="wmtest/Lane-v0", steps=100, prefill=100, pretrain_dream=7, train_ratio=8)
    trainer = Trainer(cfg, progress=False)
    counts = trainer.train()
    assert counts["train_steps"] == 7  # no own step yet, so no ratio updates: only the dream's


def test_constrained_dreamer_logs_and_checkpoints_its_multiplier(tmp_path):
    cfg = tiny_config(tmp_path, env="wmtest/Lane-v0", steps=150, prefill=100, cost_limit=0.0, train_ratio=16)
    Trainer(cfg, progress=False).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("lagrange" in r and "loss/cost_critic" in r and "imag/episode_cost" in r for r in rows)
    agent = load_run(cfg.logdir).agent
    assert agent.constrained and "lagrangian.multiplier" in agent.state_dict()
    assert "cost_critic" in agent.optimizers


def lane_run(tmp_path, cost_limit: float, seed: int = 0):
    cfg = tiny_config(
        tmp_path / f"limit{cost_limit}",
        env="wmtest/Lane-v0",
        agent="pets",
        seed=seed,
        steps=400,
        prefill=100,
        train_ratio=256,
        eval_every=10_000,
        cost_limit=cost_limit,
        plan=PlanConfig(
            horizon=10, population=100, elites=10, iterations=3, objective="constrained" if cost_limit >= 0 else "mean"
        ),
        ensemble=EnsembleConfig(members=5, units=64, batch=64),
    )
    Trainer(cfg, progress=False).train()
    return evaluate(load_run(cfg.logdir), episodes=10)


def test_the_constrained_planner_keeps_out_of_the_hazard_and_the_unconstrained_one_goes_through(tmp_path):
    """The lane's centre line is the shortcut: it pays the most reward and crosses the hazard (cost
    4 an episode). PETS without a limit learns to take it; with --cost-limit 0 it learns to keep out
    of the hazard. Chance cannot pass: a random policy pays 2.68 an episode on average (std 1.3),
    and in 2,000 simulated sets of 10 episodes none averaged 1.0 or less; nor can a policy that
    stays on the centre line pay less than 4. So a mean cost <= 1 is a learned way round and a mean
    cost >= 3.5 the learned shortcut. (How much return the safe agent keeps is a matter of how
    sharply its model has learned the hazard's edge, which a cautious planner rarely visits:
    docs/BENCHMARKS.md.)"""
    safe = lane_run(tmp_path, cost_limit=0.0)
    free = lane_run(tmp_path, cost_limit=-1.0)
    assert free["mean_cost"] >= 3.5 and free["mean_return"] >= 9.0, free
    assert safe["mean_cost"] <= 1.0, safe


# ------------------------------------------------------------ curriculum and recovery


def test_difficulty_levels_of_the_safe_tasks():
    from worldmodels.envs.safe import make_safe

    zone = make_safe("CartPoleZone")
    point = make_safe("PointGoal")
    for level, expected_zone, expected_radius in ((0.0, 2.0, 0.075), (0.5, 1.5, 0.1875), (1.0, 1.0, 0.3)):
        zone.get_wrapper_attr("set_difficulty")(level)
        point.get_wrapper_attr("set_difficulty")(level)
        assert zone.unwrapped.zone == pytest.approx(expected_zone)
        assert point.unwrapped.hazards[0, 2] == pytest.approx(expected_radius)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        point.get_wrapper_attr("set_difficulty")(1.5)


def test_curriculum_raises_the_level_after_an_evaluation_within_the_limit(tmp_path):
    """PointGoal at level 0 has a hazard a quarter its size: a limit of 150 (every step) is always
    met, so each evaluation raises the level by the step until the task is itself."""
    cfg = tiny_config(
        tmp_path,
        env="safe:PointGoal",
        agent="pets",
        steps=60,
        prefill=60,
        eval_every=20,
        log_every=20,
        eval_episodes=1,
        max_episode_steps=10,
        cost_limit=150.0,
        curriculum=True,
        curriculum_step=0.5,
        plan=PlanConfig(horizon=2, population=8, elites=2, iterations=1, objective="constrained"),
    )
    counts = Trainer(cfg, progress=False).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["curriculum/level"] for r in rows if "curriculum/level" in r] == [0.5, 1.0, 1.0]
    assert counts["curriculum_level"] == 1.0


def test_curriculum_on_a_task_without_levels_is_refused(tmp_path):
    cfg = tiny_config(tmp_path, env="wmtest/Lane-v0", agent="pets", cost_limit=1.0, curriculum=True)
    with pytest.raises(RunConfigError, match="defines none"):
        Trainer(cfg, progress=False)
    with pytest.raises(ValueError, match="--cost-limit"):
        validate(resolve({"logdir": str(tmp_path / "x"), "curriculum": True}), device=False)


def test_risky_starts_begin_imagination_where_the_cost_head_fires(tmp_path):
    """Of 100 replayed starts, 10 predict cost (the others 0): every extra start is one of them."""
    from worldmodels.agents.dreamer import build_dreamer

    cfg = tiny_config(tmp_path, dreamer=DreamerConfig(risky_starts=0.5))
    agent = build_dreamer(ObsSpec(vector=3, cost=True), ActionSpec(2, True), cfg)
    wm = agent.world_model
    start = wm.initial(100)
    fires = torch.zeros(100)
    fires[::10] = 1.0
    original = wm.predict
    wm.predict = lambda feat, decode_obs=True: {**original(feat, decode_obs), COST: fires}
    extended, cont = agent._with_risky_starts(start, torch.ones(100))
    assert cont.shape == (150,) and extended.deter.shape[0] == 150
    assert torch.equal(extended.deter[:100], start.deter)
    chosen = extended.deter[100:]
    assert all(any(torch.equal(row, start.deter[i]) for i in range(0, 100, 10)) for row in chosen)
    with pytest.raises(RunConfigError, match="predicts none"):
        build_dreamer(ObsSpec(vector=3), ActionSpec(2, True), cfg)


def test_latent_mpc_learns_and_plans_under_the_limit(tmp_path):
    """Latent MPC trains under the limit (the Lagrangian Dreamer's terms) and scores plans with the
    constrained objective: the cost head over the plan, the cost critic past it."""
    cfg = tiny_config(
        tmp_path,
        env="wmtest/Lane-v0",
        agent="mpc",
        steps=130,
        prefill=100,
        train_ratio=16,
        cost_limit=0.0,
        plan=PlanConfig(horizon=3, population=16, elites=4, iterations=1, policy_samples=2, objective="constrained"),
    )
    Trainer(cfg, progress=False).train()
    agent = load_run(cfg.logdir).agent
    assert agent.constrained and agent.objective_kind == "constrained"
    start = agent.posterior(
        {"vector": torch.tensor([[0.2, 0.0]])}, torch.ones(1, dtype=torch.bool), None
    )  # the lane's step 2, on the centre line
    scores = agent.objective(start)(torch.zeros(4, 3, 1))
    assert scores.shape == (4,) and torch.isfinite(scores).all()


def test_the_curriculum_level_is_part_of_the_observation():
    env = make_env("safe:PointGoal", difficulty=True)
    obs, _ = env.reset(seed=0)
    assert env.obs_spec.vector == 9 and obs["vector"][-1] == 1.0
    env.get_wrapper_attr("set_difficulty")(0.5)
    assert env.step(np.zeros(2, np.float32))[0]["vector"][-1] == 0.5


def test_finetuning_under_a_limit_starts_the_cost_critic_fresh(tmp_path):
    """A source trained on the lane without a limit has a cost head but no cost critic or
    multiplier; fine-tuning it under a limit keeps its model and starts those fresh, and its
    planners default to the constrained objective as a fresh run's do."""
    from worldmodels.run.finetune import finetune_config

    source = tiny_config(tmp_path / "src", env="wmtest/Lane-v0", steps=110, prefill=100)
    Trainer(source, progress=False).train()
    cfg = finetune_config(Path(source.logdir), tmp_path / "ft", given={"cost_limit": 0.0, "steps": 20})
    assert cfg.plan.objective == "constrained"
    trainer = Trainer(cfg, progress=False)
    assert trainer.agent.constrained and float(trainer.agent.lagrangian.multiplier) == 0.0
    trainer.close()
