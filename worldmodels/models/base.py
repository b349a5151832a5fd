"""The world-model contract: what every family (RSSM, ensemble, V+M, plug-ins) offers.

Agents, ``wm dream``, ``wm plan``, checkpoints and the Python API talk to a world model only
through these verbs, so each of them is written once for every family. Shapes: ``B`` batch,
``T`` time, ``H`` imagination horizon, ``A`` action size; observations are dicts keyed by
``"image"`` (uint8 ``(..., H, W, C)``) and/or ``"vector"`` (float ``(..., D)``).

A family's *state* is its own object (a NamedTuple of tensors with the same leading dims, with a
``map(fn)`` method that applies ``fn`` to each); consumers only slice it with ``map`` and hand it
back. Time alignment follows docs/DESIGN.md: ``prev_action[:, t]`` is the action taken after
``obs[:, t-1]``, zeros where ``is_first``.

What a family cannot do it says through :attr:`WorldModelBase.capabilities`; the CLI and the
agents turn a missing capability into a clear error instead of an ``isinstance`` branch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..specs import ObsSpec

# Capabilities a family may declare.
FEATURES = "features"  # states give a feature tensor an actor-critic learns from (Dreamer, latent MPC)
DECODES = "decodes"  # predict() reconstructs observations (a dream can be watched)
UNCERTAINTY = "uncertainty"  # uncertainty() measures how much the model doubts its predictions
TEMPERATURE = "temperature"  # open_loop() samples at a temperature (V/M/C's MDN)
ENCODES = "encodes"  # embed() gives the encoder's output (a domain-invariant encoder trains it)
DISAGREES = "disagreement"  # disagreement() measures epistemic uncertainty of imagined states (offline penalty)
COSTS = "costs"  # predict() gives "cost", the cost paid on arriving at a state (obs_spec.cost: the env charges one)


class WorldModelBase(nn.Module, ABC):
    """The four verbs of docs/DESIGN.md plus what ``wm dream`` and the agents need.

    Subclasses set ``obs_spec``, ``action_dim`` and ``capabilities``.
    """

    obs_spec: ObsSpec
    action_dim: int
    capabilities: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ verbs
    @abstractmethod
    def initial(self, batch: int) -> Any:
        """The state before any observation, ``(batch,)``."""

    @abstractmethod
    def observe(self, state: Any, obs: dict[str, Tensor], prev_action: Tensor, is_first: Tensor) -> Any:
        """Filter real observations ``(B, T, ...)`` into states ``(B, T)``; ``state (B,)`` (or None:
        :meth:`initial`) is the state before step 0."""

    @abstractmethod
    def imagine(
        self, state: Any, policy_or_actions: Callable[[Any], Tensor] | Tensor, horizon: int | None = None
    ) -> tuple[Any, Tensor]:
        """Roll forward from ``state (B,)`` without the environment, under a policy
        ``state (B,) -> action (B, A)`` for ``horizon`` steps, or under actions ``(B, H, A)``.
        Returns the states after each action ``(B, H)`` and the actions ``(B, H, A)``:
        ``states[:, k]`` follows ``actions[:, k]`` applied to ``states[:, k-1]``."""

    @abstractmethod
    def features(self, states: Any) -> Any:
        """What the heads read from states ``(...)``: for families with the ``features``
        capability a tensor ``(..., F)`` (or a family-specific equivalent the actor and critic
        accept); otherwise whatever :meth:`predict` takes."""

    @abstractmethod
    def predict(self, feat: Any, decode_obs: bool = True) -> dict[str, Tensor]:
        """Decode features ``(...)``: ``reward (...)``, ``cont (...)`` (the probability the episode
        goes on), ``cost (...)`` for families with the ``costs`` capability (the cost paid on
        arriving at the state, aligned like the reward) and, with ``decode_obs``, the observations
        (images in [0, 1])."""

    @abstractmethod
    def loss(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], Any, dict[str, Tensor]]:
        """Unreduced ``(B, T)`` loss terms keyed by name on a replay batch, the states filtered on
        the way ``(B, T)``, and diagnostics. Scales of the terms: :attr:`loss_scales`."""

    @property
    def loss_scales(self) -> dict[str, float]:
        """Scale of each term :meth:`loss` returns (sum of ``scale * mean(term)`` is minimised)."""
        raise NotImplementedError(f"{type(self).__name__} does not train through loss(); its agent trains it")

    def embed(self, obs: dict[str, Tensor]) -> Tensor:
        """The encoder's output for observations ``(B, T, ...)``: ``(B, T, E)``, with gradients
        into the encoder (families with the ``encodes`` capability)."""
        raise NotImplementedError(f"{type(self).__name__} has no encoder")

    @property
    def embed_size(self) -> int:
        """Width ``E`` of :meth:`embed`."""
        raise NotImplementedError(f"{type(self).__name__} has no encoder")

    # --------------------------------------------------- what agents need of it
    @property
    def feature_size(self) -> int:
        """Width ``F`` of :meth:`features` (families with the ``features`` capability)."""
        raise NotImplementedError(f"{type(self).__name__} gives no features an actor-critic can read")

    @property
    def feature_onehot(self) -> tuple[int, int] | None:
        """``(groups, classes)`` if features end in one-hot groups (heads then read them as
        indices: see ``nn/layers.py``); ``None`` for plain tensors."""
        return None

    def imagine_features(
        self,
        start: Any,
        policy_or_actions: Callable[[Any], Tensor] | Tensor,
        horizon: int | None = None,
        *,
        differentiable: bool = False,
    ) -> tuple[Any, Tensor]:
        """:meth:`imagine` that returns only what the heads read, start included: features of
        ``s_0 .. s_H`` ``(B, H+1, ...)`` and the actions ``(B, H, A)``; a policy here maps
        features ``(B, ...)`` to actions. Families override it with their fast path (the RSSM
        carries its latent as class indices); this default goes through :meth:`imagine`.

        ``differentiable``: the features must carry gradients back to the actions (and through
        them to the policy) and to the start state: a fast path that drops them (sampled class
        indices) must not be taken. Dreamer's ``--dreamer.actor-grad dynamics`` asks for it."""
        if isinstance(policy_or_actions, Tensor):
            states, actions = self.imagine(start, policy_or_actions, horizon)
        else:
            states, actions = self.imagine(start, lambda s: policy_or_actions(self.features(s)), horizon)
        first = self.features(start.map(lambda x: x.unsqueeze(1)))
        return torch.cat([first, self.features(states)], 1), actions

    def advance(self, state: Any, action: Tensor) -> Any:
        """One deterministic model step (the most likely next state) from ``state (B,)``: what
        tree search expands. Default: one step of :meth:`imagine`."""
        states, _ = self.imagine(state, action[:, None])
        return states.map(lambda x: x[:, 0])

    # ---------------------------------------------------------- what wm dream needs
    @torch.no_grad()
    def open_loop(
        self, steps: dict[str, np.ndarray], context: int, horizon: int, *, temperature: float = 1.0
    ) -> dict[str, np.ndarray]:
        """Observe ``context`` steps of a recorded episode ``steps`` (``(T, ...)`` arrays in
        docs/DESIGN.md's alignment), then imagine up to ``horizon`` more under its actions.

        Returns, per observation key, the model's outputs for steps ``0 .. context+H-1``
        (filtered reconstructions, then predictions; images as floats in [0, 1]), where
        ``H = min(horizon, T - context)``; families may add ``std`` (predictive spread per
        step and dimension) and ``disagreement`` (per step). ``temperature`` matters only to
        families with the ``temperature`` capability."""
        device = self.device
        H = min(horizon, len(steps["reward"]) - context)
        seq = {k: torch.as_tensor(v).unsqueeze(0).to(device) for k, v in steps.items()}  # (1, T, ...)
        obs = {k: seq[k][:, :context] for k in self.obs_spec.keys()}
        action = seq["action"].float()
        prev_action = prev_actions(action)
        posts = self.observe(None, obs, prev_action[:, :context], seq["is_first"][:, :context])
        start = posts.map(lambda x: x[:, -1])
        # action[t] is taken after obs[t]: the first imagined step follows action[context-1].
        states, _ = self.imagine(start, action[:, context - 1 : context - 1 + H])
        seen, imagined = self.predict(self.features(posts)), self.predict(self.features(states))
        pred = {k: torch.cat([seen[k], imagined[k]], 1) for k in seen}
        return {k: v[0].float().cpu().numpy() for k, v in pred.items() if k in self.obs_spec.keys()}

    def describe(self) -> str:
        """One line: the family and its size."""
        return f"{type(self).__name__} ({sum(p.numel() for p in self.parameters()):,} parameters)"

    def uncertainty(self, steps: dict[str, np.ndarray]) -> np.ndarray | None:
        """One number per real transition of an episode saying how much the model doubts its
        prediction of it (``(T-1,)``), or ``None`` if the family cannot say."""
        return None

    def parts(self) -> dict[str, list[nn.Module]]:
        """The modules behind each part ``wm finetune --freeze`` can name: ``encoder`` (observations
        in), ``dynamics`` (the state's motion), ``heads`` (observations, reward and continuation
        out); a family lists the parts it has. Default: none."""
        return {}

    def disagreement(self, feat: Tensor) -> Tensor | None:
        """How much the model's own members disagree about the states of features ``(..., F)``
        (``(...)``, 0 where they agree): epistemic uncertainty, large where the data never went.
        ``None`` if the family cannot say. Offline agents subtract it from imagined rewards."""
        return None

    @property
    def device(self) -> torch.device:
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")


