"""What the latent families (``rssm``, ``transformer``) share around their dynamics: encoders of
images and vectors, decoders, and the reward, continue and cost heads, with their losses.

A mixin rather than a submodule so that every family keeps the same parameter names
(``image_enc``, ``reward_head``, ...) in its checkpoints, and each family says only what reads
its features: the RSSM decodes observations from ``[h, z]``, the transformer from ``z`` alone.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..nn.dists import TwoHotSymlog, bernoulli_log_prob, categorical_kl, symexp, symlog, symlog_bins
from ..nn.layers import MLP, ConvDecoder, ConvEncoder, RunningScale, SparseFeat
from ..specs import COST, IMAGE, VECTOR, ObsSpec
from .base import COSTS


def latent_settings(model) -> dict:
    """What a latent family reads from the run config's ``model`` block (its latent, encoders,
    decoders, heads and losses), as keyword arguments of its constructor."""
    names = ("stoch", "classes", "units", "layers", "cnn_depth", "image_size", "unimix", "free_nats")
    names += ("kl_dyn", "kl_rep", "bins", "vector_norm")
    return {name: getattr(model, name) for name in names}


class LatentIO:
    """Builds and runs encoders, decoders and heads; mixed into a ``WorldModelBase`` subclass."""

    obs_spec: ObsSpec
    capabilities: frozenset[str]
    free_nats: float

    def _build_encoders(self, *, cnn_depth: int, image_size: int, units: int, layers: int, vector_norm: bool) -> int:
        """Encoders for the observation keys of ``obs_spec``; returns the embedding width."""
        spec = self.obs_spec
        if not spec.keys():
            raise ValueError("ObsSpec needs an image, a vector or both")
        embed = 0
        if spec.image is not None:
            h, w, c = spec.image
            if (h, w) != (image_size, image_size):
                raise ValueError(f"images must be resized to {image_size}x{image_size} first, got {h}x{w}")
            self.image_enc = ConvEncoder(c, depth=cnn_depth, image_size=image_size)
            embed += self.image_enc.out_dim
        if spec.vector is not None:
            self.vector_enc = MLP(spec.vector, None, units=units, layers=max(layers, 1))
            # Standardised symlog state vectors in and out (docs/DESIGN.md), or plain symlog.
            self.vector_scale = RunningScale(spec.vector) if vector_norm else None
            embed += self.vector_enc.out_dim
        return embed

    def _build_decoders(
        self, feat: int, *, cnn_depth: int, image_size: int, units: int, layers: int, onehot: tuple[int, int] | None
    ) -> None:
        if self.obs_spec.image is not None:
            self.image_dec = ConvDecoder(feat, self.obs_spec.image[2], depth=cnn_depth, image_size=image_size)
        if self.obs_spec.vector is not None:
            self.vector_dec = MLP(feat, self.obs_spec.vector, units=units, layers=layers, onehot=onehot)

    def _build_heads(self, feat: int, *, bins: int, units: int, layers: int, onehot: tuple[int, int]) -> None:
        """Reward (two-hot symlog, zero-initialised), continue, and a cost head like the reward's
        where the env charges costs."""
        self.reward_head = MLP(feat, bins, units=units, layers=layers, zero_init=True, onehot=onehot)
        self.cont_head = MLP(feat, 1, units=units, layers=layers, onehot=onehot)
        cost = self.obs_spec.cost
        self.cost_head = MLP(feat, bins, units=units, layers=layers, zero_init=True, onehot=onehot) if cost else None
        if cost:
            self.capabilities = self.capabilities | {COSTS}
        self.register_buffer("bins", symlog_bins(bins), persistent=False)

    def _io_loss_scales(self) -> dict[str, float]:
        scales = {k: 1.0 for k in self.obs_spec.keys()}
        scales.update(reward=1.0, cont=1.0)
        if self.cost_head is not None:
            scales[COST] = 1.0
        return scales

    def _io_parts(self) -> tuple[list[torch.nn.Module], list[torch.nn.Module]]:
        """``(encoder, heads)`` modules for :meth:`WorldModelBase.parts`."""

        def present(*names: str) -> list[torch.nn.Module]:
            return [getattr(self, n) for n in names if getattr(self, n, None) is not None]

        return present("image_enc", "vector_enc"), present(
            "image_dec", "vector_dec", "reward_head", "cont_head", "cost_head"
        )

    # ----------------------------------------------------------------- running them
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

    def _decode(self, feat: Tensor, lead: torch.Size) -> dict[str, Tensor]:
        """Observations from the decoders' input ``(..., F)``: images in [0, 1], vectors."""
        out: dict[str, Tensor] = {}
        if self.obs_spec.image is not None:
            img = self.image_dec(feat.reshape(-1, feat.shape[-1]))
            out[IMAGE] = (img + 0.5).clamp(0, 1).reshape(*lead, *img.shape[1:])
        if self.obs_spec.vector is not None:
            out[VECTOR] = symexp(self._vector_out(self.vector_dec(feat)))
        return out

    def _heads(self, feat: Tensor | SparseFeat) -> dict[str, Tensor]:
        out = {
            "reward": TwoHotSymlog(self.reward_head(feat), self.bins).mean(),
            "cont": torch.sigmoid(self.cont_head(feat).squeeze(-1)),
        }
        if self.cost_head is not None:
            out[COST] = TwoHotSymlog(self.cost_head(feat), self.bins).mean()
        return out

    def _reconstruction_losses(self, feat: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Squared errors ``(B, T)`` of the decoders reading ``feat (B, T, F)``."""
        losses: dict[str, Tensor] = {}
        if self.obs_spec.image is not None:
            B, T = feat.shape[:2]
            pred = self.image_dec(feat.reshape(B * T, -1)).reshape(B, T, *self.obs_spec.image).float()
            target = batch[IMAGE].float() / 255.0 - 0.5
            losses[IMAGE] = ((pred - target) ** 2).sum((-3, -2, -1))
        if self.obs_spec.vector is not None:
            pred = self.vector_dec(feat).float()
            losses[VECTOR] = ((pred - self._vector_in(batch[VECTOR])) ** 2).sum(-1)
        return losses

    def _head_losses(self, feat: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Negative log-likelihoods ``(B, T)`` of reward, continuation and cost."""
        losses = {"reward": -TwoHotSymlog(self.reward_head(feat), self.bins).log_prob(batch["reward"])}
        cont_target = 1.0 - batch["is_terminal"].float()
        losses["cont"] = -bernoulli_log_prob(self.cont_head(feat).squeeze(-1), cont_target)
        if self.cost_head is not None:
            losses[COST] = -TwoHotSymlog(self.cost_head(feat), self.bins).log_prob(batch[COST])
        return losses

    def _kl_losses(self, post_logits: Tensor, prior_logits: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """KL balancing with free bits (DreamerV3 eq. 5): ``dyn`` trains the prior towards the
        posterior, ``rep`` the posterior towards the prior, each clipped below ``free_nats`` per
        step; and the unclipped KL ``(B, T)`` for the metrics."""
        dyn = categorical_kl(post_logits.detach(), prior_logits)
        rep = categorical_kl(post_logits, prior_logits.detach())
        return {"dyn": dyn.clamp(min=self.free_nats), "rep": rep.clamp(min=self.free_nats)}, dyn

    def _update_vector_scale(self, batch: dict[str, Tensor]) -> None:
        if self.training and self.obs_spec.vector is not None and self.vector_scale is not None:
            self.vector_scale.update(symlog(batch[VECTOR].float()))

    def _vector_in(self, vector: Tensor) -> Tensor:
        """What the encoder reads and the decoder predicts: symlog, standardised with vector_norm."""
        x = symlog(vector.float())
        return x if self.vector_scale is None else self.vector_scale.normalize(x)

    def _vector_out(self, pred: Tensor) -> Tensor:
        return pred if self.vector_scale is None else self.vector_scale.denormalize(pred.float())

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
