"""Recurrent state-space model: a GRU deterministic state plus a 32x32 categorical latent.

Time alignment (see docs/DESIGN.md): the state at step t is computed from the state at t-1, the
action a_{t-1} taken after seeing obs_{t-1}, and (for the posterior) the embedding of obs_t.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..nn.dists import mode_onehot, sample_index, sample_onehot, straight_through, unimix_probs
from ..nn.layers import MLP, NormGRUCell, SparseFeat, dense


class LatentState(NamedTuple):
    """The model state at one or more steps; every field has the same leading dims."""

    deter: Tensor  # (..., D) GRU state h
    stoch: Tensor  # (..., S*C) one-hot sample z, flattened
    logits: Tensor  # (..., S, C) log-probabilities z was drawn from

    def feat(self) -> Tensor:
        """Model feature ``[h, z]`` read by every head: ``(..., D + S*C)``."""
        return torch.cat([self.deter, self.stoch], -1)

    def sparse_feat(self) -> SparseFeat:
        """The feature with ``z`` as class indices ``(..., S)``: cheap input for the heads."""
        return SparseFeat(self.deter, self._index())

    def _index(self) -> Tensor:
        groups = self.logits.shape[-2]
        return self.stoch.reshape(*self.stoch.shape[:-1], groups, -1).argmax(-1)

    def map(self, fn: Callable[[Tensor], Tensor]) -> LatentState:
        return LatentState(*(fn(x) for x in self))

    def detach(self) -> LatentState:
        return self.map(Tensor.detach)

    @staticmethod
    def stack(states: list[LatentState], dim: int) -> LatentState:
        return LatentState(*(torch.stack(xs, dim) for xs in zip(*states)))


Policy = Callable[[LatentState], Tensor]


class RSSM(nn.Module):
    """The sequence model, prior and posterior of DreamerV3 (LayerNorm + SiLU everywhere)."""

    def __init__(
        self,
        *,
        embed_dim: int,
        action_dim: int,
        deter: int,
        stoch: int,
        classes: int,
        units: int,
        unimix: float,
    ):
        super().__init__()
        self.deter_dim, self.stoch_dim, self.classes = deter, stoch, classes
        self.action_dim = action_dim
        self.unimix = unimix
        self.img_in = dense(action_dim + stoch * classes, units, onehot=(stoch, classes))
        self.gru = NormGRUCell(units, deter)
        self.prior_net = MLP(deter, stoch * classes, units=units, layers=1)
        # The posterior's first layer is split so the embedding half runs once per sequence.
        self.post_deter = nn.Linear(deter, units, bias=False)
        self.post_embed = nn.Linear(embed_dim, units, bias=False)
        self.post_net = nn.Sequential(nn.LayerNorm(units, eps=1e-3), nn.SiLU(), nn.Linear(units, stoch * classes))

    @property
    def feat_dim(self) -> int:
        return self.deter_dim + self.stoch_dim * self.classes

    @property
    def onehot(self) -> tuple[int, int]:
        """How features end: ``(groups, classes)`` one-hots, for heads' OneHotTailLinear."""
        return (self.stoch_dim, self.classes)

    def initial(self, batch: int) -> LatentState:
        p = self.img_in[0].w_onehot
        return LatentState(
            deter=p.new_zeros(batch, self.deter_dim),
            stoch=p.new_zeros(batch, self.stoch_dim * self.classes),
            logits=p.new_zeros(batch, self.stoch_dim, self.classes),
        )

    def _dist(self, raw: Tensor, sample: bool) -> tuple[Tensor, Tensor]:
        """Raw head output ``(..., S*C)`` -> one-hot ``z (..., S*C)`` and log-probs ``(..., S, C)``."""
        probs = unimix_probs(raw.reshape(*raw.shape[:-1], self.stoch_dim, self.classes), self.unimix)
        z = straight_through(sample_onehot(probs), probs) if sample else mode_onehot(probs)
        return z.flatten(-2).to(raw.dtype), probs.log()

    def prior_logits(self, deter: Tensor) -> Tensor:
        """Prior ``p(z | h)`` log-probs for any leading dims: ``(..., S, C)``."""
        raw = self.prior_net(deter)
        return unimix_probs(raw.reshape(*raw.shape[:-1], self.stoch_dim, self.classes), self.unimix).log()

    def img_step(self, prev: LatentState, action: Tensor, sample: bool = True) -> LatentState:
        """One step of the prior: ``h_t = f(h_{t-1}, z_{t-1}, a_{t-1})``, ``z_t ~ p(z | h_t)``."""
        x = self.img_in(torch.cat([action.to(prev.stoch.dtype), prev.stoch], -1))
        deter = self.gru(x, prev.deter)
        stoch, logits = self._dist(self.prior_net(deter), sample)
        return LatentState(deter, stoch, logits)

    def imagine_sparse(
        self, start: LatentState, policy: Callable[[SparseFeat], Tensor], horizon: int
    ) -> tuple[SparseFeat, Tensor]:
        """:meth:`imagine` under a policy, carrying ``z`` as class indices only.

        The fast path of actor-critic training: no one-hot, log-prob or argmax per step. It draws
        the same random numbers as :meth:`imagine`, so both give the same rollout under one seed.
        Returns the features of ``s_0 .. s_H`` ``(N, H+1, .)`` and the actions ``(N, H, A)``.
        """
        feat = start.sparse_feat()
        deters, indices, actions = [feat.dense], [feat.index], []
        for _ in range(horizon):
            action = policy(feat)
            x = self.img_in(SparseFeat(action.to(feat.dense.dtype), feat.index))
            deter = self.gru(x, feat.dense)
            raw = self.prior_net(deter)
            probs = unimix_probs(raw.reshape(*raw.shape[:-1], self.stoch_dim, self.classes), self.unimix)
            feat = SparseFeat(deter, sample_index(probs))
            deters.append(deter)
            indices.append(feat.index)
            actions.append(action)
        return SparseFeat(torch.stack(deters, 1), torch.stack(indices, 1)), torch.stack(actions, 1)

    def observe(
        self,
        embed: Tensor,  # (B, T, E)
        prev_action: Tensor,  # (B, T, A) action_{t-1}; zeroed here where is_first
        is_first: Tensor,  # (B, T) bool
        state: LatentState | None = None,  # (B,) state before step 0
        sample: bool = True,
    ) -> tuple[LatentState, Tensor]:
        """Filter a sequence. Returns posteriors ``(B, T, ...)`` and prior logits ``(B, T, S, C)``."""
        B, T = embed.shape[:2]
        if prev_action.shape[:2] != (B, T) or is_first.shape != (B, T):
            raise ValueError(
                f"observe expects embed (B, T, E), prev_action (B, T, A), is_first (B, T); got "
                f"{tuple(embed.shape)}, {tuple(prev_action.shape)}, {tuple(is_first.shape)}"
            )
        state = self.initial(B) if state is None else state
        keep = (~is_first.bool()).to(embed.dtype).unsqueeze(-1)  # (B, T, 1)
        # Both non-recurrent inputs go through their linear maps once, batched over time.
        linear, norm_act = self.img_in[0], self.img_in[1:]
        action_part = linear.head_part(prev_action * keep)  # (B, T, U)
        embed_part = self.post_embed(embed)  # (B, T, U)
        deter, stoch = state.deter, state.stoch
        deters, stochs, logits = [], [], []
        for t in range(T):
            deter, stoch = deter * keep[:, t], stoch * keep[:, t]  # reset where is_first
            x = norm_act(linear.tail_part(onehot=stoch) + action_part[:, t])
            deter = self.gru(x, deter)
            raw = self.post_net(self.post_deter(deter) + embed_part[:, t])
            stoch, logit = self._dist(raw, sample)
            deters.append(deter)
            stochs.append(stoch)
            logits.append(logit)
        posts = LatentState(torch.stack(deters, 1), torch.stack(stochs, 1), torch.stack(logits, 1))
        return posts, self.prior_logits(posts.deter)  # prior batched over (B, T) after the loop

    def imagine(
        self, state: LatentState, policy_or_actions: Policy | Tensor, horizon: int | None = None, sample: bool = True
    ) -> tuple[LatentState, Tensor]:
        """Roll forward without observations from ``state (B,)``.

        ``policy_or_actions`` is a callable ``LatentState -> action (B, A)`` or actions ``(B, H, A)``.
        Returns the states after each action ``(B, H, ...)`` and the actions ``(B, H, A)``:
        ``states[:, k]`` follows ``actions[:, k]`` applied to ``states[:, k-1]`` (``state`` for k=0).
        """
        if isinstance(policy_or_actions, Tensor):
            actions = policy_or_actions
            if actions.dim() != 3 or actions.shape[0] != state.deter.shape[0]:
                raise ValueError(f"actions must be (B, H, A) with B={state.deter.shape[0]}, got {tuple(actions.shape)}")
            horizon = actions.shape[1] if horizon is None else horizon
            if horizon > actions.shape[1]:
                raise ValueError(f"horizon {horizon} exceeds the {actions.shape[1]} actions given")
        elif horizon is None:
            raise ValueError("imagine with a policy needs a horizon")
        states, taken = [], []
        for k in range(horizon):
            action = actions[:, k] if isinstance(policy_or_actions, Tensor) else policy_or_actions(state)
            state = self.img_step(state, action, sample)
            states.append(state)
            taken.append(action)
        return LatentState.stack(states, 1), torch.stack(taken, 1)
