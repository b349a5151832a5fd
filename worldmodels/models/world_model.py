"""The RSSM world model (family ``rssm``): encoders, RSSM, decoders, reward and continue heads.

``observe`` filters real sequences into latent states, ``imagine`` rolls forward without the
environment, ``predict`` decodes features, and ``loss`` returns unreduced ``[B, T]`` terms (the
contract of ``models/base.py``). ``imagine_features`` is the fast path of actor-critic training
and latent planning: the latent is carried as class indices (:class:`SparseFeat`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..nn.dists import categorical_kl, unimix_probs
from ..nn.layers import MLP, SparseFeat
from ..specs import ActionSpec, ObsSpec
from .base import DECODES, DISAGREES, ENCODES, FEATURES, WorldModelBase, as_policy, prev_actions
from .latent_io import LatentIO, latent_settings
from .rssm import RSSM, LatentState, Policy


class WorldModel(LatentIO, WorldModelBase):
    capabilities = frozenset({FEATURES, DECODES, ENCODES})

    def __init__(
        self,
        obs_spec: ObsSpec,
        action_dim: int,
        *,
        deter: int,
        stoch: int,
        classes: int,
        units: int,
        layers: int,
        cnn_depth: int,
        image_size: int,
        unimix: float,
        free_nats: float,
        kl_dyn: float,
        kl_rep: float,
        bins: int,
        sparse_imagination: bool = True,
        vector_norm: bool = False,
        prior_heads: int = 0,
    ):
        super().__init__()
        self.sparse_imagination = sparse_imagination
        self.obs_spec, self.action_dim = obs_spec, action_dim
        self.free_nats, self.kl_dyn, self.kl_rep = free_nats, kl_dyn, kl_rep
        io = dict(cnn_depth=cnn_depth, image_size=image_size, units=units, layers=layers)
        embed = self._build_encoders(**io, vector_norm=vector_norm)
        self._embed_size = embed
        self.rssm = RSSM(
            embed_dim=embed,
            action_dim=action_dim,
            deter=deter,
            stoch=stoch,
            classes=classes,
            units=units,
            unimix=unimix,
        )
        feat, onehot = self.rssm.feat_dim, self.rssm.onehot
        self._build_decoders(feat, **io, onehot=onehot)
        self._build_heads(feat, bins=bins, units=units, layers=layers, onehot=onehot)
        # An ensemble of prior heads p_k(z | h), each fit to the posterior like the prior is (on
        # detached inputs: they shape nothing else). Where the data went they agree; where it never
        # went their independent initialisations show through. Their disagreement is the RSSM's
        # epistemic uncertainty, the penalty of offline learning (Lu et al. 2022, "Challenges and
        # Opportunities in Offline Reinforcement Learning from Visual Observations": prior-ensemble
        # disagreement was their best measure for offline DreamerV2).
        # Separate MLPs rather than one batched layer: on CPU, one matmul into every head's units
        # and a bmm out ran 1.5-1.7x slower than five plain Linear/LayerNorm MLPs at 16k states.
        self.prior_ensemble = torch.nn.ModuleList(
            MLP(deter, stoch * classes, units=units, layers=1) for _ in range(prior_heads)
        )
        if prior_heads:
            self.capabilities = self.capabilities | {DISAGREES}

    @property
    def loss_scales(self) -> dict[str, float]:
        """Scale of each term :meth:`loss` returns (prediction terms 1, KL balancing dyn/rep)."""
        extra = {"ensemble": 1.0} if len(self.prior_ensemble) else {}
        return {**self._io_loss_scales(), "dyn": self.kl_dyn, "rep": self.kl_rep, **extra}

    prev_actions = staticmethod(prev_actions)

    @property
    def feature_size(self) -> int:
        return self.rssm.feat_dim

    @property
    def feature_onehot(self) -> tuple[int, int]:
        return self.rssm.onehot

    def describe(self) -> str:
        return f"GRU {self.rssm.deter_dim}, latent {self.rssm.stoch_dim}x{self.rssm.classes}"

    def features(self, states: LatentState) -> Tensor:
        return states.feat()

    def parts(self) -> dict[str, list[torch.nn.Module]]:
        encoder, heads = self._io_parts()
        return {"encoder": encoder, "dynamics": [self.rssm, self.prior_ensemble], "heads": heads}

    # ----------------------------------------------------------------- verbs
    def initial(self, batch: int) -> LatentState:
        return self.rssm.initial(batch)

    def embed(self, obs: dict[str, Tensor]) -> Tensor:
        return self.encode(obs)

    @property
    def embed_size(self) -> int:
        return self._embed_size

    def observe(
        self,
        state: LatentState | None,
        obs: dict[str, Tensor],
        prev_action: Tensor,
        is_first: Tensor,
        sample: bool = True,
    ) -> LatentState:
        """Filter real observations ``(B, T, ...)`` into posterior states ``(B, T, ...)``.

        ``prev_action[:, t]`` is the action taken after ``obs[:, t-1]`` (zeros where ``is_first``).
        """
        self._check_obs(obs, is_first.shape)
        posts, _ = self.rssm.observe(self.encode(obs), prev_action, is_first, state, sample)
        return posts

    def imagine(
        self, state: LatentState, policy_or_actions: Policy | Tensor, horizon: int | None = None, sample: bool = True
    ) -> tuple[LatentState, Tensor]:
        """Roll forward from ``state (B,)``; see :meth:`RSSM.imagine`."""
        return self.rssm.imagine(state, policy_or_actions, horizon, sample)

    def imagine_features(
        self,
        start: LatentState,
        policy_or_actions: Callable | Tensor,
        horizon: int | None = None,
        *,
        differentiable: bool = False,
    ) -> tuple[SparseFeat | Tensor, Tensor]:
        """Features of ``s_0 .. s_H`` ``(B, H+1, .)`` and actions ``(B, H, A)``: with class indices
        and gather-based heads (exact; the same random draws as :meth:`imagine`), or dense
        one-hot features where ``sparse_imagination`` is off (for comparison) or gradients must
        flow (``differentiable``: straight-through samples of the latents)."""
        policy, horizon = as_policy(policy_or_actions, horizon)
        if self.sparse_imagination and not differentiable:
            return self.rssm.imagine_sparse(start, policy, horizon)
        states, actions = self.rssm.imagine(start, lambda s: policy(s.feat()), horizon)
        traj = LatentState(*(torch.cat([a.unsqueeze(1), b], 1) for a, b in zip(start, states)))
        return traj.feat(), actions

    def advance(self, state: LatentState, action: Tensor) -> LatentState:
        """The prior's mode after ``action``: a deterministic step for tree search."""
        return self.rssm.img_step(state, action, sample=False)

    def predict(self, feat: Tensor | SparseFeat, decode_obs: bool = True) -> dict[str, Tensor]:
        """Decode features ``(..., F)``: reward, continue probability and (with ``decode_obs``)
        images in [0, 1] ``(..., H, W, C)`` and vectors ``(..., D)``."""
        if isinstance(feat, SparseFeat):
            lead = feat.lead
            if decode_obs:
                feat = feat.to_dense(self.rssm.classes)
        else:
            lead = feat.shape[:-1]
        out = self._decode(feat, lead) if decode_obs else {}
        return {**out, **self._heads(feat)}

    def loss(
        self, batch: dict[str, Tensor], state: LatentState | None = None
    ) -> tuple[dict[str, Tensor], LatentState, dict[str, Tensor]]:
        """Unreduced ``(B, T)`` loss terms keyed by name, the posteriors, and diagnostics.

        ``batch`` follows docs/DESIGN.md's time alignment: ``action[:, t]`` is taken after ``obs[:, t]``,
        so the model is fed ``prev_action = action[:, t-1]`` (zeros at t=0 and where ``is_first``).
        """
        prev_action = self.prev_actions(batch["action"])
        obs = {k: batch[k] for k in self.obs_spec.keys()}
        self._check_obs(obs, batch["is_first"].shape)
        self._update_vector_scale(batch)
        posts, prior_logits = self.rssm.observe(self.encode(obs), prev_action, batch["is_first"], state)
        feat = posts.feat()  # (B, T, F)
        losses = {**self._reconstruction_losses(feat, batch), **self._head_losses(feat, batch)}
        kl_terms, dyn = self._kl_losses(posts.logits, prior_logits)
        losses.update(kl_terms)
        metrics = {"kl": dyn.mean().detach()}
        if len(self.prior_ensemble):
            target, deter = posts.logits.detach(), posts.deter.detach()
            kls = [categorical_kl(target, self._head_probs(head, deter).log()) for head in self.prior_ensemble]
            losses["ensemble"] = torch.stack(kls).sum(0)
            with torch.no_grad():
                metrics["disagreement"] = self.disagreement(feat.detach()).mean()
        return losses, posts, metrics

    def _head_probs(self, head: torch.nn.Module, deter: Tensor) -> Tensor:
        raw = head(deter)
        return unimix_probs(raw.reshape(*raw.shape[:-1], self.rssm.stoch_dim, self.rssm.classes), self.rssm.unimix)

    def disagreement(self, feat: Tensor | SparseFeat) -> Tensor | None:
        """The prior heads' disagreement about ``z`` given ``h``: the standard deviation across
        heads of each class probability, summed over classes and averaged over the latent's
        groups, divided by sqrt(K - 1) for K heads: 0 where they agree, 1 where each is sure of a
        different class."""
        if not len(self.prior_ensemble):
            return None
        deter = feat.dense if isinstance(feat, SparseFeat) else feat[..., : self.rssm.deter_dim]
        probs = [self._head_probs(head, deter).float() for head in self.prior_ensemble]
        # The spread across heads as sums over the list: torch's std over a stacked leading dim
        # took 14x longer on CPU and was half of a penalised train step.
        mean = sum(probs) / len(probs)
        variance = sum((p - mean).square() for p in probs) / len(probs)
        spread = variance.sqrt().sum(-1).mean(-1)
        return spread / math.sqrt(len(self.prior_ensemble) - 1)


def make_rssm(obs_spec: ObsSpec, action_spec: ActionSpec, cfg) -> WorldModel:
    """The ``rssm`` family from a run config (the ``model`` block; imagination path from ``dreamer``)."""
    model = cfg.model
    return WorldModel(
        obs_spec,
        action_spec.dim,
        deter=model.deter,
        **latent_settings(model),
        sparse_imagination=cfg.dreamer.sparse_imagination,
        prior_heads=model.prior_heads if cfg.penalty > 0 else 0,
    )
