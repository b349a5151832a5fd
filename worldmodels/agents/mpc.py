"""Latent MPC: the Dreamer world model and actor-critic, acting by planning in the latent space.

Training is Dreamer's (world model on replay, actor-critic in imagination). Acting differs:
before every step the planner tries action sequences in the RSSM from the current posterior,
scoring each by imagined rewards plus the critic's value at the horizon (PlaNet's latent
planning with TD-MPC2's value bootstrap and policy proposals). Discrete actions use MCTS with
the actor as pUCT prior and the critic at the leaves (MuZero-style).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..config import OFFLINE_PENALTY, Config, validate_mpc
from ..planning.objectives import constrained, discounted_return, summarize
from ..registry import AgentSpec
from ..specs import COST, ActionSpec, ObsSpec
from .base import build_adversary, build_world_model
from .dreamer import Dreamer, make_dreamer
from .planners import PlanBudget, build_planner, check_constrained, is_tree_search, on_device, plan_first_action


class MPCCarry(NamedTuple):
    """The acting state of :class:`PolicyCarry` plus each env's warm-start plan (None after a reset)."""

    state: Any
    action: Tensor
    plans: list[Tensor | None]


class LatentMPC(Dreamer):
    def setup_planning(
        self,
        planner,
        *,
        particles: int = 1,
        objective: str = "mean",
        cvar_alpha: float = 0.1,
        discount: float = 0.99,
        policy_samples: int = 24,
        bf16: bool = False,
        budget: PlanBudget | None = None,
    ) -> LatentMPC:
        if objective == "constrained":
            budget = check_constrained(self.world_model, budget)
        self.budget = budget
        self.planner, self.particles, self.objective_kind = planner, particles, objective
        self.cvar_alpha, self.discount, self.policy_samples, self.plan_bf16 = cvar_alpha, discount, policy_samples, bf16
        return self

    def describe(self) -> str:
        return f"{super().describe()}; planner {type(self.planner).__name__}"

    # ------------------------------------------------------------ objective
    def objective(self, start: Any):
        """Scores of action sequences ``(N, H, A)`` from one posterior ``start (1,)``.

        Rolls out with the world model's ``imagine_features``, the same fast path as
        actor-critic training. ``constrained``: plans whose predicted cost over the horizon fits
        the budget first, ranked by return less the Lagrange multiplier times their cost return
        (the cost critic's value at the horizon included), when the agent learns under the limit.
        """
        wm, m = self.world_model, self.particles

        def score(actions: Tensor) -> Tensor:
            n, horizon = actions.shape[:2]
            rows = start.map(lambda x: x.expand(n * m, *x.shape[1:]))
            with self._autocast(self.plan_bf16):
                feat, _ = wm.imagine_features(rows, actions.repeat_interleave(m, 0))
                heads = wm.predict(feat[:, 1:], decode_obs=False)
                value = self.slow_critic(feat[:, horizon:]).mean()[:, 0]
            reward, _ = self.penalised(feat[:, 1:], heads["reward"].float())
            cont = heads["cont"].float()
            returns = discounted_return(reward, cont, self.discount, value.float())
            if self.objective_kind != "constrained":
                return summarize(returns.reshape(n, 1, m), self.objective_kind, alpha=self.cvar_alpha)
            cost = heads[COST].float().clamp_min(0.0)
            if self.constrained:  # the actor's Lagrangian, in its units; the cost past the horizon counts too
                tail = self.slow_cost_critic(feat[:, horizon:]).mean()[:, 0].float()
                cost_return = discounted_return(cost, cont, self.discount, tail)
                lam = self.lagrangian.multiplier
                returns = returns / self.return_scale.scale() - lam * cost_return / self.cost_scale.scale()
            spent = discounted_return(self.budget.counted(cost), cont, 1.0).reshape(n, 1, m)
            return constrained(returns.reshape(n, 1, m), spent, self.budget.plan(horizon), self.budget.quantile)

        return on_device(score, self.device)

    def proposals(self, start: Any) -> Tensor | None:
        """The actor's own imagined action sequences, offered to the planner as candidates."""
        if self.policy_samples < 1:
            return None
        rows = start.map(lambda x: x.expand(self.policy_samples, *x.shape[1:]))
        with self._autocast(self.plan_bf16):
            _, actions = self.world_model.imagine_features(rows, self.actor.act, self.planner.horizon)
        return actions.float().cpu()  # planners sample on the CPU

    # --------------------------------------------------------------- acting
    @torch.no_grad()
    def act(
        self, obs: dict[str, Tensor], is_first: Tensor, carry: MPCCarry | None = None, mode: bool = False
    ) -> tuple[Tensor, MPCCarry]:
        batch = is_first.shape[0]
        post = self.posterior(obs, is_first, carry)
        plans = carry.plans if carry is not None else [None] * batch
        actions, new_plans = [], []
        for i in range(batch):
            start = post.map(lambda x, i=i: x[i : i + 1])
            if is_tree_search(self.planner):
                actions.append(self._search(start, explore=not mode))
                new_plans.append(None)
                continue
            warm = None if bool(is_first[i]) else plans[i]
            action, plan = plan_first_action(self.planner, self.objective(start), warm, self.proposals(start))
            actions.append(action.to(self.device))
            new_plans.append(plan)
        action = torch.stack(actions)
        return action, MPCCarry(post, action, new_plans)

    def _search(self, start: Any, explore: bool) -> Tensor:
        wm, eye = self.world_model, torch.eye(self.action_spec.dim, device=self.device)

        def step(state: Any, a: int):
            nxt = wm.advance(state, eye[a : a + 1])  # the most likely next state: a deterministic tree
            feat = wm.features(nxt)
            heads = wm.predict(feat, decode_obs=False)
            reward, _ = self.penalised(feat, heads["reward"].float())
            return nxt, float(reward), float(heads["cont"])

        def value(state: Any) -> float:
            return float(self.slow_critic(wm.features(state)).mean())

        def prior(state: Any) -> Tensor:
            return self.actor.probs(wm.features(state))[0]

        def allowed(state: Any) -> Tensor:  # actions whose predicted one-step cost fits the budget
            n = self.action_spec.dim
            nxt = wm.advance(state.map(lambda x: x.expand(n, *x.shape[1:])), eye)
            cost = wm.predict(wm.features(nxt), decode_obs=False)[COST].float()
            return self.budget.counted(cost) <= self.budget.plan(1)

        pruned = allowed if self.objective_kind == "constrained" else None
        return eye[self.planner.choose(start, step, value, prior, explore=explore, allowed=pruned)]


