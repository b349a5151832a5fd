"""Planners on problems with known answers: a quadratic, bounds, NaN scores, a small tree."""

import pytest
import torch

from worldmodels.errors import PlannerConfigError, PlanningError
from worldmodels.planning import CEM, MCTS, MPPI
from worldmodels.planning.feedback import GAIN_LIMIT, LinearFeedback

H, A = 5, 2
TARGET = torch.tensor([[0.3, -0.6]]).expand(H, A) * torch.linspace(0.5, 1.0, H)[:, None]


def quadratic(actions):
    return -((actions - TARGET) ** 2).sum((1, 2))


@pytest.mark.parametrize("cls", [CEM, MPPI])
def test_finds_quadratic_minimum(cls):
    planner = cls(A, horizon=H, population=300, iterations=8, generator=torch.Generator().manual_seed(0))
    result = planner.plan(quadratic)
    assert (result.actions - TARGET).abs().max() < 0.05, result.actions


@pytest.mark.parametrize("cls", [CEM, MPPI])
def test_bounds_never_violated(cls):
    low, high = torch.tensor([-0.2, 0.0]), torch.tensor([0.1, 0.5])
    seen = []

    def far_outside(actions):  # optimum at +-3, far outside the box
        seen.append(actions.clone())
        return -((actions - torch.tensor([3.0, -3.0])) ** 2).sum((1, 2))

    planner = cls(A, horizon=H, population=200, iterations=10, low=low, high=high)
    plan = planner.plan(far_outside).actions
    allowed = torch.cat(seen)
    assert bool((allowed >= low).all() and (allowed <= high).all())
    assert torch.allclose(plan, torch.stack([high[0], low[1]]).expand(H, A), atol=0.03)


def test_warm_start_shifts_by_one_step():
    planner = CEM(A, horizon=H, population=100, iterations=3)
    plan = planner.plan(quadratic).actions
    assert torch.equal(planner.mean[:-1], plan[1:])
    assert torch.equal(planner.mean[-1], torch.zeros(A))  # the new last step starts at the midpoint
    # The next plan starts from the shifted one: with one iteration and momentum 1-eps it barely moves.
    sticky = CEM(A, horizon=H, population=10, iterations=1, momentum=0.999)
    sticky.mean = planner.mean.clone()
    assert torch.allclose(sticky.plan(quadratic).actions, planner.mean, atol=0.01)
    planner.reset()
    assert planner.mean is None


def test_nan_candidates_are_never_selected():
    def half_nan(actions):  # candidates with a positive first action score NaN but would look best
        scores = actions[:, 0, 0] * 100
        return torch.where(actions[:, 0, 0] > 0, torch.full_like(scores, float("nan")), scores)

    for cls in (CEM, MPPI):
        plan = cls(A, horizon=H, population=200, iterations=5).plan(half_nan).actions
        assert plan[0, 0] <= 0.0


def test_all_nan_raises_naming_the_cause():
    with pytest.raises(PlanningError, match="NaN"):
        CEM(A, horizon=H, population=20).plan(lambda a: torch.full((len(a),), float("nan")))
    with pytest.raises(PlanningError, match="shape"):
        CEM(A, horizon=H, population=20).plan(lambda a: torch.zeros(len(a), 2))


def test_settings_that_cannot_work_say_what_fits():
    with pytest.raises(PlannerConfigError, match="between 1 and the population"):
        CEM(A, population=10, elites=20)
    with pytest.raises(PlannerConfigError, match="horizon"):
        MPPI(A, horizon=0)
    with pytest.raises(PlannerConfigError, match="temperature"):
        MPPI(A, temperature=0)
    with pytest.raises(PlannerConfigError, match="cem or mppi"):
        MCTS(1)


def test_proposed_candidates_join_the_population():
    planner = CEM(A, horizon=H, population=20, iterations=1, elites=1, momentum=0.0)
    plan = planner.plan(quadratic, candidates=TARGET[None]).actions
    assert torch.allclose(plan, TARGET)  # the proposal is the best candidate and the only elite


def tree_model():
    """States are action paths. Action 0 pays 1 now, then nothing; action 1 pays 0, then 3 if
    followed by action 1. A greedy one-step search picks 0; the right answer is 1."""

    def step(state, action):
        path = state + (action,)
        reward = {(0,): 1.0, (1,): 0.0, (1, 1): 3.0}.get(path, 0.0)
        return path, reward, 1.0 if len(path) < 2 else 0.0

    return step


def test_mcts_finds_best_first_action():
    result = MCTS(2, simulations=100, discount=1.0).search((), tree_model(), value=lambda s: 0.0)
    assert result.action == 1
    assert result.q[1] > 2.5 and result.q[0] == pytest.approx(1.0)  # q averages the visits' returns
    greedy = MCTS(2, simulations=2, discount=1.0).search((), tree_model(), value=lambda s: 0.0)
    assert greedy.action == 0  # with one look per action it cannot see the delayed reward


