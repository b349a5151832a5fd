"""V and M of Ha & Schmidhuber's V/M/C (family ``vmc``) behind the world-model contract.

V (a ConvVAE) encodes each frame to ``z``; M (an MDN-RNN) predicts the next ``z`` as a mixture of
Gaussians, the reward and whether the episode ends. A state holds ``z_t`` and M's memory
``(h_t, c_t)`` *before* ``z_t`` arrives (what the controller sees), so the memory at ``t`` has
read ``(z_{t-1}, a_{t-1})``. The V/M/C pipeline trains V and M in stages (``vmc/stages.py``);
:meth:`VisionMemory.loss` gives the same terms unreduced, for every tool that asks a family for
its loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..specs import IMAGE, ActionSpec, ObsSpec
from .base import DECODES, TEMPERATURE, WorldModelBase, prev_actions, unroll
from .mdnrnn import MDNRNN
from .vae import ConvVAE


class VMState(NamedTuple):
    z: Tensor  # (..., Z) latent of the frame at t
    h: Tensor  # (..., U) M's memory before z_t arrives
    c: Tensor  # (..., U) its LSTM cell
    reward: Tensor  # (...) reward M predicted for arriving here (0 at an episode start)
    cont: Tensor  # (...) probability the episode goes on from here

    def map(self, fn: Callable[[Tensor], Tensor]) -> VMState:
        return VMState(*(fn(x) for x in self))


class VisionMemory(WorldModelBase):
    capabilities = frozenset({DECODES, TEMPERATURE})

    def __init__(self, obs_spec: ObsSpec, action_dim: int, vae: ConvVAE, mdnrnn: MDNRNN, temperature: float = 1.0):
        super().__init__()
        self.obs_spec, self.action_dim = obs_spec, action_dim
        self.vae, self.mdnrnn, self.temperature = vae, mdnrnn, temperature

    def parts(self) -> dict[str, list[torch.nn.Module]]:
        return {"encoder": [self.vae], "dynamics": [self.mdnrnn]}

    def describe(self) -> str:
        return f"VAE z={self.vae.z}, MDN-RNN {self.mdnrnn.units} units x {self.mdnrnn.mixtures} Gaussians"

    def initial(self, batch: int) -> VMState:
        h, c = self.mdnrnn.initial(batch)
        zeros = h.new_zeros(batch)
        return VMState(h.new_zeros(batch, self.vae.z), h[0], c[0], zeros, zeros + 1)

    def _advance(self, state: VMState, action: Tensor, z_next: Tensor | None, sample: bool, generator=None):
        """M reads ``(z_t, a_t)``; the next state holds ``z_next`` (or one sampled from M)."""
        out, (h, c) = self.mdnrnn.step(state.z, action.float(), (state.h[None], state.c[None]))
        if z_next is None:
            if sample:
                z_next, _, _ = self.mdnrnn.sample(out, self.temperature, generator)
            else:  # the mean of each dimension's most likely component
                index = out.logit_pi.argmax(-1, keepdim=True)
                z_next = out.mu.gather(-1, index).squeeze(-1)
        return VMState(z_next, h[0], c[0], out.reward, 1 - torch.sigmoid(out.done_logit))

    def observe(self, state, obs: dict[str, Tensor], prev_action: Tensor, is_first: Tensor) -> VMState:
        z = self.vae.encode(obs[IMAGE]).mean  # (B, T, Z)
        state = self.initial(z.shape[0]) if state is None else state
        keep = (~is_first.bool()).float()  # (B, T)
        states = []
        for t in range(z.shape[1]):
            nxt = self._advance(state, prev_action[:, t], z[:, t], sample=False)
            k = keep[:, t]
            state = VMState(
                nxt.z, nxt.h * k[:, None], nxt.c * k[:, None], nxt.reward * k, nxt.cont * k + (1 - k)
            )  # an episode start forgets the memory
            states.append(state)
        return VMState(*(torch.stack(x, 1) for x in zip(*states)))

    def imagine(self, state: VMState, policy_or_actions, horizon: int | None = None, sample: bool = True):
        return unroll(state, policy_or_actions, horizon, lambda s, a: self._advance(s, a, None, sample))

    def advance(self, state: VMState, action: Tensor) -> VMState:
        return self._advance(state, action, None, sample=False)

    def features(self, states: VMState) -> VMState:
        return states

    def predict(self, feat: VMState, decode_obs: bool = True) -> dict[str, Tensor]:
        out = {"reward": feat.reward, "cont": feat.cont}
        return {IMAGE: self.vae.decode(feat.z), **out} if decode_obs else out

    @property
    def loss_scales(self) -> dict[str, float]:
        return {"recon": 1.0, "kl": 1.0, "nll": 1.0, "done": 1.0, "reward": 1.0}

    def loss(self, batch: dict[str, Tensor]):
        """V's ELBO terms per frame and M's teacher-forced terms per step ``(B, T)`` (M's are 0 at
        t=0 and where a step starts an episode: nothing led to it)."""
        frames = batch[IMAGE]
        B, T = frames.shape[:2]
        v = {k: x.reshape(B, T) for k, x in self.vae.terms(frames.reshape(B * T, *frames.shape[2:])).items()}
        post = self.vae.encode(frames)
        z = post.mean + torch.exp(0.5 * post.logvar) * torch.randn_like(post.mean)
        m = self.mdnrnn.terms(
            z[:, :-1].detach(),
            batch["action"][:, :-1].float(),
            z[:, 1:].detach(),
            batch["reward"][:, 1:].float(),
            batch["is_terminal"][:, 1:],
        )
        valid = (~batch["is_first"][:, 1:].bool()).float()
        pad = z.new_zeros(B, 1)
        terms = {**v, **{k: torch.cat([pad, x * valid], 1) for k, x in m.items()}}
        states = self.observe(None, {IMAGE: frames}, prev_actions(batch["action"]), batch["is_first"])
        return terms, states, {}

    @torch.no_grad()
    def open_loop(self, steps, context: int, horizon: int, *, temperature: float = 1.0) -> dict[str, np.ndarray]:
        """V encodes the context frames, M reads them, then M dreams: each next ``z`` is sampled from
        its mixture at ``temperature`` under the real actions, and V decodes every ``z``."""
        device = self.device
        H = min(horizon, len(steps["reward"]) - context)
        frames = torch.as_tensor(steps[IMAGE]).to(device)
        actions = torch.as_tensor(steps["action"]).float().to(device)
        z = self.vae.encode(frames[:context]).mean
        memory = self.mdnrnn.initial(1)
        for t in range(context - 1):
            _, memory = self.mdnrnn.step(z[t : t + 1], actions[t : t + 1], memory)
        zt, dreamt = z[context - 1 : context], []
        for k in range(H):
            out, memory = self.mdnrnn.step(zt, actions[context - 1 + k : context + k], memory)
            zt, _, _ = self.mdnrnn.sample(out, temperature)
            dreamt.append(zt)
        latents = torch.cat([z, *dreamt])
        return {IMAGE: self.vae.decode(latents).cpu().numpy()}


def make_vision_memory(obs_spec: ObsSpec, action_spec: ActionSpec, cfg) -> VisionMemory:
    """The ``vmc`` family from a run config (the ``vmc`` block); frames only."""
    if obs_spec.image is None:
        raise ValueError(
            f"--agent vmc sees frames, and {cfg.env} with --obs {cfg.obs} gives none: use --obs pixels "
            "(envs whose observation is an image, like CarRacing-v3 or VizDoom, give frames with --obs state)"
        )
    v = cfg.vmc
    vae = ConvVAE(obs_spec.image[-1], z=v.z, depth=v.vae_depth, kl_tolerance=v.kl_tolerance)
    rnn = MDNRNN(v.z, action_spec.dim, units=v.rnn_units, mixtures=v.mixtures, done_weight=v.done_weight)
    return VisionMemory(obs_spec, action_spec.dim, vae, rnn, temperature=v.temperature)