def unroll(
    state: Any,
    policy_or_actions: Callable[[Any], Tensor] | Tensor,
    horizon: int | None,
    step: Callable[[Any, Tensor], Any],
) -> tuple[Any, Tensor]:
    """The loop of :meth:`WorldModelBase.imagine` for families whose state is a NamedTuple of
    tensors: ``step(state (B,), action (B, A)) -> next state``, under a policy or actions
    ``(B, H, A)``; returns the states ``(B, H)`` stacked field by field and the actions."""
    given = isinstance(policy_or_actions, Tensor)
    if given:
        if policy_or_actions.dim() != 3:
            raise ValueError(f"actions must be (B, H, A), got {tuple(policy_or_actions.shape)}")
        horizon = policy_or_actions.shape[1] if horizon is None else horizon
    elif horizon is None:
        raise ValueError("imagine with a policy needs a horizon")
    states, taken = [], []
    for k in range(horizon):
        action = policy_or_actions[:, k] if given else policy_or_actions(state)
        state = step(state, action)
        states.append(state)
        taken.append(action)
    return type(state)(*(torch.stack(x, 1) for x in zip(*states))), torch.stack(taken, 1)


def as_policy(policy_or_actions: Callable | Tensor, horizon: int | None) -> tuple[Callable, int]:
    """A fast path's policy and horizon: given actions ``(B, H, A)`` become a policy that hands
    out one step of them per call (the horizon defaults to ``H``)."""
    if not isinstance(policy_or_actions, Tensor):
        return policy_or_actions, horizon
    steps = iter(policy_or_actions.unbind(1))
    return (lambda feat: next(steps)), policy_or_actions.shape[1] if horizon is None else horizon


def prev_actions(action: Tensor) -> Tensor:
    """``action (B, T, A)`` -> ``prev_action``: ``action[:, t-1]``, zeros at t=0 (docs/DESIGN.md)."""
    return torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1)
