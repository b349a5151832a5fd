"""Distributions and transforms of the DreamerV3 recipe, as pure functions on tensors."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def wide(x: Tensor) -> Tensor:
    """``x`` in float32 if it is a half type (bfloat16 autocast); float32 and float64 stay."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def symlog(x: Tensor) -> Tensor:
    """sign(x)·ln(1+|x|): compresses large magnitudes, identity near zero (DreamerV3 eq. 1)."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    """Inverse of :func:`symlog`."""
    return torch.sign(x) * torch.expm1(x.abs())


def symlog_bins(num: int, *, low: float = -20.0, high: float = 20.0, device=None) -> Tensor:
    """Equally spaced bin centres in symlog space (255 over [-20, 20] in DreamerV3)."""
    return torch.linspace(low, high, num, device=device)


def two_hot(x: Tensor, bins: Tensor) -> Tensor:
    """Encode scalars ``x [...]`` as weights on the two nearest ``bins [K]`` -> ``[..., K]``.

    The weights sum to one and their expectation over ``bins`` equals ``x`` (clipped to the range).
    """
    x = x.clamp(bins[0], bins[-1])
    above = torch.searchsorted(bins, x.contiguous(), right=True).clamp(1, len(bins) - 1)
    below = above - 1
    lo, hi = bins[below], bins[above]
    w_hi = (x - lo) / (hi - lo)
    out = torch.zeros(*x.shape, len(bins), device=x.device, dtype=x.dtype)
    out.scatter_(-1, below.unsqueeze(-1), (1 - w_hi).unsqueeze(-1))
    out.scatter_add_(-1, above.unsqueeze(-1), w_hi.unsqueeze(-1))
    return out


class TwoHotSymlog:
    """A categorical over symlog-spaced bins, read out as a scalar in the original space.

    ``logits [..., K]``; ``mean()`` and ``log_prob(target)`` are in the untransformed space.
    """

    def __init__(self, logits: Tensor, bins: Tensor):
        self.logits = logits
        self.bins = bins

    def mean(self) -> Tensor:
        probs = wide(self.logits).softmax(-1)
        return symexp((probs * self.bins).sum(-1))

    def log_prob(self, target: Tensor) -> Tensor:
        weights = two_hot(symlog(wide(target)), self.bins)
        return (weights * wide(self.logits).log_softmax(-1)).sum(-1)


def unimix_probs(logits: Tensor, unimix: float) -> Tensor:
    """Softmax with ``unimix`` of a uniform mixed in, so no class has probability ~0 (DreamerV3)."""
    probs = wide(logits).softmax(-1)
    if unimix <= 0:
        return probs
    return (1 - unimix) * probs + unimix / probs.shape[-1]


def unimix_logits(logits: Tensor, unimix: float) -> Tensor:
    """Log of :func:`unimix_probs`."""
    if unimix <= 0:
        return wide(logits).log_softmax(-1)
    return unimix_probs(logits, unimix).log()


def sample_index(probs: Tensor) -> Tensor:
    """Class indices ``(...)`` sampled from categoricals ``probs (..., C)`` by inverse CDF.

    Several times faster on CPU than ``torch.multinomial`` or Gumbel-max at the sizes imagination
    uses (32k categoricals per step), because it needs one uniform per categorical.
    """
    cdf = probs.cumsum(-1)
    u = torch.rand(*probs.shape[:-1], 1, device=probs.device, dtype=cdf.dtype) * cdf[..., -1:]
    return (cdf < u).sum(-1).clamp(max=probs.shape[-1] - 1)


def onehot(index: Tensor, classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    out = torch.zeros(*index.shape, classes, dtype=dtype, device=index.device)
    return out.scatter_(-1, index.unsqueeze(-1), 1.0)


def sample_onehot(probs: Tensor) -> Tensor:
    """One-hot sample of categoricals ``probs (..., C)`` (see :func:`sample_index`)."""
    return onehot(sample_index(probs), probs.shape[-1], probs.dtype)


def straight_through(sample: Tensor, probs: Tensor) -> Tensor:
    """Forward ``sample``, backward the gradient of ``probs`` (straight-through estimator)."""
    if not probs.requires_grad:
        return sample
    return sample + probs - probs.detach()


def mode_onehot(probs_or_logits: Tensor) -> Tensor:
    index = probs_or_logits.argmax(-1, keepdim=True)
    return torch.zeros_like(probs_or_logits).scatter_(-1, index, 1.0)


def categorical_kl(lhs_logits: Tensor, rhs_logits: Tensor) -> Tensor:
    """KL(lhs || rhs) of independent categoricals ``[..., S, C]``, summed over ``S`` -> ``[...]``."""
    lhs_logp = wide(lhs_logits).log_softmax(-1)
    rhs_logp = wide(rhs_logits).log_softmax(-1)
    return (lhs_logp.exp() * (lhs_logp - rhs_logp)).sum((-2, -1))


def categorical_entropy(logits: Tensor) -> Tensor:
    logp = wide(logits).log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def bernoulli_log_prob(logits: Tensor, target: Tensor) -> Tensor:
    return -F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")


def bounded_normal(raw_mean: Tensor, raw_std: Tensor, *, min_std: float = 0.1, max_std: float = 1.0):
    """DreamerV3's continuous policy: Normal(tanh(mean), std in [min_std, max_std])."""
    mean = torch.tanh(wide(raw_mean))
    std = (max_std - min_std) * torch.sigmoid(wide(raw_std) + 2.0) + min_std
    return torch.distributions.Normal(mean, std)


# ------------------------------------------------------------------ mixture density (MDN-RNN)
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def mdn_log_prob(logit_pi: Tensor, mu: Tensor, log_sigma: Tensor, x: Tensor) -> Tensor:
    """Log-density of ``x [..., D]`` under a mixture of K Gaussians per dimension.

    ``logit_pi, mu, log_sigma``: ``[..., D, K]`` (each dimension has its own mixture, as in Ha &
    Schmidhuber 2018). Returns ``[..., D]``: ``log sum_k pi_k N(x; mu_k, sigma_k)``.
    """
    z = (x.unsqueeze(-1) - mu) * torch.exp(-log_sigma)
    log_normal = -0.5 * z.square() - log_sigma - LOG_SQRT_2PI
    return torch.logsumexp(F.log_softmax(logit_pi, -1) + log_normal, -1)


def mdn_sample(logit_pi: Tensor, mu: Tensor, log_sigma: Tensor, temperature: float = 1.0, generator=None) -> Tensor:
    """Sample ``[..., D]`` from the mixture with temperature ``tau`` (Ha & Schmidhuber's recipe):
    mixture weights ``softmax(logit / tau)``, standard deviations ``sigma * sqrt(tau)``.

    As ``tau -> 0`` the sample is the mean of the most likely component.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (try 1.0; 1.15 makes the dream harder), got {temperature}")
    probs = F.softmax(logit_pi.float() / temperature, -1)
    flat = probs.reshape(-1, probs.shape[-1])
    index = torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1] + (1,))
    mean = mu.gather(-1, index).squeeze(-1)
    std = torch.exp(log_sigma.gather(-1, index).squeeze(-1)) * math.sqrt(temperature)
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + std * noise