def test_mcts_uses_value_bootstrap_and_prior():
    step = lambda s, a: (s + (a,), 0.0, 1.0)  # noqa: E731
    value = lambda s: 5.0 if s[:1] == (2,) else 0.0  # noqa: E731
    result = MCTS(3, simulations=20).search((), step, value)
    assert result.action == 2
    prior = lambda s: torch.tensor([0.98, 0.01, 0.01])  # noqa: E731
    few = MCTS(3, simulations=3).search((), lambda s, a: (s, 0.0, 1.0), lambda s: 0.0, prior)
    assert few.visits[0] == 3  # with equal values, the prior decides where simulations go


def test_mcts_root_noise_is_seeded_and_valid():
    step = lambda s, a: (s, 0.0, 1.0)  # noqa: E731
    a = MCTS(4, simulations=8, root_noise=0.25, generator=torch.Generator().manual_seed(1)).search(0, step, lambda s: 0)
    b = MCTS(4, simulations=8, root_noise=0.25, generator=torch.Generator().manual_seed(1)).search(0, step, lambda s: 0)
    assert torch.equal(a.visits, b.visits) and a.visits.sum() == 8


def test_discounted_return_counts_the_last_reward_and_stops_after_termination():
    from worldmodels.planning.objectives import discounted_return

    rewards = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    conts = torch.tensor([[1.0, 0.0, 1.0, 1.0]])  # the episode ends after step 1
    assert discounted_return(rewards, conts, 0.5).item() == pytest.approx(1 + 0.5)
    alive = torch.ones(1, 4)
    value = torch.tensor([10.0])
    assert discounted_return(rewards, alive, 1.0, value).item() == pytest.approx(4 + 10)
    assert discounted_return(rewards, conts, 1.0, value).item() == pytest.approx(2)  # no bootstrap once ended


def test_objectives_rank_risky_and_safe_plans_as_intended():
    from worldmodels.planning.objectives import summarize

    # Two candidates with the same mean return: one where members agree, one where they do not.
    safe = torch.full((4, 3), 1.0)
    risky = torch.tensor([[3.0] * 3, [-1.0] * 3, [3.0] * 3, [-1.0] * 3])
    returns = torch.stack([safe, risky])  # (N=2, K=4, M=3)
    assert torch.allclose(summarize(returns, "mean"), torch.tensor([1.0, 1.0]))
    assert summarize(returns, "risk", beta=1.0).argmax() == 0
    assert summarize(returns, "optimistic", beta=1.0).argmax() == 1
    assert summarize(returns, "cvar", alpha=0.25).tolist() == [1.0, -1.0]
    with pytest.raises(ValueError, match="objective"):
        summarize(returns, "median")


@pytest.mark.parametrize("cls", [CEM, MPPI])
def test_planning_linear_feedback_gains_holds_an_unstable_system(cls):
    """An inverted pendulum, linearised: p' = p + 0.1 v, v' = v + 0.1 (2 p + u), failing at
    |p| > 1. Its open-loop pole (1.14 per step) doubles an error every 5 steps, so no fixed
    action sequence holds it for long; a feedback law found by planning over 50 steps must
    hold it for 500 from starting points it was never planned from, which only a stabilising
    law can (both closed-loop poles inside the unit circle)."""
    law_of = LinearFeedback(2, 1)
    zero, one = torch.zeros(2), torch.ones(2)

    def simulate(params, start, steps):  # survival steps of each candidate, (N,)
        act = law_of.law(params, zero, one)
        s = start.expand(1, len(params), 2).clone()
        alive, survived = torch.ones(len(params)), torch.zeros(len(params))
        for _ in range(steps):
            u = act(s)[..., 0] * 3
            s = torch.stack([s[..., 0] + 0.1 * s[..., 1], s[..., 1] + 0.1 * (2 * s[..., 0] + u)], -1)
            alive = alive * (s[0, :, 0].abs() < 1)
            survived += alive
        return survived

    planner = cls(law_of.size, horizon=1, population=200, iterations=5, low=-GAIN_LIMIT, high=GAIN_LIMIT,
                  generator=torch.Generator().manual_seed(0))  # fmt: skip
    params = planner.plan(lambda p: simulate(p[:, 0], torch.tensor([0.5, 0.0]), 50)).actions
    assert params.shape == (1, 3)
    for start in ([0.8, 0.0], [-0.6, 0.5], [0.0, -1.0]):
        assert simulate(params, torch.tensor(start), 500).item() == 500, (params, start)
    gains = params[0, :2] * 3
    closed = torch.tensor([[1.0, 0.1], [0.1 * (2 + gains[0]), 1.0 + 0.1 * gains[1]]])
    assert torch.linalg.eigvals(closed).abs().max() < 1
    action = law_of.action(params[0], torch.tensor([0.5, 0.0]), zero, one)
    assert action.shape == (1,) and -1 <= action.item() <= 1
