"""M of the V/M/C model: an LSTM whose output is a mixture of Gaussians over the next latent.

Given ``z_t``, ``a_t`` and its memory ``(h_t, c_t)`` it predicts ``p(z_{t+1})`` as K Gaussians
per latent dimension (Ha & Schmidhuber 2018, after Graves 2013), plus whether the episode ends
(done logit) and the reward on arriving at ``t+1``. Trained teacher-forced on real sequences.

Deaths are rare (one step in ~200 on DoomTakeCover), so the done loss weights them ``done_weight``
times (the paper's ``restart_factor`` of 10) and the dream ends an episode where the done logit
is positive, as the paper's dream does. Together: an episode ends where the calibrated chance of
dying exceeds ``1 / (1 + done_weight)``. With plain BCE and a sampled flag, the head hedges, and
a dream rolled out free ends episodes far more rarely than the game does.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.dists import mdn_log_prob, mdn_sample

Memory = tuple[Tensor, Tensor]  # (h, c), each (1, B, units) as nn.LSTM keeps them


class MDNOutput(NamedTuple):
    logit_pi: Tensor  # (..., D, K)
    mu: Tensor  # (..., D, K)
    log_sigma: Tensor  # (..., D, K)
    reward: Tensor  # (...)
    done_logit: Tensor  # (...)


class MDNRNN(nn.Module):
    def __init__(self, z: int, action_dim: int, *, units: int = 256, mixtures: int = 5, done_weight: float = 10.0):
        super().__init__()
        if mixtures < 1:
            raise ValueError(f"the mixture needs at least one component (--vmc.mixtures >= 1), got {mixtures}")
        if done_weight <= 0:
            raise ValueError(f"--vmc.done-weight must be > 0 (1 is plain BCE; the paper's is 10), got {done_weight}")
        self.z, self.action_dim, self.units, self.mixtures = z, action_dim, units, mixtures
        self.done_weight = done_weight
        self.lstm = nn.LSTM(z + action_dim, units, batch_first=True)
        self.head = nn.Linear(units, 3 * z * mixtures + 2)

    def initial(self, batch: int) -> Memory:
        zeros = self.head.weight.new_zeros(1, batch, self.units)
        return zeros, zeros.clone()

    def heads(self, h: Tensor) -> MDNOutput:
        out = self.head(h)
        k, d = self.mixtures, self.z
        mdn = out[..., : 3 * d * k].reshape(*h.shape[:-1], d, 3 * k)
        logit_pi, mu, log_sigma = mdn.split(k, -1)
        return MDNOutput(logit_pi, mu, log_sigma.clamp(-7, 3), out[..., -2], out[..., -1])

    def forward(self, z: Tensor, action: Tensor, memory: Memory | None = None) -> tuple[MDNOutput, Tensor, Memory]:
        """``z (B, T, D)``, ``action (B, T, A)`` -> predictions for steps ``1..T``, hidden ``(B, T, units)``."""
        hidden, memory = self.lstm(torch.cat([z, action], -1), memory)
        return self.heads(hidden), hidden, memory

    def step(self, z: Tensor, action: Tensor, memory: Memory) -> tuple[MDNOutput, Memory]:
        """One step for ``(B, D)`` latents; the new memory's ``h`` is what the controller sees."""
        out, _, memory = self(z[:, None], action[:, None], memory)
        return MDNOutput(*(x[:, 0] for x in out)), memory

    def loss(
        self, z: Tensor, action: Tensor, next_z: Tensor, reward: Tensor, done: Tensor, mask: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Teacher-forced loss on ``(B, T)`` steps: mixture NLL per latent dimension (averaged, as
        the paper does), done BCE with deaths weighted ``done_weight`` times, and reward MSE;
        ``mask`` drops steps across episode boundaries."""
        w = mask.float() / mask.float().sum().clamp_min(1)
        terms = {k: (v * w).sum() for k, v in self.terms(z, action, next_z, reward, done).items()}
        return terms["nll"] + terms["done"] + terms["reward"], {k: v.detach() for k, v in terms.items()}

    def terms(self, z: Tensor, action: Tensor, next_z: Tensor, reward: Tensor, done: Tensor) -> dict[str, Tensor]:
        """Unreduced ``(B, T)`` teacher-forced terms: mixture NLL per latent dimension, weighted
        done BCE, reward squared error."""
        out, _, _ = self(z, action)
        nll = -mdn_log_prob(out.logit_pi, out.mu, out.log_sigma, next_z).mean(-1)
        pos_weight = torch.tensor(self.done_weight, device=z.device)
        bce = F.binary_cross_entropy_with_logits(out.done_logit, done.float(), reduction="none", pos_weight=pos_weight)
        return {"nll": nll, "done": bce, "reward": (out.reward - reward).square()}

    @staticmethod
    def sample(
        out: MDNOutput, temperature: float, generator=None, done_threshold: float = 0.0
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Next latent (temperature-scaled mixture), reward, and done flags (done logit above
        ``done_threshold``; the paper's is 0)."""
        z = mdn_sample(out.logit_pi, out.mu, out.log_sigma, temperature, generator)
        return z, out.reward, out.done_logit > done_threshold
