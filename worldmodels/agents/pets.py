"""PETS (Chua et al. 2018): a probabilistic ensemble of state dynamics, and a planner that acts.

No policy is learned: before every action the planner tries action sequences in the ensemble
(trajectory sampling, each particle keeping one member) and executes the first action of the
best plan. Continuous actions plan with CEM or MPPI; discrete ones with MCTS over the
ensemble's mean prediction. With ``--plan.controller linear`` CEM/MPPI search the gains of a
linear state-feedback law instead of actions, and every particle applies the law to its own
predicted state (closed loop: see ``planning/feedback.py``).

Optionally (``--ensemble.value``) a state value is learned by TD(lambda) on replayed sequences
of real steps and added at the plan's horizon, so costs beyond the horizon (a cart drifting into
the end of its rail on a survival-only task) reach the planner. PETS itself has no value; this is
the value bootstrap of TD-MPC and LOOP. Multi-step targets matter here: with one-step TD and a
slow target network, news of a failure 100 steps ahead needs ~100 target refreshes to arrive,
far more than a 5,000-step run has.

The value is an ensemble too, one head per dynamics member: a particle that follows member k is
valued by head k. A single value fitted to the planner's own data extrapolates confidently into
states the planner has rarely visited, and plans then chase its errors (on InvertedPendulum it
rated a cart standing at x = 0.6 above one standing at 0, and the planner drove into the rail).
Heads disagree there, so ``--plan.objective risk`` (mean minus the spread across members) sees
that doubt as it sees the dynamics' own.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..behavior.returns import replay_lambda_returns
from ..config import Config, validate_pets
from ..models.ensemble import EnsembleMLP, GaussianEnsemble
from ..planning.feedback import LinearFeedback
from ..planning.objectives import constrained, discounted_return, summarize
from ..registry import AgentSpec
from ..specs import COST, VECTOR, ActionSpec, ObsSpec
from .base import Agent, build_world_model, optimize
from .dreamer import autocast
from .planners import (
    PlanBudget,
    build_planner,
    check_constrained,
    is_tree_search,
    on_device,
    plan_feedback,
    plan_first_action,
)


class PlanCarry(NamedTuple):
    """Per env: the previous plan shifted by one step (the warm start), or None after a reset."""

    plans: list[Tensor | None]


class PETS(Agent):
    def __init__(
        self,
        obs_spec: ObsSpec,
        action_spec: ActionSpec,
        *,
        ensemble: GaussianEnsemble,
        planner,
        lr: float,
        weight_decay: float,
        batch: int,
        particles: int = 1,
        objective: str = "mean",
        beta: float = 1.0,
        cvar_alpha: float = 0.1,
        discount: float = 0.99,
        bf16: bool = False,
        value: nn.Module | None = None,
        value_lr: float = 1e-3,
        value_horizon: int = 32,
        value_lambda: float = 0.95,
        feedback: LinearFeedback | None = None,
        horizon: int | None = None,
        budget: PlanBudget | None = None,
    ):
        super().__init__()
        self.obs_spec, self.action_spec = obs_spec, action_spec
        if objective == "constrained":
            budget = check_constrained(ensemble, budget)
        self.budget = budget
        self.ensemble, self.planner = ensemble, planner
        self.batch, self.particles = batch, particles
        self.objective_kind, self.beta, self.cvar_alpha, self.discount = objective, beta, cvar_alpha, discount
        self.bf16 = bf16
        # Closed-loop planning: the planner searches the gains of ``feedback``, rolled out for
        # ``horizon`` steps (the planner's own horizon is then one "step" of parameters).
        self.feedback = feedback
        self.horizon = horizon if horizon is not None else getattr(planner, "horizon", 1)
        if feedback is not None and feedback.size != getattr(planner, "action_dim", None):
            raise ValueError("the planner must search the feedback law's parameters (build it with feedback=)")
        self.optimizers = {"model": torch.optim.AdamW(ensemble.parameters(), lr=lr, weight_decay=weight_decay)}
        self.value, self.value_horizon, self.value_lambda = value, value_horizon, value_lambda
        if value is not None:
            if value_horizon < 2:
                raise ValueError(f"--ensemble.value-horizon must be >= 2 replayed steps, got {value_horizon}")
            self.value_target = copy.deepcopy(value).requires_grad_(False)
            self.optimizers["value"] = torch.optim.Adam(value.parameters(), lr=value_lr)

    # ---------------------------------------------------------- trainer API
    @property
    def world_model(self) -> GaussianEnsemble:
        return self.ensemble

    @property
    def replay_shape(self) -> tuple[int, int]:
        """Sequences the trainer samples per update, ``batch`` per member. The ensemble trains on
        each row's first transition; the value (if any) on the whole sequence."""
        return self.ensemble.members * self.batch, 2 if self.value is None else self.value_horizon

    @property
    def replayed_per_update(self) -> int:
        return self.batch

    def describe(self) -> str:
        e, params = self.ensemble, self.parameter_counts()["ensemble"]
        return (
            f"PETS: {e.members} Gaussian MLPs of {len(e.hidden)}x{e.hidden[0].weight.shape[-1]} units "
            f"({params:,} parameters); planner {type(self.planner).__name__}"
        )

    def parameter_counts(self) -> dict[str, int]:
        counts = {"ensemble": sum(p.numel() for p in self.ensemble.parameters())}
        if self.value is not None:
            counts["value"] = sum(p.numel() for p in self.value.parameters())
        return counts

    # -------------------------------------------------------------- training
    def transitions(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """``(K*B, 2)`` replay rows -> member-wise transitions ``(K, B, ...)``; each member its own draws."""
        k = self.ensemble.members

        def split(x: Tensor) -> Tensor:
            return x.reshape(k, -1, *x.shape[1:])

        obs = batch[VECTOR].float()
        cost = {"cost": split(batch[COST][:, 1].float())} if self.ensemble.costs else {}
        return {
            **cost,
            "obs": split(obs[:, 0]),
            "action": split(batch["action"][:, 0].float()),
            "reward": split(batch["reward"][:, 1].float()),
            "next_obs": split(obs[:, 1]),
            "terminal": split(batch["is_terminal"][:, 1]),
            # Row 1 starting a new episode means row 0 was an episode's last step: no transition.
            "mask": split(~batch["is_first"][:, 1].bool()),
        }

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        self.train()
        t = self.transitions(batch)
        valid = t["mask"]
        e = self.ensemble
        e.inputs.update(torch.cat([t["obs"], t["action"]], -1)[valid])
        e.targets.update(torch.cat([t["next_obs"] - t["obs"], t["reward"][..., None]], -1)[valid])
        loss, metrics = e.transition_loss(
            t["obs"], t["action"], t["reward"], t["next_obs"], t["terminal"], valid, t.get("cost")
        )
        optimize(self.optimizers["model"], loss, check={"ensemble_nll": loss})
        out = {"loss/ensemble": loss.item(), **{f"ensemble/{k}": v.item() for k, v in metrics.items()}}
        if self.value is not None:
            out.update(self._train_value(batch))
        return out

    def state_value(self, obs: Tensor, target: bool = False) -> Tensor:
        """Each head's V of its own states: ``(K, ..., D)`` -> ``(K, ...)``. The heads predict
        ``(1 - discount) V``, a per-step average of rewards, so outputs have the rewards' scale
        whatever the discount."""
        net = self.value_target if target else self.value
        d, k = self.ensemble.obs_dim, self.ensemble.members
        mean, std = self.ensemble.state_stats()
        x = (obs - mean) / std
        return net(x.reshape(k, -1, d)).reshape(obs.shape[:-1]) / (1 - self.discount)

    def mean_state_value(self, obs: Tensor) -> Tensor:
        """V of states ``(..., D)`` averaged over the heads: ``(...)``."""
        k = self.ensemble.members
        return self.state_value(obs.expand(k, *obs.shape)).mean(0)

    def _train_value(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """TD(lambda) on replayed sequences, bootstrapped from Polyak-averaged target heads. Each
        head learns from its own share of the sampled sequences (``batch`` in all)."""
        k = self.ensemble.members
        share = max(1, self.batch // k)

        def per_head(x: Tensor) -> Tensor:  # (K*B, L, ...) -> (K, share, L, ...)
            return x.reshape(k, -1, *x.shape[1:])[:, :share]

        obs = per_head(batch[VECTOR].float())
        reward, terminal = per_head(batch["reward"].float()), per_head(batch["is_terminal"].bool())
        first = per_head(batch["is_first"].bool())
        with torch.no_grad():
            target, valid = replay_lambda_returns(
                reward.flatten(0, 1),
                terminal.flatten(0, 1),
                first.flatten(0, 1),
                self.state_value(obs, target=True).flatten(0, 1),
                gamma=self.discount,
                lam=self.value_lambda,
            )
        scale = 1 - self.discount
        pred = self.state_value(obs[:, :, :-1].contiguous()).flatten(0, 1) * scale
        loss = (((pred - target * scale) ** 2) * valid).sum() / valid.sum().clamp_min(1)
        optimize(self.optimizers["value"], loss, check={"value_loss": loss})
        with torch.no_grad():  # Polyak-averaged target, as in DQN / TD-MPC
            for p, q in zip(self.value.parameters(), self.value_target.parameters()):
                q.lerp_(p, 0.01)
        return {"loss/value": loss.item(), "value/mean": target[valid].mean().item() if valid.any() else 0.0}

    # ---------------------------------------------------------------- acting
    def objective(self, obs: Tensor):
        """Scores of action sequences ``(N, H, A)`` from state ``obs (D,)``; with a feedback law,
        of its parameters ``(N, 1, P)``, each rolled out closed loop for ``horizon`` steps."""
        stats = self.ensemble.state_stats()  # the feedback law's input scale

        def score(actions: Tensor) -> Tensor:
            plan, extra = actions, {}
            if self.feedback is not None:
                plan = self.feedback.law(actions[:, 0].repeat_interleave(self.particles, 0), *stats)
                extra = dict(candidates=len(actions), horizon=self.horizon)
            with self._autocast():
                roll = self.ensemble.rollout(obs, plan, particles_per_member=self.particles, **extra)
            bootstrap = None
            if self.value is not None:  # head k values the particles of member k
                bootstrap = self.state_value(roll.states[..., -1, :].float().transpose(0, 1)).transpose(0, 1)
            returns = discounted_return(roll.rewards.float(), roll.conts.float(), self.discount, bootstrap)
            if self.objective_kind == "constrained":  # the cost a plan expects, undiscounted like the limit
                costs = discounted_return(self.budget.counted(roll.costs.float()), roll.conts.float(), 1.0)
                return constrained(returns, costs, self.budget.plan(self.horizon), self.budget.quantile)
            return summarize(returns, self.objective_kind, self.beta, self.cvar_alpha)

        return on_device(score, self.device)

    def _autocast(self):
        return autocast(self.device, self.bf16)

    @torch.no_grad()
    def act(
        self, obs: dict[str, Tensor], is_first: Tensor, carry: PlanCarry | None = None, mode: bool = False
    ) -> tuple[Tensor, PlanCarry]:
        """Plan from each env's state; ``mode`` only matters for MCTS (most visited vs sampled)."""
        self.eval()
        states = obs[VECTOR].float()
        n = states.shape[0]
        plans = carry.plans if carry is not None else [None] * n
        actions, new_plans = [], []
        for i in range(n):
            if is_tree_search(self.planner):
                actions.append(self._search(states[i], explore=not mode))
                new_plans.append(None)
                continue
            warm = None if bool(is_first[i]) else plans[i]
            if self.feedback is not None:
                plan = plan_feedback(self.planner, self.objective(states[i]), warm)
                stats = (x.cpu() for x in self.ensemble.state_stats())
                action = self.feedback.action(plan[0], states[i].cpu(), *stats).to(self.device)
            else:
                action, plan = plan_first_action(self.planner, self.objective(states[i]), warm)
            actions.append(action.to(self.device))
            new_plans.append(plan)
        return torch.stack(actions), PlanCarry(new_plans)

    def _search(self, state: Tensor, explore: bool) -> Tensor:
        """MCTS over the ensemble's mean prediction (members averaged); the learned value (if any) at leaves."""
        eye = torch.eye(self.action_spec.dim, device=self.device)
        k = self.ensemble.members

        def step(s: Tensor, a: int):
            x, r, c = self.ensemble.step(s.expand(k, 1, -1), eye[a].expand(k, 1, -1), sample=False)
            return x.mean(0)[0], float(r.mean()), float(c.mean())

        def value(s: Tensor) -> float:
            return 0.0 if self.value is None else float(self.mean_state_value(s))

        def allowed(s: Tensor) -> Tensor:  # actions whose pessimistic one-step cost fits the budget
            n = self.action_spec.dim
            _, _, _, cost = self.ensemble.step(s.expand(k, n, -1), eye.expand(k, -1, -1), sample=False, with_cost=True)
            return torch.quantile(self.budget.counted(cost.float()), self.budget.quantile, dim=0) <= self.budget.plan(1)

        pruned = allowed if self.objective_kind == "constrained" else None
        index = self.planner.choose(state, step, value=value, explore=explore, allowed=pruned)
        return eye[index]


def make_pets(obs_spec: ObsSpec, action_spec: ActionSpec, cfg: Config) -> PETS:
    if obs_spec.vector is None or obs_spec.image is not None:
        raise ValueError("--agent pets models state vectors: use --obs state (for pixels: --agent mpc)")
    e, p = cfg.ensemble, cfg.plan
    ensemble = build_world_model(cfg, obs_spec, action_spec)
    feedback = LinearFeedback(obs_spec.vector, action_spec.dim) if p.controller == "linear" else None
    return PETS(
        obs_spec,
        action_spec,
        ensemble=ensemble,
        planner=build_planner(cfg.planner, action_spec, p, feedback),
        lr=e.lr,
        weight_decay=e.weight_decay,
        batch=e.batch,
        particles=p.particles,
        objective=p.objective,
        beta=p.beta,
        cvar_alpha=p.cvar_alpha,
        discount=p.discount,
        bf16=p.bf16,
        value=EnsembleMLP(e.members, obs_spec.vector, 1, units=e.units, layers=2) if e.value else None,
        value_lr=e.lr,
        value_horizon=e.value_horizon,
        value_lambda=e.value_lambda,
        feedback=feedback,
        horizon=p.horizon,
        budget=PlanBudget.from_config(cfg),
    )


# PETS fits its model from the first episode and plans 30 steps ahead, as Chua et al. 2018 do: it
# has no value function, and with 15 steps it left Pendulum hanging from some starting states
# (-1500 against -340 with 30, same checkpoint).
SPEC = AgentSpec(
    build=make_pets,
    default_family="ensemble",
    families=("ensemble",),
    defaults={"prefill": 200, "eval_every": 1000, "log_every": 200, "checkpoint_every": 1000, "plan.horizon": 30},
    validate=validate_pets,
    plans_with="pets",
)
