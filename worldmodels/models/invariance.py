"""A domain-invariant encoder (DANN, Ganin et al. 2016), and a probe of how much domain the latents carry.

With ``--invariant-encoder`` a classifier learns to tell an observation's domain from its
embedding (the encoder's output, :meth:`WorldModelBase.embed`), and a gradient-reversal layer
hands the encoder the negated gradient of that classifier's loss, scaled by
``--invariant-weight``: the classifier gets better at telling domains apart while the encoder
learns to make that impossible. Domains are the episode's randomised values recorded in the
replay (envs/domains.py); each parameter's range is cut into :data:`BINS` equally likely bins
(log-spaced for scales, as they are drawn), so a classifier that knows nothing scores 1/BINS.

The adversary's own accuracy says little (it is being fought), so :func:`probe_accuracy` fits
a fresh linear classifier on the latent features of one half of the episodes and scores it on
the other half: the held-out accuracy, whose goal with an invariant encoder is chance.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..envs.domain_spec import ParamSpec
from ..nn.layers import MLP

BINS = 4  # per randomised parameter: chance is 1/BINS


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return -ctx.scale * grad, None


UNKNOWN = -100  # the label of a step whose domain is not known (cross_entropy's ignore_index)


def reverse_gradient(x: Tensor, scale: float = 1.0) -> Tensor:
    """The identity going forward; going back, the gradient times ``-scale``."""
    return _Reverse.apply(x, scale)


def varied(params: Sequence[ParamSpec]) -> list[int]:
    """Indices (into the recorded domain vector) of the parameters that vary between episodes."""
    return [i for i, p in enumerate(params) if not p.fixed]


def domain_labels(values: Tensor, params: Sequence[ParamSpec]) -> Tensor:
    """The bin of each varied parameter's value: ``(..., P)`` recorded values -> ``(..., V)`` long
    labels in ``[0, BINS)``, bins equally likely under the parameter's draw; ``UNKNOWN`` where the
    value is NaN (a dataset's step whose domain was not recorded)."""
    labels = []
    for i in varied(params):
        p, v = params[i], values[..., i].double()
        if p.scale:
            where = (torch.log(v) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))
        else:
            where = (v - p.low) / (p.high - p.low)
        label = (where * BINS).floor().clamp(0, BINS - 1).long()
        labels.append(torch.where(torch.isnan(v), torch.full_like(label, UNKNOWN), label))
    return torch.stack(labels, -1)


class DomainAdversary(nn.Module):
    """A classifier of the domain bins from embeddings, behind a gradient-reversal layer."""

    def __init__(self, embed_dim: int, params: Sequence[ParamSpec], *, weight: float, units: int = 128):
        super().__init__()
        self.params = list(params)
        self.count = len(varied(self.params))
        if self.count == 0:
            raise ValueError("a domain adversary needs at least one parameter that varies between episodes")
        self.weight = weight
        self.head = MLP(embed_dim, self.count * BINS, units=units, layers=1)

    def loss(self, embed: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-entropy of the bins from reversed embeddings ``(B, T, E)``, and the accuracy."""
        logits = self.head(reverse_gradient(embed.float(), self.weight)).reshape(*embed.shape[:-1], self.count, BINS)
        labels = domain_labels(values, self.params)
        known = labels != UNKNOWN
        if not known.any():  # nothing here says its domain: no loss to learn from
            return logits.sum() * 0.0, torch.zeros((), device=embed.device)
        ce = nn.functional.cross_entropy(logits.reshape(-1, BINS), labels.reshape(-1), ignore_index=UNKNOWN)
        accuracy = (logits.argmax(-1) == labels)[known].float().mean()
        return ce, accuracy.detach()


def probe_accuracy(
    features: Tensor, values: Tensor, params: Sequence[ParamSpec], *, steps: int = 300, seed: int = 0
) -> float | None:
    """Held-out accuracy of a fresh linear classifier of the domain bins from ``features (N, F)``:
    trained on the steps of one half of the episodes, scored on the other half. Episodes are told
    apart by their recorded values ``(N, P)`` (continuous draws: one vector per episode), so no
    episode is on both sides. None when either side is empty."""
    known = ~torch.isnan(values).any(-1)  # steps whose domain was recorded
    features, values = features[known], values[known]
    key = np.asarray(values.detach().cpu().double())
    hashed = np.array([zlib.crc32(row.tobytes()) for row in key])
    side = (hashed % 2) == 0
    if side.all() or not side.any():
        return None
    side_t = torch.as_tensor(side, device=features.device)
    x = features.detach().float()
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    labels = domain_labels(values, params)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    probe = nn.Linear(x.shape[-1], labels.shape[-1] * BINS).to(x.device)
    with torch.no_grad():
        probe.weight.copy_(torch.randn(probe.weight.shape, generator=generator).to(x.device) * 0.01)
        probe.bias.zero_()
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=1e-4)
    train_x, train_y = x[side_t], labels[side_t]
    with torch.enable_grad():
        for _ in range(steps):
            logits = probe(train_x).reshape(-1, BINS)
            loss = nn.functional.cross_entropy(logits, train_y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        held = probe(x[~side_t]).reshape(-1, labels.shape[-1], BINS).argmax(-1)
    return float((held == labels[~side_t]).float().mean())
