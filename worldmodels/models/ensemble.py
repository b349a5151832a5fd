"""Probabilistic ensemble dynamics (PETS): K Gaussian MLPs over next-state deltas and reward.

Each member maps ``[obs, action]`` to a diagonal Gaussian over ``[obs' - obs, reward]`` (in
normalised units) and a terminal logit; where the env charges costs, a small MLP per member
predicts the cost of arriving at a state from the state. Log-variances are
soft-bounded by learned limits, as in Chua et al. 2018. Members are trained on independent
bootstrap draws of the replay, so where the data ends they disagree: ``disagreement`` turns that
into one number per state.

Trajectory sampling (TS-inf): a particle keeps one member for its whole rollout, and samples
that member's Gaussian at each step, so the spread of returns shows both aleatoric noise (within
a member) and epistemic uncertainty (between members).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.distributed import moments
from ..specs import COST, VECTOR, ActionSpec, ObsSpec
from .base import COSTS, DECODES, UNCERTAINTY, WorldModelBase, unroll


class EnsembleLinear(nn.Module):
    """K independent linear layers applied to ``(K, B, in)`` with one batched matmul."""

    def __init__(self, members: int, inp: int, out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, inp, out))
        self.bias = nn.Parameter(torch.zeros(members, 1, out))
        bound = 1 / math.sqrt(inp)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """K independent SiLU MLPs as batched layers: ``(K, B, in) -> (K, B, out)``."""

    def __init__(self, members: int, inp: int, out: int, *, units: int, layers: int):
        super().__init__()
        dims = [inp] + [units] * layers
        self.hidden = nn.ModuleList(EnsembleLinear(members, i, o) for i, o in zip(dims[:-1], dims[1:]))
        self.head = EnsembleLinear(members, dims[-1], out)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.hidden:
            x = F.silu(layer(x))
        return self.head(x)


class Normalizer(nn.Module):
    """Running mean/std over every sample seen (Chan et al.'s parallel update), in buffers."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.zeros(()))

    def update(self, x: Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()
        n, mean, m2 = moments(x)  # in a distributed run, of every rank's rows together
        if n == 0:
            return
        var = m2 / n
        total = self.count + n
        delta = mean - self.mean
        self.var.copy_((self.var * self.count + var * n + delta**2 * self.count * n / total) / total)
        self.mean.add_(delta * n / total)
        self.count.copy_(total)

    @property
    def std(self) -> Tensor:
        return self.var.sqrt().clamp_min(1e-6)

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean


# How far from the states trained on (in their standard deviations) a prediction may go.
STATE_LIMIT = 20.0


class Prediction(NamedTuple):
    mean: Tensor  # (K, B, D+1) normalised [delta, reward]
    logvar: Tensor  # (K, B, D+1)
    terminal_logit: Tensor  # (K, B)


class Rollout(NamedTuple):
    rewards: Tensor  # (N, K, M, H)
    conts: Tensor  # (N, K, M, H) probability the episode goes on after each step
    states: Tensor  # (N, K, M, H, D) predicted next observations
    costs: Tensor | None = None  # (N, K, M, H) expected cost of each step, where the model predicts costs


class EnsembleState(NamedTuple):
    """The ensemble is Markov: its state is the observation, with what it predicted on arriving there."""

    obs: Tensor  # (..., D)
    reward: Tensor  # (...) expected reward of the step that arrived here (0 at an episode start)
    cont: Tensor  # (...) probability the episode goes on from here
    cost: Tensor  # (...) expected cost of the step that arrived here (0 where the model predicts no costs)

    def map(self, fn: Callable[[Tensor], Tensor]) -> EnsembleState:
        return EnsembleState(*(fn(x) for x in self))


class GaussianEnsemble(WorldModelBase):
    """Behind the world-model contract a batch row ``b`` follows member ``b % K`` for its whole
    imagined rollout (TS-inf); planning uses the faster :meth:`rollout` instead."""

    capabilities = frozenset({DECODES, UNCERTAINTY})

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        *,
        members: int = 5,
        units: int = 200,
        layers: int = 3,
        min_logvar: float = -10.0,
        max_logvar: float = 0.5,
        costs: bool = False,
    ):
        super().__init__()
        self.obs_dim, self.action_dim, self.members = obs_dim, action_dim, members
        self.obs_spec = ObsSpec(vector=obs_dim, cost=costs)
        self.costs = costs
        if costs:
            self.capabilities = self.capabilities | {COSTS}
        self.out_dim = out = obs_dim + 1  # the Gaussian's outputs: the state's change and the reward
        # The cost of arriving at a state, from the state (a hazard is a place), by a network of its own
        # fit by least squares. Sharing the Gaussian's trunk, its gradient was drowned by the
        # near-deterministic state and reward terms (whose precisions grow without bound), and a 0/1
        # hazard cost stayed a blur; read off the next state, a sampled rollout carries the state's
        # uncertainty into the cost, as trajectory sampling does for the reward's future.
        # Small (2 x units/2): planning evaluates it on every visited state, as many as the dynamics'
        # own steps, and at the dynamics' size it doubled the time per plan; a hazard is a simple region.
        width = max(16, units // 2)
        self.cost_net = EnsembleMLP(members, obs_dim, 1, units=width, layers=2) if costs else None
        dims = [obs_dim + action_dim] + [units] * layers
        self.hidden = nn.ModuleList(EnsembleLinear(members, i, o) for i, o in zip(dims[:-1], dims[1:]))
        self.head = EnsembleLinear(members, dims[-1], 2 * out + 1)
        self.max_logvar = nn.Parameter(torch.full((out,), max_logvar))
        self.min_logvar = nn.Parameter(torch.full((out,), min_logvar))
        self.inputs = Normalizer(obs_dim + action_dim)
        self.targets = Normalizer(out)

    # ------------------------------------------------------------- forward
    def parts(self) -> dict[str, list[nn.Module]]:
        """One network predicts the next state, the reward and the end: all of it is dynamics."""
        return {"dynamics": [self]}

    def forward(self, obs: Tensor, action: Tensor) -> Prediction:
        """``obs (K, B, D)``, ``action (K, B, A)`` -> per-member Gaussians in normalised units."""
        x = self.inputs.normalize(torch.cat([obs, action], -1))
        for layer in self.hidden:
            x = F.silu(layer(x))
        out = self.head(x)
        d = self.out_dim
        mean, raw, term = out[..., :d], out[..., d : 2 * d], out[..., -1]
        return Prediction(mean, self._bounded_logvar(raw), term)

    def state_cost(self, states: Tensor, clip: bool = True) -> Tensor:
        """Each member's expected cost of arriving at its states ``(K, B, D)`` -> ``(K, B)`` (with
        costs), held at >= 0 unless ``clip`` is off (training fits the raw output)."""
        mean, std = self.state_stats()
        cost = self.cost_net((states.float() - mean) / std)[..., 0]
        return cost.clamp_min(0.0) if clip else cost

    def _bounded_logvar(self, raw: Tensor) -> Tensor:
        """Soft-clamps raw log-variances of the first ``raw.shape[-1]`` outputs between the learned limits."""
        hi, lo = self.max_logvar[: raw.shape[-1]], self.min_logvar[: raw.shape[-1]]
        logvar = hi - F.softplus(hi - raw)
        return lo + F.softplus(logvar - lo)

    def _terms(self, obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor, terminal: Tensor, cost=None):
        """Unreduced terms of transitions ``(K, B, ...)``, ``(K, B)`` each: Gaussian NLL, terminal BCE
        and (with costs) the cost's squared error."""
        target = self.targets.normalize(torch.cat([next_obs - obs, reward[..., None]], -1))
        pred = self(obs, action)
        nll = 0.5 * (((pred.mean - target) ** 2) * torch.exp(-pred.logvar) + pred.logvar).mean(-1)
        bce = F.binary_cross_entropy_with_logits(pred.terminal_logit, terminal.float(), reduction="none")
        terms = {"nll": nll, "terminal": bce}
        if self.costs:
            if cost is None:
                raise ValueError("this ensemble predicts costs: give the transitions' costs")
            terms[COST] = (self.state_cost(next_obs, clip=False) - cost.float()) ** 2
        return terms, pred, target

    def transition_loss(
        self,
        obs: Tensor,
        action: Tensor,
        reward: Tensor,
        next_obs: Tensor,
        terminal: Tensor,
        mask: Tensor,
        cost: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Gaussian NLL (+ terminal BCE) for member-wise batches ``(K, B, ...)``; ``mask`` drops invalid rows."""
        terms, pred, target = self._terms(obs, action, reward, next_obs, terminal, cost)
        weight = mask.float() / mask.float().sum(-1, keepdim=True).clamp_min(1)
        summed = {k: (v * weight).sum(-1).sum() for k, v in terms.items()}
        # Keeps the learned log-variance limits tight (PETS).
        bound = 0.01 * (self.max_logvar.sum() - self.min_logvar.sum())
        mse = (((pred.mean - target) ** 2).mean(-1) * weight).sum(-1).mean()
        metrics = {k: v / self.members for k, v in summed.items()}
        return sum(summed.values()) + bound, {**metrics, "mse": mse}

    # ------------------------------------------------------- the contract
    @property
    def loss_scales(self) -> dict[str, float]:
        return {"nll": 1.0, "terminal": 1.0, **({COST: 1.0} if self.costs else {})}

    def describe(self) -> str:
        return f"{self.members} Gaussian MLPs of {len(self.hidden)}x{self.hidden[0].weight.shape[-1]} units"

    def _member_rows(self, x: Tensor) -> Tensor:
        """``(K, B, ...)`` predictions of every member -> ``(B, ...)``, row b from member ``b % K``."""
        rows = torch.arange(x.shape[1], device=x.device)
        return x[rows % self.members, rows]

    def _all_members(self, x: Tensor) -> Tensor:
        """``(B, T, ...)`` -> ``(K, B*T, ...)``: every member sees every step."""
        return x.reshape(-1, *x.shape[2:]).expand(self.members, -1, *x.shape[2:])

    def initial(self, batch: int) -> EnsembleState:
        p = self.head.weight
        return EnsembleState(
            p.new_zeros(batch, self.obs_dim), p.new_zeros(batch), p.new_ones(batch), p.new_zeros(batch)
        )

    def observe(self, state, obs: dict[str, Tensor], prev_action: Tensor, is_first: Tensor) -> EnsembleState:
        """The real states ``(B, T, D)``, each with the reward and continue probability the
        members (averaged) predicted for the step that led to it."""
        x = obs[VECTOR].float()
        state = self.initial(x.shape[0]) if state is None else state
        before = torch.cat([state.obs[:, None], x[:, :-1]], 1)  # (B, T, D) the state each step left
        pred = self(self._all_members(before), self._all_members(prev_action.float()))  # (K, B*T, .)
        reward = self.targets.denormalize(pred.mean)[..., -1].mean(0).reshape(is_first.shape)
        cont = (1 - torch.sigmoid(pred.terminal_logit)).mean(0).reshape(is_first.shape)
        first = is_first.bool()
        cost = torch.zeros_like(reward)
        if self.costs:  # of the real states themselves, by every member
            cost = self.state_cost(self._all_members(x)).mean(0).reshape(is_first.shape).masked_fill(first, 0.0)
        return EnsembleState(x, reward.masked_fill(first, 0.0), cont.masked_fill(first, 1.0), cost)

    def imagine(self, state: EnsembleState, policy_or_actions, horizon: int | None = None, sample: bool = True):
        """Trajectory sampling from ``state (B,)``: row ``b`` keeps member ``b % K``."""

        def step(state: EnsembleState, action: Tensor) -> EnsembleState:
            nxt, reward, cont, cost = self.step(
                self._all_members(state.obs[:, None]),
                self._all_members(action.float()[:, None]),
                sample=sample,
                with_cost=True,
            )
            return EnsembleState(*(self._member_rows(x) for x in (nxt, reward, cont, cost)))

        return unroll(state, policy_or_actions, horizon, step)

    def advance(self, state: EnsembleState, action: Tensor) -> EnsembleState:
        """The contract's deterministic step: the members' mean prediction."""
        nxt, reward, cont, cost = self.step(
            self._all_members(state.obs[:, None]),
            self._all_members(action.float()[:, None]),
            sample=False,
            with_cost=True,
        )
        return EnsembleState(*(x.mean(0) for x in (nxt, reward, cont, cost)))

    def features(self, states: EnsembleState) -> EnsembleState:
        return states

    def predict(self, feat: EnsembleState, decode_obs: bool = True) -> dict[str, Tensor]:
        out = {"reward": feat.reward, "cont": feat.cont}
        if self.costs:
            out[COST] = feat.cost
        return {VECTOR: feat.obs, **out} if decode_obs else out

    def loss(self, batch: dict[str, Tensor]):
        """Unreduced ``(B, T)`` NLL and terminal terms of each step's transition from the step
        before it (0 at t=0 and at episode starts); row ``b`` trains member ``b % K``. PETS
        itself trains on independent bootstrap batches per member (:meth:`transition_loss`)."""
        x, action = batch[VECTOR].float(), batch["action"].float()
        unreduced, _, _ = self._terms(
            self._all_members(x[:, :-1]),
            self._all_members(action[:, :-1]),
            self._all_members(batch["reward"][:, 1:].float()),
            self._all_members(x[:, 1:]),
            self._all_members(batch["is_terminal"][:, 1:]),
            self._all_members(batch[COST][:, 1:].float()) if self.costs else None,
        )  # (K, B*(T-1))
        valid = (~batch["is_first"][:, 1:].bool()).float()
        pad = x.new_zeros(x.shape[0], 1)

        def rows(v: Tensor) -> Tensor:  # (K, B*(T-1)) -> (B, T), row b from member b % K
            return torch.cat([pad, self._member_rows(v.reshape(self.members, *valid.shape)) * valid], 1)

        terms = {k: rows(v) for k, v in unreduced.items()}
        zeros = pad.expand(-1, x.shape[1])
        states = EnsembleState(x, zeros.clone(), torch.ones_like(zeros), zeros.clone())
        return terms, states, {}

    @torch.no_grad()
    def open_loop(self, steps, context: int, horizon: int, *, temperature: float = 1.0, particles: int = 8):
        """Trajectory sampling from the last context state under the episode's actions.

        The ensemble is Markov, so the context steps are the real states themselves. Returns the
        particles' mean ``vector``, their ``std`` (aleatoric and epistemic), and ``disagreement``:
        the spread of the members' mean predictions (epistemic alone), averaged over dimensions.
        """
        device = self.device
        H = min(horizon, len(steps["reward"]) - context)
        real = torch.as_tensor(steps[VECTOR]).float().to(device)
        actions = torch.as_tensor(steps["action"]).float().to(device)[context - 1 : context - 1 + H]
        roll = self.rollout(real[context - 1], actions[None], particles_per_member=particles)
        states = roll.states[0]  # (K, M, H, D)
        mean, std = states.mean((0, 1)), states.std((0, 1), unbiased=False)
        member_spread = states.mean(1).std(0, unbiased=False).mean(-1)  # (H,)
        zeros = torch.zeros(context, real.shape[1], device=device)
        out = {
            VECTOR: torch.cat([real[:context], mean]),
            "std": torch.cat([zeros, std]),
            "disagreement": torch.cat([zeros[:, 0], member_spread]),
        }
        return {k: v.cpu().numpy() for k, v in out.items()}

    def uncertainty(self, steps) -> np.ndarray:
        """One-step disagreement of the members at every real (state, action) of an episode."""
        obs = torch.as_tensor(steps[VECTOR][:-1]).float().to(self.device)
        act = torch.as_tensor(steps["action"][:-1]).float().to(self.device)
        return self.disagreement(obs, act).cpu().numpy()

    # ------------------------------------------------------------- predict
    def step(self, obs: Tensor, action: Tensor, *, sample: bool = True, generator=None, with_cost: bool = False):
        """One model step of ``(K, B, ...)`` particles: next obs (sampled or mean), expected reward,
        continue probability, and (``with_cost``) the expected cost, None without a cost output."""
        pred = self(obs, action)
        y = pred.mean
        if sample:
            eps = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
            y = y + torch.exp(0.5 * pred.logvar) * eps
        delta = self.targets.denormalize(y)
        reward = self.targets.denormalize(pred.mean)[..., -1]  # expected reward (PETS)
        low, high = self.state_limits()
        nxt = torch.clamp(obs + delta[..., :-1], low, high)
        cont = 1.0 - torch.sigmoid(pred.terminal_logit)
        if not with_cost:
            return nxt, reward, cont
        return nxt, reward, cont, self.state_cost(nxt) if self.costs else torch.zeros_like(reward)

    def state_limits(self) -> tuple[Tensor, Tensor]:
        """Predicted states are held within ``STATE_LIMIT`` standard deviations of the states
        trained on. A long rollout (a feedback law the model's dynamics make unstable, 40 steps
        ahead) can otherwise grow without bound until it overflows to inf and NaN, and every
        candidate of a plan scores NaN; inside the limits every prediction stays finite, and
        nothing real comes near them."""
        mean, std = self.state_stats()
        return mean - STATE_LIMIT * std, mean + STATE_LIMIT * std

    def state_stats(self) -> tuple[Tensor, Tensor]:
        """Running mean and std of the states trained on (the state part of the input statistics)."""
        d = self.obs_dim
        return self.inputs.mean[:d], self.inputs.std[:d]

    @torch.no_grad()
    def rollout(
        self,
        obs: Tensor,
        actions: Tensor | Callable[[Tensor], Tensor],
        *,
        particles_per_member: int = 1,
        sample: bool = True,
        generator=None,
        candidates: int | None = None,
        horizon: int | None = None,
    ) -> Rollout:
        """Trajectory sampling from one state ``obs (D,)`` under ``actions (N, H, A)``, or closed
        loop under a feedback law: ``actions(states (K, N*M, D)) -> (K, N*M, A)`` with the
        ``candidates`` N and ``horizon`` H given (particles of a candidate are adjacent).

        The same mathematics as :meth:`step`, rearranged for speed (planning is this loop, run
        ``iterations x horizon`` times per decision): both normalisations are folded into the
        first and last layers' weights once per call, layers work in place, and noise is drawn
        only for the state (the reward used is the expected one).
        """
        k, m = self.members, particles_per_member
        if callable(actions):
            if candidates is None or horizon is None:
                raise ValueError("a closed-loop rollout needs the number of candidates and the horizon")
            n, feedback = candidates, actions

            def action_at(x: Tensor, t: int) -> Tensor:
                return feedback(x)
        else:
            n, horizon, _ = actions.shape
            acts = actions.float().repeat_interleave(m, 0)  # (N*M, H, A), particle-major within a candidate

            def action_at(x: Tensor, t: int) -> Tensor:
                return acts[:, t].expand(k, -1, -1)

        x = obs.float().reshape(1, 1, -1).expand(k, n * m, -1)
        first, hidden, head = self._planning_weights()
        low, high = self.state_limits()
        d = self.obs_dim
        std = self.targets.std
        rewards, conts, states = [], [], []
        width = self.out_dim
        for t in range(horizon):
            h = torch.baddbmm(first[1], torch.cat([x, action_at(x, t)], -1), first[0])
            F.silu(h, inplace=True)
            for w, b in hidden:
                h = torch.bmm(h, w).add_(b)
                F.silu(h, inplace=True)
            out = torch.bmm(h, head[0]).add_(head[1])
            mean = out[..., :width]  # already in real units: delta of the state, then reward
            nxt = x + mean[..., :d]
            if sample:
                raw = out[..., width : width + d]
                logvar = self._bounded_logvar(raw)
                eps = torch.randn(nxt.shape, generator=generator, device=nxt.device, dtype=nxt.dtype)
                nxt = nxt.addcmul_(torch.exp(0.5 * logvar).mul_(std[:d]), eps)
            x = nxt.clamp_(low, high)
            rewards.append(mean[..., d])
            conts.append(torch.sigmoid(-out[..., -1]))  # 1 - sigmoid(terminal logit)
            states.append(x)

        def arrange(seq: list[Tensor]) -> Tensor:  # H x (K, N*M, ...) -> (N, K, M, H, ...)
            y = torch.stack(seq, 2)  # (K, N*M, H, ...)
            y = y.reshape(k, n, m, *y.shape[2:])
            return y.transpose(0, 1)

        states = arrange(states)  # (N, K, M, H, D)
        costs = None
        if self.costs:  # every visited state in one batched pass: per step, the small layers' overhead doubled it
            flat = states.transpose(0, 1).reshape(k, -1, states.shape[-1])  # (K, N*M*H, D)
            costs = self.state_cost(flat).reshape(k, n, m, horizon).transpose(0, 1)
        return Rollout(arrange(rewards), arrange(conts), states, costs)

    def _planning_weights(self):
        """Layer weights with the input normalisation folded into the first layer and the target
        de-normalisation of the mean folded into the head: ``(W, b)`` pairs, ``(K, in, out)``."""
        mean_in, std_in = self.inputs.mean, self.inputs.std
        w0, b0 = self.hidden[0].weight, self.hidden[0].bias
        w_first = w0 / std_in[None, :, None]
        b_first = b0 - ((mean_in / std_in) @ w0)[:, None]  # (K, 1, out)
        hidden = [(layer.weight, layer.bias) for layer in self.hidden[1:]]
        d = self.out_dim
        w, b = self.head.weight, self.head.bias
        std_t, mean_t = self.targets.std, self.targets.mean
        w_head = torch.cat([w[..., :d] * std_t, w[..., d:]], -1)
        b_head = torch.cat([b[..., :d] * std_t + mean_t, b[..., d:]], -1)
        return (w_first, b_first), hidden, (w_head, b_head)

    @torch.no_grad()
    def predict_members(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """Every member's mean and variance of the next obs, ``(K, B, D)``, for ``obs (B, D)``."""
        k = self.members
        pred = self(obs.float().expand(k, -1, -1), action.float().expand(k, -1, -1))
        d = self.obs_dim
        mean = self.targets.denormalize(pred.mean)[..., :d] + obs
        var = torch.exp(pred.logvar)[..., :d] * self.targets.var[:d]
        return mean, var

    @torch.no_grad()
    def disagreement(self, obs: Tensor, action: Tensor) -> Tensor:
        """Epistemic uncertainty per state ``(B,)``: variance across members of the predicted
        next-state mean, in units of the target spread, averaged over dimensions."""
        pred = self(obs.float().expand(self.members, -1, -1), action.float().expand(self.members, -1, -1))
        return pred.mean[..., : self.obs_dim].var(0, unbiased=False).mean(-1)


def make_ensemble(obs_spec: ObsSpec, action_spec: ActionSpec, cfg) -> GaussianEnsemble:
    """The ``ensemble`` family from a run config (the ``ensemble`` block); state vectors only."""
    if obs_spec.vector is None or obs_spec.image is not None:
        raise ValueError("the ensemble models state vectors: use --obs state (for pixels: --agent mpc)")
    e = cfg.ensemble
    return GaussianEnsemble(
        obs_spec.vector, action_spec.dim, members=e.members, units=e.units, layers=e.layers, costs=obs_spec.cost
    )
