"""The V/M/C agent (Ha & Schmidhuber 2018): VAE (vision), MDN-RNN (memory), linear controller.

The controller sees ``[z_t, h_t]`` (optionally also the LSTM cell ``c_t``), where ``h_t`` is the
memory before ``z_t`` arrives, and outputs the action; the MDN-RNN then takes ``(z_t, a_t)``.
Its parameters are one flat vector, so CMA-ES can evolve them and a whole population can act
at once (:func:`controller_act` takes a batch of parameter vectors).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Config
from ..models.mdnrnn import MDNRNN, Memory
from ..models.vae import ConvVAE
from ..specs import IMAGE, ActionSpec, ObsSpec


class ControllerShape(NamedTuple):
    inp: int
    hidden: int  # 0: linear
    out: int

    @property
    def size(self) -> int:
        if self.hidden == 0:
            return (self.inp + 1) * self.out
        return (self.inp + 1) * self.hidden + (self.hidden + 1) * self.out


def controller_act(shape: ControllerShape, params: Tensor, features: Tensor, discrete: bool) -> Tensor:
    """Actions ``(P, R, A)`` of ``P`` controllers ``params (P, size)`` on ``features (P, R, inp)``.

    Continuous actions are ``tanh`` of the outputs; discrete ones the one-hot of the largest.
    """
    p = params.shape[0]
    x = features

    def layer(offset: int, inp: int, out: int, h: Tensor) -> tuple[Tensor, int]:
        w = params[:, offset : offset + inp * out].reshape(p, inp, out)
        b = params[:, offset + inp * out : offset + (inp + 1) * out].reshape(p, 1, out)
        return torch.baddbmm(b, h, w), offset + (inp + 1) * out

    offset = 0
    if shape.hidden:
        x, offset = layer(offset, shape.inp, shape.hidden, x)
        x = torch.tanh(x)
    y, _ = layer(offset, shape.hidden or shape.inp, shape.out, x)
    if discrete:
        return F.one_hot(y.argmax(-1), shape.out).to(features.dtype)
    return torch.tanh(y)


def feature_size(z: int, units: int, cell: bool) -> int:
    """Width of what the controller sees: ``[z, h]``, or ``[z, h, c]`` with ``cell``."""
    return z + units * (2 if cell else 1)


def controller_features(z: Tensor, memory: Memory, cell: bool) -> Tensor:
    """``[z, h]`` (or ``[z, h, c]``) for ``(B, z)`` latents and an LSTM memory of ``(1, B, units)``."""
    h, c = memory
    return torch.cat([z, h[0], c[0]] if cell else [z, h[0]], -1)


class VMCCarry(NamedTuple):
    memory: Memory  # (h, c), each (1, B, units)


class VMC(nn.Module):
    def __init__(
        self,
        obs_spec: ObsSpec,
        action_spec: ActionSpec,
        *,
        vae: ConvVAE,
        mdnrnn: MDNRNN,
        hidden: int = 0,
        cell: bool = False,
    ):
        super().__init__()
        self.obs_spec, self.action_spec = obs_spec, action_spec
        self.vae, self.mdnrnn, self.cell = vae, mdnrnn, cell
        self.shape = ControllerShape(feature_size(vae.z, mdnrnn.units, cell), hidden, action_spec.dim)
        self.register_buffer("controller", torch.zeros(self.shape.size))

    def describe(self) -> str:
        c = self.parameter_counts()
        return (
            f"V/M/C: VAE z={self.vae.z} ({c['vae']:,} parameters), MDN-RNN {self.mdnrnn.units} units x "
            f"{self.mdnrnn.mixtures} Gaussians ({c['mdnrnn']:,}), controller ({c['controller']:,})"
        )

    def parameter_counts(self) -> dict[str, int]:
        return {
            "vae": sum(p.numel() for p in self.vae.parameters()),
            "mdnrnn": sum(p.numel() for p in self.mdnrnn.parameters()),
            "controller": self.shape.size,
        }

    @torch.no_grad()
    def act(
        self, obs: dict[str, Tensor], is_first: Tensor, carry: VMCCarry | None = None, mode: bool = True
    ) -> tuple[Tensor, VMCCarry]:
        """One env step for a batch: encode the frame, act on ``[z, h]``, advance the memory.
        The controller is deterministic, so ``mode`` changes nothing."""
        self.eval()
        n = is_first.shape[0]
        memory = self.mdnrnn.initial(n) if carry is None else carry.memory
        keep = (~is_first.bool()).float()[None, :, None]
        memory = (memory[0] * keep, memory[1] * keep)
        z = self.vae.encode(obs[IMAGE]).mean
        feats = controller_features(z, memory, self.cell)
        action = controller_act(self.shape, self.controller[None], feats[None], self.action_spec.discrete)[0]
        _, memory = self.mdnrnn.step(z, action, memory)
        return action, VMCCarry(memory)


def make_vmc(obs_spec: ObsSpec, action_spec: ActionSpec, cfg: Config) -> VMC:
    if obs_spec.image is None:
        raise ValueError(
            f"--agent vmc sees frames, and {cfg.env} with --obs {cfg.obs} gives none: use --obs pixels "
            "(envs whose observation is an image, like CarRacing-v3 or VizDoom, give frames with --obs state)"
        )
    v = cfg.vmc
    vae = ConvVAE(obs_spec.image[-1], z=v.z, depth=v.vae_depth, kl_tolerance=v.kl_tolerance)
    rnn = MDNRNN(v.z, action_spec.dim, units=v.rnn_units, mixtures=v.mixtures, done_weight=v.done_weight)
    return VMC(obs_spec, action_spec, vae=vae, mdnrnn=rnn, hidden=v.controller_hidden, cell=v.controller_cell)
