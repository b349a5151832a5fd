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

from ..nn.dists import (
    TwoHotSymlog,
    bernoulli_log_prob,
    categorical_kl,
    symexp,
    symlog,
    symlog_bins,
    unimix_probs,
)
from ..nn.layers import MLP, ConvDecoder, ConvEncoder, RunningScale, SparseFeat
from ..specs import COST, IMAGE, VECTOR, ActionSpec, ObsSpec
from .base import COSTS, DECODES, DISAGREES, ENCODES, FEATURES, WorldModelBase, prev_actions
from .rssm import RSSM, LatentState, Policy


class WorldModel(WorldModelBase):
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
        if not obs_spec.keys():
            raise ValueError("ObsSpec needs an image, a vector or both")
        self.obs_spec, self.action_dim = obs_spec, action_dim
        self.free_nats, self.kl_dyn, self.kl_rep = free_nats, kl_dyn, kl_rep
        embed = 0
        if obs_spec.image is not None:
            h, w, c = obs_spec.image
            if (h, w) != (image_size, image_size):
                raise ValueError(f"images must be resized to {image_size}x{image_size} first, got {h}x{w}")
            self.image_enc = ConvEncoder(c, depth=cnn_depth, image_size=image_size)
            embed += self.image_enc.out_dim
        if obs_spec.vector is not None:
            self.vector_enc = MLP(obs_spec.vector, None, units=units, layers=max(layers, 1))
            # Standardised symlog state vectors in and out (docs/DESIGN.md), or plain symlog.
            self.vector_scale = RunningScale(obs_spec.vector) if vector_norm else None
            embed += self.vector_enc.out_dim
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
        if obs_spec.image is not None:
            self.image_dec = ConvDecoder(feat, obs_spec.image[2], depth=cnn_depth, image_size=image_size)
        if obs_spec.vector is not None:
            self.vector_dec = MLP(feat, obs_spec.vector, units=units, layers=layers, onehot=onehot)
        self.reward_head = MLP(feat, bins, units=units, layers=layers, zero_init=True, onehot=onehot)
        self.cont_head = MLP(feat, 1, units=units, layers=layers, onehot=onehot)
        # Where the env charges costs, a cost head like the reward's (two-hot symlog, zero-initialised).
        self.cost_head = (
            MLP(feat, bins, units=units, layers=layers, zero_init=True, onehot=onehot) if obs_spec.cost else None
        )
        if obs_spec.cost:
            self.capabilities = self.capabilities | {COSTS}
        self.register_buffer("bins", symlog_bins(bins), persistent=False)
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
        scales = {k: 1.0 for k in self.obs_spec.keys()}
        extra = {"ensemble": 1.0} if len(self.prior_ensemble) else {}
        if self.cost_head is not None:
            extra[COST] = 1.0
        return {**scales, "reward": 1.0, "cont": 1.0, "dyn": self.kl_dyn, "rep": self.kl_rep, **extra}

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
        def present(*names: str) -> list[torch.nn.Module]:
            return [getattr(self, n) for n in names if getattr(self, n, None) is not None]

        return {
            "encoder": present("image_enc", "vector_enc"),
            "dynamics": [self.rssm, self.prior_ensemble],
            "heads": present("image_dec", "vector_dec", "reward_head", "cont_head", "cost_head"),
        }

    # ----------------------------------------------------------------- verbs
    def initial(self, batch: int) -> LatentState:
        return self.rssm.initial(batch)

    def encode(self, obs: dict[str, Tensor]) -> Tensor:
        """``obs`` with leading dims ``(B, T)`` -> embeddings ``(B, T, E)``."""
        parts = []
        if self.obs_spec.image is not None:
            img = obs[IMAGE]
            lead = img.shape[:-3]
            parts.append(self.image_enc(img.reshape(-1, *img.shape[-3:])).reshape(*lead, -1))
        if self.obs_spec.vector is not None:
            parts.append(self.vector_enc(self._vector_in(obs[VECTOR])))
        return torch.cat(parts, -1)

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
        if isinstance(policy_or_actions, Tensor):
            actions = policy_or_actions
            horizon = actions.shape[1] if horizon is None else horizon
            steps = iter(actions.unbind(1))

            def policy(feat):
                return next(steps)
        else:
            policy = policy_or_actions
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
        out: dict[str, Tensor] = {}
        if isinstance(feat, SparseFeat):
            lead = feat.lead
            if decode_obs:
                feat = feat.to_dense(self.rssm.classes)
        else:
            lead = feat.shape[:-1]
        if decode_obs and self.obs_spec.image is not None:
            img = self.image_dec(feat.reshape(-1, feat.shape[-1]))
            out[IMAGE] = (img + 0.5).clamp(0, 1).reshape(*lead, *img.shape[1:])
        if decode_obs and self.obs_spec.vector is not None:
            out[VECTOR] = symexp(self._vector_out(self.vector_dec(feat)))
        out["reward"] = TwoHotSymlog(self.reward_head(feat), self.bins).mean()
        out["cont"] = torch.sigmoid(self.cont_head(feat).squeeze(-1))
        if self.cost_head is not None:
            out[COST] = TwoHotSymlog(self.cost_head(feat), self.bins).mean()
        return out

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
        if self.training and self.obs_spec.vector is not None and self.vector_scale is not None:
            self.vector_scale.update(symlog(batch[VECTOR].float()))
        posts, prior_logits = self.rssm.observe(self.encode(obs), prev_action, batch["is_first"], state)
        feat = posts.feat()  # (B, T, F)
        losses: dict[str, Tensor] = {}
        if self.obs_spec.image is not None:
            B, T = feat.shape[:2]
            pred = self.image_dec(feat.reshape(B * T, -1)).reshape(B, T, *self.obs_spec.image).float()
            target = batch[IMAGE].float() / 255.0 - 0.5
            losses[IMAGE] = ((pred - target) ** 2).sum((-3, -2, -1))
        if self.obs_spec.vector is not None:
            pred = self.vector_dec(feat).float()
            losses[VECTOR] = ((pred - self._vector_in(batch[VECTOR])) ** 2).sum(-1)
        losses["reward"] = -TwoHotSymlog(self.reward_head(feat), self.bins).log_prob(batch["reward"])
        cont_target = 1.0 - batch["is_terminal"].float()
        losses["cont"] = -bernoulli_log_prob(self.cont_head(feat).squeeze(-1), cont_target)
        if self.cost_head is not None:
            losses[COST] = -TwoHotSymlog(self.cost_head(feat), self.bins).log_prob(batch[COST])
        # KL balancing with free bits (DreamerV3 eq. 5): clip each term below free_nats per step.
        dyn = categorical_kl(posts.logits.detach(), prior_logits)
        rep = categorical_kl(posts.logits, prior_logits.detach())
        losses["dyn"] = dyn.clamp(min=self.free_nats)
        losses["rep"] = rep.clamp(min=self.free_nats)
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

    def _vector_in(self, vector: Tensor) -> Tensor:
        """What the encoder reads and the decoder predicts: symlog, standardised with vector_norm."""
        x = symlog(vector.float())
        return x if self.vector_scale is None else self.vector_scale.normalize(x)

    def _vector_out(self, pred: Tensor) -> Tensor:
        return pred if self.vector_scale is None else self.vector_scale.denormalize(pred.float())

    # ----------------------------------------------------------------- checks
    def _check_obs(self, obs: dict[str, Tensor], lead: torch.Size) -> None:
        spec = self.obs_spec
        if spec.image is not None:
            if IMAGE not in obs or tuple(obs[IMAGE].shape) != (*lead, *spec.image):
                got = tuple(obs[IMAGE].shape) if IMAGE in obs else "nothing"
                raise ValueError(f"expected obs['image'] of shape {(*lead, *spec.image)}, got {got}")
        if spec.vector is not None:
            if VECTOR not in obs or tuple(obs[VECTOR].shape) != (*lead, spec.vector):
                got = tuple(obs[VECTOR].shape) if VECTOR in obs else "nothing"
                raise ValueError(f"expected obs['vector'] of shape {(*lead, spec.vector)}, got {got}")


def make_rssm(obs_spec: ObsSpec, action_spec: ActionSpec, cfg) -> WorldModel:
    """The ``rssm`` family from a run config (the ``model`` block; imagination path from ``dreamer``)."""
    model = cfg.model
    return WorldModel(
        obs_spec,
        action_spec.dim,
        deter=model.deter,
        stoch=model.stoch,
        classes=model.classes,
        units=model.units,
        layers=model.layers,
        cnn_depth=model.cnn_depth,
        image_size=model.image_size,
        unimix=model.unimix,
        free_nats=model.free_nats,
        kl_dyn=model.kl_dyn,
        kl_rep=model.kl_rep,
        bins=model.bins,
        sparse_imagination=cfg.dreamer.sparse_imagination,
        vector_norm=model.vector_norm,
        prior_heads=model.prior_heads if cfg.penalty > 0 else 0,
    )
