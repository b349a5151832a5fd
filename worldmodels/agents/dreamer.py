"""Dreamer: a world model trained on replay, and an actor-critic trained only in imagination."""

from __future__ import annotations

import contextlib
import functools
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..behavior.actor_critic import Actor, Critic, SlowCritic, actor_critic_losses
from ..behavior.returns import ReturnScale, lambda_returns
from ..config import DreamerConfig, ModelConfig, validate_dreamer
from ..models.base import WorldModelBase
from ..registry import AgentSpec
from ..specs import ActionSpec, ObsSpec
from .base import Agent, build_world_model, check_finite, optimize


class PolicyCarry(NamedTuple):
    """What the acting policy carries between environment steps."""

    state: Any  # (B,) the world model's state after the last observation
    action: Tensor  # (B, A) the action taken after it


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on ``device`` (AMX on CPUs, tensor cores on GPUs), or nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


class Dreamer(Agent):
    """Dreamer (DreamerV3): the world model learns from replay, the actor-critic only in its
    imagination. Works with any family that gives features (``--model``), through the contract."""

    def __init__(
        self,
        world_model: WorldModelBase,
        action_spec: ActionSpec,
        *,
        units: int,
        layers: int,
        unimix: float,
        bins: int,
        model_lr: float,
        model_clip: float,
        horizon: int,
        gamma: float,
        lam: float,
        entropy: float,
        actor_lr: float,
        critic_lr: float,
        ac_clip: float,
        slow_critic_fraction: float,
        slow_critic_reg: float,
        return_decay: float,
        imag_bf16: bool = False,
        model_bf16: bool = False,
    ):
        super().__init__()
        self.world_model = world_model
        self.obs_spec = world_model.obs_spec
        self.action_spec = action_spec
        feat, onehot = world_model.feature_size, world_model.feature_onehot
        self.actor = Actor(
            feat, action_spec.dim, action_spec.discrete, units=units, layers=layers, unimix=unimix, onehot=onehot
        )
        self.critic = Critic(feat, units=units, layers=layers, bins=bins, onehot=onehot)
        self.slow_critic = SlowCritic(self.critic)
        self.return_scale = ReturnScale(decay=return_decay)
        self.horizon, self.gamma, self.lam, self.entropy = horizon, gamma, lam, entropy
        self.model_clip, self.ac_clip = model_clip, ac_clip
        self.slow_fraction, self.slow_reg = slow_critic_fraction, slow_critic_reg
        self.imag_bf16, self.model_bf16 = imag_bf16, model_bf16
        self._replay_shape = (16, 32)
        self.optimizers = {
            "model": torch.optim.Adam(world_model.parameters(), lr=model_lr, eps=1e-8),
            "actor": torch.optim.Adam(self.actor.parameters(), lr=actor_lr, eps=1e-5),
            "critic": torch.optim.Adam(self.critic.parameters(), lr=critic_lr, eps=1e-5),
        }

    # ---------------------------------------------------------- trainer API
    def configure_replay(self, batch: int, seq_len: int) -> None:
        self._replay_shape = (batch, seq_len)

    @property
    def replay_shape(self) -> tuple[int, int]:
        """Sequences the trainer samples per update: ``(batch, seq_len)``."""
        return self._replay_shape

    def parameter_counts(self) -> dict[str, int]:
        def count(m: nn.Module) -> int:
            return sum(p.numel() for p in m.parameters())

        return {"world_model": count(self.world_model), "actor": count(self.actor), "critic": count(self.critic)}

    def describe(self) -> str:
        counts = self.parameter_counts()
        return (
            f"{self.world_model.describe()}; parameters: world model "
            f"{counts['world_model']:,}, actor {counts['actor']:,}, critic {counts['critic']:,}"
        )

    # ---------------------------------------------------------------- acting
    def initial_carry(self, batch: int) -> PolicyCarry:
        p = next(self.parameters())
        return PolicyCarry(self.world_model.initial(batch), p.new_zeros(batch, self.action_spec.dim))

    @torch.no_grad()
    def act(
        self, obs: dict[str, Tensor], is_first: Tensor, carry: PolicyCarry | None = None, mode: bool = False
    ) -> tuple[Tensor, PolicyCarry]:
        """One environment step for a batch: ``obs (B, ...)``, ``is_first (B,)`` -> action ``(B, A)``."""
        post = self.posterior(obs, is_first, carry)
        action = self.actor.act(self.world_model.features(post), mode=mode)
        return action, PolicyCarry(post, action)

    def posterior(self, obs: dict[str, Tensor], is_first: Tensor, carry) -> Any:
        """The latent state ``(B,)`` after this step's observation, filtered from the carry
        (anything with ``state`` and ``action``, e.g. :class:`PolicyCarry`)."""
        carry = self.initial_carry(is_first.shape[0]) if carry is None else carry
        obs_t = {k: v.unsqueeze(1) for k, v in obs.items()}
        post = self.world_model.observe(carry.state, obs_t, carry.action.unsqueeze(1), is_first.unsqueeze(1))
        return post.map(lambda x: x[:, 0])

    # -------------------------------------------------------------- training
    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One update of world model, critic and actor on a batch of ``(B, T)`` sequences."""
        self.train()
        with self._autocast(self.model_bf16):
            losses, posts, metrics = self.world_model.loss(batch)
        losses = {k: v.float() for k, v in losses.items()}
        posts = posts.map(lambda x: x.float())
        scales = self.world_model.loss_scales
        assert set(losses) == set(scales), (sorted(losses), sorted(scales))
        terms = {k: v.mean() for k, v in losses.items()}
        model_loss = sum(scales[k] * v for k, v in terms.items())
        optimize(self.optimizers["model"], model_loss, self.world_model.parameters(), clip=self.model_clip, check=terms)

        start = posts.map(lambda x: x.detach().reshape(-1, *x.shape[2:]))  # (B*T, ...)
        start_cont = 1.0 - batch["is_terminal"].reshape(-1).float()
        ac_losses, ac_metrics = self._imagination_losses(start, start_cont)
        check_finite(ac_losses)  # both, before either network changes
        optimize(self.optimizers["critic"], ac_losses["critic"], self.critic.parameters(), clip=self.ac_clip, check={})
        optimize(self.optimizers["actor"], ac_losses["actor"], self.actor.parameters(), clip=self.ac_clip, check={})
        self.slow_critic.update(self.critic, self.slow_fraction)

        out = {f"loss/{k}": v.item() for k, v in terms.items()}
        out.update({f"loss/{k}": v.item() for k, v in ac_losses.items()})
        out.update({k: float(v) for k, v in {**metrics, **ac_metrics}.items()})
        return out

    def _autocast(self, enabled: bool):
        return autocast(self.device, enabled)

    def _imagination_losses(self, start: Any, start_cont: Tensor):
        """Imagine ``horizon`` steps from every start state ``(N,)``; actor and critic losses."""
        wm = self.world_model
        with torch.no_grad(), self._autocast(self.imag_bf16):
            policy = functools.partial(self.actor.act, clip=False)
            feat, actions = wm.imagine_features(start, policy, self.horizon)  # (N, H+1, .)
            feat = feat.float()
            heads = wm.predict(feat[:, 1:], decode_obs=False)
            # Bootstrap and baseline from the slow critic, as DreamerV3 does (slowtar): steadier
            # targets than the critic that is being fitted to them.
            value = self.slow_critic(feat).mean()  # (N, H+1)
        reward, cont = heads["reward"].float(), heads["cont"].float()
        returns = lambda_returns(reward, cont, value, gamma=self.gamma, lam=self.lam)  # (N, H)
        # Weight of step k: probability the episode is still going at s_k.
        weight = torch.cumprod(torch.cat([start_cont[:, None], cont[:, :-1]], 1), 1)
        scale = self.return_scale.update(returns)
        with self._autocast(self.imag_bf16):
            return actor_critic_losses(
                actor=self.actor,
                critic=self.critic,
                slow_critic=self.slow_critic,
                feat=feat,
                action=actions.float(),
                returns=returns,
                value=value,
                weight=weight,
                scale=scale,
                entropy=self.entropy,
                slow_reg=self.slow_reg,
            )


def make_dreamer(
    obs_spec: ObsSpec,
    action_spec: ActionSpec,
    model: ModelConfig,
    agent: DreamerConfig,
    cls: type = None,
    world_model: WorldModelBase | None = None,
) -> Dreamer:
    """Build a Dreamer agent (or a subclass that only acts differently) from the config blocks;
    the world model is the RSSM of ``model`` unless one is given."""
    if world_model is None:
        from ..config import Config
        from ..models.world_model import make_rssm

        world_model = make_rssm(obs_spec, action_spec, Config(model=model, dreamer=agent))
    wm = world_model
    return (cls or Dreamer)(
        wm,
        action_spec,
        units=model.units,
        layers=model.layers,
        unimix=model.unimix,
        bins=model.bins,
        model_lr=model.lr,
        model_clip=model.grad_clip,
        horizon=agent.horizon,
        gamma=agent.gamma,
        lam=agent.lam,
        entropy=agent.entropy,
        actor_lr=agent.actor_lr,
        critic_lr=agent.critic_lr,
        ac_clip=agent.grad_clip,
        slow_critic_fraction=agent.slow_critic_fraction,
        slow_critic_reg=agent.slow_critic_reg,
        return_decay=agent.return_decay,
        imag_bf16=agent.imag_bf16,
        model_bf16=model.bf16,
    )


def build_dreamer(obs_spec: ObsSpec, action_spec: ActionSpec, cfg) -> Dreamer:
    wm = build_world_model(cfg, obs_spec, action_spec)
    agent = make_dreamer(obs_spec, action_spec, cfg.model, cfg.dreamer, world_model=wm)
    agent.configure_replay(cfg.batch, cfg.seq_len)
    return agent


SPEC = AgentSpec(build=build_dreamer, default_family="rssm", validate=validate_dreamer, plans_with="mpc")