def make_mpc(obs_spec: ObsSpec, action_spec: ActionSpec, cfg: Config) -> LatentMPC:
    wm = build_world_model(cfg, obs_spec, action_spec)
    adversary = build_adversary(cfg, wm)
    agent = make_dreamer(
        obs_spec,
        action_spec,
        cfg.model,
        cfg.dreamer,
        cls=LatentMPC,
        world_model=wm,
        adversary=adversary,
        penalty=cfg.penalty,
        cost_limit=cfg.cost_limit,
        cost_horizon=cfg.cost_horizon,
    )
    agent.configure_replay(cfg.batch, cfg.seq_len)
    p = cfg.plan
    return agent.setup_planning(
        build_planner(cfg.planner, action_spec, p),
        particles=p.particles,
        objective=p.objective,
        cvar_alpha=p.cvar_alpha,
        discount=p.discount,
        policy_samples=p.policy_samples,
        bf16=p.bf16,
        budget=PlanBudget.from_config(cfg),
    )


# Latent MPC bootstraps with the critic, so it plans over a short horizon, as TD-MPC2 does (3).
SPEC = AgentSpec(
    build=make_mpc,
    default_family="rssm",
    defaults={"plan.horizon": 5},
    offline_defaults={"penalty": OFFLINE_PENALTY},
    validate=validate_mpc,
    plans_with="mpc",
)
