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
from torch import Tensor

from ..config import Config, validate_vmc
from ..models.mdnrnn import MDNRNN, Memory
from ..models.vae import ConvVAE
from ..models.vision_memory import VisionMemory
from ..registry import AgentSpec
from ..specs import IMAGE, ActionSpec, ObsSpec
from .base import Agent, build_world_model


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


class VMC(Agent):
    """V and M (the ``vmc`` family) and a controller evolved by CMA-ES. The staged pipeline of
    ``vmc/stages.py`` trains it; :meth:`train_step` is not how it learns."""

    def __init__(self, world_model: VisionMemory, action_spec: ActionSpec, *, hidden: int = 0, cell: bool = False):
        super().__init__()
        self.obs_spec, self.action_spec = world_model.obs_spec, action_spec
        self.world_model, self.cell = world_model, cell
        self.optimizers = {}
        self.shape = ControllerShape(feature_size(self.vae.z, self.mdnrnn.units, cell), hidden, action_spec.dim)
        self.register_buffer("controller", torch.zeros(self.shape.size))
        # Checkpoints written before V and M sat behind the world-model contract named them vae.*, mdnrnn.*.
        self._register_load_state_dict_pre_hook(_old_keys)

    @property
    def vae(self) -> ConvVAE:
        return self.world_model.vae

    @property
    def mdnrnn(self) -> MDNRNN:
        return self.world_model.mdnrnn

    @property
    def replay_shape(self) -> tuple[int, int]:
        raise TypeError("the V/M/C stages sample their own batches (frames for V, latent sequences for M)")

    def train_step(self, batch):
        raise TypeError("the V/M/C agent trains in stages (wm train --agent vmc), not by train_step")

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


def _old_keys(state_dict, prefix, *args) -> None:
    for key in [k for k in state_dict if k.startswith((prefix + "vae.", prefix + "mdnrnn."))]:
        state_dict[prefix + "world_model." + key[len(prefix) :]] = state_dict.pop(key)


def make_vmc(obs_spec: ObsSpec, action_spec: ActionSpec, cfg: Config) -> VMC:
    wm = build_world_model(cfg, obs_spec, action_spec)
    return VMC(wm, action_spec, hidden=cfg.vmc.controller_hidden, cell=cfg.vmc.controller_cell)


SPEC = AgentSpec(
    build=make_vmc,
    default_family="vmc",
    families=("vmc",),
    validate=validate_vmc,
    train="worldmodels.vmc.stages:train_vmc",
    curve="stages",
    no_plan="its controller acts without planning",
    obs_label="frames",
)
