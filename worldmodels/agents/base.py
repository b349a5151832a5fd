"""The agent contract, an agent's registry entry, and the one gradient step every agent takes.

An agent acts in an environment and learns from replay. The trainer, ``wm eval``, ``wm plan``,
``wm dream`` and checkpoints talk to it only through :class:`Agent`; what it learns with is a
world model behind the contract of ``models/base.py`` (``agent.world_model``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import NonFiniteLossError, RunConfigError
from ..models.base import COSTS
from ..nn.distributed import any_rank, average_gradients
from ..nn.optim import clip_by_agc_
from ..registry import FAMILIES, agent_spec
from ..specs import ActionSpec, ObsSpec


class Agent(nn.Module, ABC):
    """What the trainer and the report commands need of an agent.

    ``act`` is batched over envs and carries whatever the agent keeps between steps (a latent
    state, a warm-start plan) in ``carry``; ``None`` starts afresh. ``train_step`` takes a replay
    batch of ``replay_shape = (rows, length)`` sequences in docs/DESIGN.md's time alignment.
    """

    obs_spec: ObsSpec
    action_spec: ActionSpec
    optimizers: dict[str, torch.optim.Optimizer]
    world_model: nn.Module  # what it learns with, behind the contract of models/base.py

    @property
    @abstractmethod
    def replay_shape(self) -> tuple[int, int]:
        """``(rows, length)`` of the replay batch one :meth:`train_step` takes."""

    @property
    def replayed_per_update(self) -> int:
        """Replayed steps one update counts against ``--train-ratio``."""
        rows, length = self.replay_shape
        return rows * length

    @abstractmethod
    def act(
        self, obs: dict[str, Tensor], is_first: Tensor, carry: Any = None, mode: bool = False
    ) -> tuple[Tensor, Any]:
        """``obs`` ``(B, ...)``, ``is_first (B,)`` -> actions ``(B, A)`` in model space, new carry.
        ``mode``: act greedily (evaluation) instead of exploring."""

    @abstractmethod
    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One update on a replay batch; returns metrics by name."""

    @abstractmethod
    def describe(self) -> str:
        """One line: what the agent is and how large."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # Whether predicted_return is implemented (adversarial pushes need it).
    predicts_return: bool = False

    def predicted_return(self, carry: Any, outcomes: list[tuple[dict, float, bool]]) -> Tensor:
        """The return the agent expects from each of K candidate outcomes of this step
        (observation, reward, whether the episode ends) ``(K,)``, given its ``carry`` after
        choosing the step's action (one env): what an adversarial push minimises
        (envs/disturbances.py)."""
        raise NotImplementedError(f"{type(self).__name__} does not predict its return")

    def optimizer_state(self) -> dict:
        return {k: opt.state_dict() for k, opt in self.optimizers.items()}

    def load_optimizer_state(self, state: dict) -> None:
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state[k])


def build_world_model(cfg, obs_spec: ObsSpec, action_spec: ActionSpec) -> nn.Module:
    """The world model of the family ``cfg`` names (``--model``, or the agent's own)."""
    from ..models.base import WorldModelBase

    family = agent_spec(cfg.agent).check_family(cfg)
    model = FAMILIES.get(family)(obs_spec, action_spec, cfg)
    if not isinstance(model, WorldModelBase):
        raise RunConfigError(
            f"world-model family {family!r} built a {type(model).__name__}, not a WorldModelBase: a family's "
            "make(obs_spec, action_spec, cfg) must return a subclass of worldmodels.models.base.WorldModelBase"
        )
    return model


def freeze_parts(world_model: nn.Module, names: list[str]) -> int:
    """Stop training the named parts of ``world_model`` (``WorldModelBase.parts``): their
    parameters take no gradient, so no optimiser moves them (running normalisation statistics,
    which are not learned weights, still follow the data). Returns how many parameters froze; a
    part the family does not have, or freezing all of it, is a :class:`RunConfigError`."""
    parts = world_model.parts()
    missing = [n for n in names if n not in parts]
    if missing:
        has = ", ".join(parts) or "none"
        raise RunConfigError(
            f"--freeze {','.join(missing)}: the {type(world_model).__name__} world model has no such part "
            f"(its parts: {has})"
        )
    chosen = {id(p): p for name in names for module in parts[name] for p in module.parameters()}
    if all(id(p) in chosen for p in world_model.parameters()):
        raise RunConfigError(
            f"--freeze {','.join(names)} leaves nothing of the {type(world_model).__name__} world model to train "
            f"(its parts: {', '.join(parts)}); freeze fewer of them"
        )
    frozen = 0
    for param in chosen.values():
        frozen += param.numel() if param.requires_grad else 0
        param.requires_grad_(False)
    return frozen


def build_adversary(cfg, world_model: nn.Module) -> nn.Module | None:
    """The domain adversary of ``--invariant-encoder`` (models/invariance.py) for ``world_model``,
    or None without the flag; a family without an encoder, or a run with nothing randomised, is
    a :class:`RunConfigError` saying why."""
    if not cfg.invariant_encoder:
        return None
    from ..envs.domains import Domain
    from ..models.base import ENCODES
    from ..models.invariance import DomainAdversary, varied

    family = agent_spec(cfg.agent).check_family(cfg)
    if ENCODES not in world_model.capabilities:
        raise RunConfigError(
            f"--invariant-encoder trains an encoder, and the {family!r} family has none (it declares no "
            f"'{ENCODES}' capability); use a family with an encoder, such as rssm"
        )
    params = Domain.parse(cfg.randomize).params
    if not varied(params):
        raise RunConfigError(
            "--invariant-encoder makes the encoder blind to the randomised domain, and nothing is randomised: give "
            "--randomize with at least one range, e.g. --randomize 'visual.hue=-0.3:0.3'"
        )
    return DomainAdversary(world_model.embed_size, params, weight=cfg.invariant_weight, units=cfg.model.units)


# ------------------------------------------------------------------ the gradient step
def require_costs(world_model: nn.Module, needs: str) -> None:
    """``needs`` (what a setting does with costs) needs a family that predicts them (``costs``)."""
    if COSTS not in world_model.capabilities:
        raise RunConfigError(
            f"{needs}, and {type(world_model).__name__} predicts none: the env reports no cost (use one that puts "
            "info['cost'] in its steps, such as the safe: suite, or wrap it in worldmodels.envs.costs.CostWrapper), "
            "or the family has no cost head"
        )


def require_cost_horizon(horizon: int) -> None:
    """A cost limit per episode is spread over ``horizon`` agent steps, which must be set."""
    if horizon < 1:
        raise RunConfigError(
            "--cost-limit is a cost per episode, spread over --cost-horizon steps, which is 0 here: set it (a "
            "training run sets it to the env's time limit; from Python, config.with_cost_horizon(cfg, steps))"
        )


def check_finite(terms: Mapping[str, Tensor]) -> None:
    """Raise before an optimiser step if any loss term is NaN or infinite, naming it. In a
    distributed run every rank raises when any one does (else the others would wait forever in
    the next gradient all-reduce)."""
    bad = None
    for name, value in terms.items():
        v = float(value.detach())
        if not math.isfinite(v):
            bad = (name, v)
            break
    device = next(iter(terms.values())).device if terms else "cpu"
    where = any_rank(bad is not None, device)
    if where < 0:
        return
    if bad is None:
        raise NonFiniteLossError(f"a loss term is not finite on rank {where}; no parameters were updated with it.")
    name, v = bad
    raise NonFiniteLossError(
        f"loss term '{name}' is {v}; no parameters were updated with it. Lower the learning "
        "rates or check the data for NaN/inf values (rewards, observations)."
    )


def clip_gradients(parameters: Iterable[Tensor], *, clip: float | None = None, agc: float = 0.0) -> Tensor | None:
    """Average the gradients of ``parameters`` over the ranks of a distributed run (nn/distributed.py;
    nothing in one process), then clip them adaptively per tensor (``agc`` > 0, nn/optim.py) or by
    their global norm (``clip``); returns the norm before clipping (None when nothing clipped).
    Every optimiser step comes after this, so clipping always sees the global gradient."""
    parameters = list(parameters)
    average_gradients(parameters)
    if agc > 0:
        return clip_by_agc_(parameters, agc)
    if clip is not None:
        return torch.nn.utils.clip_grad_norm_(parameters, clip)
    return None


def optimize(
    optimizer: torch.optim.Optimizer,
    loss: Tensor,
    parameters: Iterable[Tensor] | None = None,
    *,
    clip: float | None = None,
    check: Mapping[str, Tensor] | None = None,
) -> None:
    """One gradient step: refuse non-finite terms (``check``, default ``{"loss": loss}``), zero the
    gradients, backpropagate, average over ranks and clip the gradient norm of ``parameters``
    (default: the optimiser's) to ``clip``, step."""
    check_finite({"loss": loss} if check is None else check)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if parameters is None:
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
    clip_gradients(parameters, clip=clip)
    optimizer.step()
