"""Latent MPC: the Dreamer world model and actor-critic, acting by planning in the latent space.

Training is Dreamer's (world model on replay, actor-critic in imagination). Acting differs:
before every step the planner tries action sequences in the RSSM from the current posterior,
scoring each by imagined rewards plus the critic's value at the horizon (PlaNet's latent
planning with TD-MPC2's value bootstrap and policy proposals). Discrete actions use MCTS with
the actor as pUCT prior and the critic at the leaves (MuZero-style).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..config import Config
from ..models.rssm import LatentState
from ..nn.layers import time_slice
from ..planning import MCTS
from ..planning.objectives import discounted_return, summarize
from ..specs import ActionSpec, ObsSpec
from .dreamer import Dreamer, make_dreamer
from .planners import build_planner, plan_first_action


class MPCCarry(NamedTuple):
    """The acting state of :class:`PolicyCarry` plus each env's warm-start plan (None after a reset)."""

    state: LatentState
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
    ) -> LatentMPC:
        self.planner, self.particles, self.objective_kind = planner, particles, objective
        self.cvar_alpha, self.discount, self.policy_samples, self.plan_bf16 = cvar_alpha, discount, policy_samples, bf16
        return self

    def describe(self) -> str:
        return f"{super().describe()}; planner {type(self.planner).__name__}"

    # ------------------------------------------------------------ objective
    def objective(self, start: LatentState):
        """Scores of action sequences ``(N, H, A)`` from one posterior ``start (1,)``.

        Rolls out with class indices and gather-based heads (``imagine_sparse``), the same fast
        path as actor-critic training.
        """
        wm, m = self.world_model, self.particles

        def score(actions: Tensor) -> Tensor:
            n, horizon = actions.shape[:2]
            rows = start.map(lambda x: x.expand(n * m, *x.shape[1:]))
            steps = iter(actions.repeat_interleave(m, 0).unbind(1))
            with self._autocast(self.plan_bf16):
                feat, _ = wm.rssm.imagine_sparse(rows, lambda f: next(steps), horizon)
                heads = wm.predict(time_slice(feat, slice(1, None)), decode_obs=False)
                value = self.slow_critic(time_slice(feat, slice(horizon, None))).mean()[:, 0]
            returns = discounted_return(heads["reward"].float(), heads["cont"].float(), self.discount, value.float())
            return summarize(returns.reshape(n, 1, m), self.objective_kind, alpha=self.cvar_alpha)

        return score

    def proposals(self, start: LatentState) -> Tensor | None:
        """The actor's own imagined action sequences, offered to the planner as candidates."""
        if self.policy_samples < 1:
            return None
        rows = start.map(lambda x: x.expand(self.policy_samples, *x.shape[1:]))
        with self._autocast(self.plan_bf16):
            _, actions = self.world_model.rssm.imagine_sparse(rows, self.actor.act, self.planner.horizon)
        return actions.float()

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
            if isinstance(self.planner, MCTS):
                actions.append(self._search(start, explore=not mode))
                new_plans.append(None)
                continue
            warm = None if bool(is_first[i]) else plans[i]
            action, plan = plan_first_action(self.planner, self.objective(start), warm, self.proposals(start))
            actions.append(action)
            new_plans.append(plan)
        action = torch.stack(actions)
        return action, MPCCarry(post, action, new_plans)

    def _search(self, start: LatentState, explore: bool) -> Tensor:
        wm, eye = self.world_model, torch.eye(self.action_spec.dim)

        def step(state: LatentState, a: int):
            nxt = wm.rssm.img_step(state, eye[a : a + 1], sample=False)  # the prior's mode: a deterministic tree
            heads = wm.predict(nxt.feat(), decode_obs=False)
            return nxt, float(heads["reward"]), float(heads["cont"])

        def value(state: LatentState) -> float:
            return float(self.slow_critic(state.feat()).mean())

        def prior(state: LatentState) -> Tensor:
            return self.actor.probs(state.feat())[0]

        return eye[self.planner.choose(start, step, value, prior, explore=explore)]


def make_mpc(obs_spec: ObsSpec, action_spec: ActionSpec, cfg: Config) -> LatentMPC:
    agent = make_dreamer(obs_spec, action_spec, cfg.model, cfg.dreamer, cls=LatentMPC)
    p = cfg.plan
    return agent.setup_planning(
        build_planner(cfg.planner, action_spec, p),
        particles=p.particles,
        objective=p.objective,
        cvar_alpha=p.cvar_alpha,
        discount=p.discount,
        policy_samples=p.policy_samples,
        bf16=p.bf16,
    )
