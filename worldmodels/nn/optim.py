"""The optimiser of the published DreamerV3: LaProp with adaptive gradient clipping and a linear
learning-rate warm-up.

PyTorch has neither LaProp nor adaptive gradient clipping (torch-optimizer's packages are
unmaintained and have no AGC of this form), so both are written here, each a few lines of the
published update rule, and tested against a step-by-step evaluation of that rule.

LaProp (Ziyin, Wang and Ueda 2020) divides the gradient by its running RMS *before* momentum,
where Adam divides the momentum after; the momentum of normalised gradients cannot blow up when
the second moment is near zero, so it tolerates an epsilon of 1e-20 (DreamerV3's) where Adam needs
~1e-8. One step at count ``t`` (from 1), for a parameter with gradient ``g``:

    v = beta2 v + (1 - beta2) g^2                  (second moment)
    u = g / (sqrt(v / (1 - beta2^t)) + eps)        (bias-corrected RMS normalisation)
    m = beta1 m + (1 - beta1) u                    (momentum of normalised gradients)
    p = p - lr_t m / (1 - beta1^t)                 lr_t = lr min(1, t / warmup)

Adaptive gradient clipping (Brock et al. 2021, per tensor as DreamerV3 applies it) limits each
tensor's gradient norm to ``agc * max(pmin, ||p||)``: a step never moves a weight by more than a
fixed fraction of its size, whatever the loss scale.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


class LaProp(torch.optim.Optimizer):
    """LaProp with DreamerV3's defaults (lr 4e-5, betas (0.9, 0.999), eps 1e-20) and a linear
    warm-up of ``warmup`` steps (0: none). ``weight_decay`` is decoupled (AdamW-style)."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 4e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-20,
        warmup: int = 0,
        weight_decay: float = 0.0,
    ):
        if lr <= 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps < 0 or warmup < 0:
            raise ValueError(
                f"LaProp needs lr > 0, 0 <= betas < 1, eps >= 0, warmup >= 0; got {lr}, {betas}, {eps}, {warmup}"
            )
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, warmup=warmup, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["nu"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["mu"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"]
                g = p.grad
                nu, mu = state["nu"], state["mu"]
                nu.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (nu / (1 - beta2**t)).sqrt_().add_(group["eps"])
                mu.mul_(beta1).addcdiv_(g, denom, value=1 - beta1)
                lr = group["lr"] * (min(1.0, t / group["warmup"]) if group["warmup"] else 1.0)
                if group["weight_decay"]:
                    p.mul_(1 - lr * group["weight_decay"])
                p.add_(mu, alpha=-lr / (1 - beta1**t))
        return loss


@torch.no_grad()
def clip_by_agc_(parameters: Iterable[Tensor], agc: float, pmin: float = 1e-3) -> Tensor:
    """Scale each tensor's gradient down to norm ``agc * max(pmin, ||p||)`` where it is larger, in
    place; returns the global gradient norm before clipping (for metrics)."""
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return torch.zeros(())
    grads = [p.grad for p in params]
    gnorms = torch.stack(torch._foreach_norm(grads))
    pnorms = torch.stack(torch._foreach_norm([p.detach() for p in params])).clamp_min(pmin)
    limit = agc * pnorms
    scale = torch.where(gnorms > limit, limit / gnorms.clamp_min(1e-6), torch.ones_like(gnorms))
    for g, s in zip(grads, scale.unbind()):
        g.mul_(s)
    return gnorms.norm()


def make_optimizer(kind: str, params: Iterable[Tensor], *, lr: float, eps: float, warmup: int) -> torch.optim.Optimizer:
    """``laprop`` (DreamerV3 as published) or ``adam`` (its first version; ``warmup`` ignored)."""
    if kind == "laprop":
        return LaProp(params, lr=lr, eps=eps, warmup=warmup)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, eps=eps)
    raise ValueError(f"--dreamer.optimizer must be laprop or adam, got {kind!r}")
