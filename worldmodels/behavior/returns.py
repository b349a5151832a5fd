"""Returns and their normalisation, as pure functions (tested against plain Python loops)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..nn.distributed import gather_rows


def lambda_returns(reward: Tensor, cont: Tensor, value: Tensor, *, gamma: float, lam: float) -> Tensor:
    """TD(lambda) returns of an imagined trajectory of states ``s_0 .. s_H``.

    ``reward[:, k]`` and ``cont[:, k]`` are predicted at ``s_{k+1}`` (shape ``(N, H)``);
    ``value`` is ``(N, H + 1)`` for ``s_0 .. s_H``. Returns ``R_0 .. R_{H-1}`` as ``(N, H)``:
    ``R_k = r_{k+1} + gamma c_{k+1} ((1 - lam) v_{k+1} + lam R_{k+1})``, ``R_H = v_H``.
    """
    H = reward.shape[1]
    if cont.shape != reward.shape or value.shape[1] != H + 1:
        raise ValueError(
            f"expected reward and cont (N, H) and value (N, H+1); got {tuple(reward.shape)}, "
            f"{tuple(cont.shape)}, {tuple(value.shape)}"
        )
    disc = gamma * cont
    out = []
    ret = value[:, -1]
    for k in reversed(range(H)):
        ret = reward[:, k] + disc[:, k] * ((1 - lam) * value[:, k + 1] + lam * ret)
        out.append(ret)
    return torch.stack(out[::-1], 1)


class ReturnScale(nn.Module):
    """EMA of the 5th-95th percentile range of returns; advantages are divided by max(1, range).

    DreamerV3's return normalisation: large returns are scaled down, small ones are left alone so
    that noise in sparse-reward tasks is not amplified.
    """

    def __init__(self, decay: float = 0.99, low: float = 0.05, high: float = 0.95):
        super().__init__()
        self.decay, self.low_q, self.high_q = decay, low, high
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, returns: Tensor) -> Tensor:
        # The percentiles of the whole batch, whichever ranks hold its rows (nn/distributed.py).
        flat = gather_rows(returns.detach().float().flatten())
        low, high = torch.quantile(flat, self.low_q), torch.quantile(flat, self.high_q)
        if not self.initialised:
            self.low.copy_(low)
            self.high.copy_(high)
            self.initialised.fill_(True)
        else:
            self.low.lerp_(low, 1 - self.decay)
            self.high.lerp_(high, 1 - self.decay)
        return self.scale()

    def scale(self) -> Tensor:
        return torch.clamp(self.high - self.low, min=1.0)


def replay_lambda_returns(
    reward: Tensor, terminal: Tensor, first: Tensor, value: Tensor, *, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """TD(lambda) returns along replayed sequences of ``L`` stored rows, which may cross episodes.

    Rows are as the replay stores them (``(N, L)`` each): ``reward[:, t]`` and ``terminal[:, t]``
    came with arriving at row ``t``; ``first[:, t]`` marks row ``t`` as an episode's start, so the
    step from ``t - 1`` to ``t`` is no transition. ``value`` is ``V(s_t)`` (a target network's).
    A terminal state is worth 0; at an episode's end the return is cut to the state's own value
    (a truncation), so nothing leaks across episodes.

    Returns ``R_0 .. R_{L-2}`` as ``(N, L-1)`` and a mask of the rows that are real training
    targets (not terminal, and followed by a transition of their own episode).
    """
    if not reward.shape == terminal.shape == first.shape == value.shape:
        raise ValueError(
            f"expected reward, terminal, first and value of one shape (N, L); got {tuple(reward.shape)}, "
            f"{tuple(terminal.shape)}, {tuple(first.shape)}, {tuple(value.shape)}"
        )
    alive = 1.0 - terminal.float()
    first = first.bool()
    v = value * alive
    ret = v[:, -1]
    out = []
    for t in reversed(range(reward.shape[1] - 1)):
        step = reward[:, t + 1] + gamma * alive[:, t + 1] * ((1 - lam) * v[:, t + 1] + lam * ret)
        ret = torch.where(first[:, t + 1], v[:, t], step)
        out.append(ret)
    valid = ~first[:, 1:] & ~terminal[:, :-1].bool()
    return torch.stack(out[::-1], 1), valid
