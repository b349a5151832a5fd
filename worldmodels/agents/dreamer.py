"""Dreamer: a world model trained on replay, and an actor-critic trained only in imagination."""

from __future__ import annotations

import contextlib
import functools
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ..behavior.actor_critic import Actor, CostTerms, Critic, SlowCritic, actor_critic_losses
from ..behavior.constraints import PIDLagrangian, episode_cost
from ..behavior.returns import ReturnScale, lambda_returns, replay_lambda_returns
from ..config import NO_COST_LIMIT, OFFLINE_PENALTY, DreamerConfig, ModelConfig, validate_dreamer
from ..errors import RunConfigError
from ..models.base import DISAGREES, WorldModelBase
from ..nn.layers import time_slice
from ..nn.optim import make_optimizer
from ..registry import AgentSpec
from ..specs import COST, DOMAIN, ActionSpec, ObsSpec
from .base import (
    Agent,
    build_adversary,
    build_world_model,
    check_finite,
    clip_gradients,
    require_cost_horizon,
    require_costs,
)


class PolicyCarry(NamedTuple):
    """What the acting policy carries between environment steps."""

    state: Any  # (B,) the world model's state after the last observation
    action: Tensor  # (B, A) the action taken after it


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on ``device`` where it computes bfloat16 natively (AMX or AVX512-BF16 on
    CPUs, tensor cores on GPUs), or nothing: elsewhere bfloat16 is emulated, and an AVX2-only CPU
    takes ~4x longer per Dreamer update with it than without (docs/BENCHMARKS.md)."""
    if enabled and bf16_native(device.type):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@functools.cache
def bf16_native(device_type: str) -> bool:
    """Whether ``device_type`` ("cpu", "cuda") has bfloat16 arithmetic in hardware."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device_type != "cpu":
        return True  # another accelerator: trust the flag
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:  # not Linux: take the flag at its word
        return True
    return "amx_bf16" in flags or "avx512_bf16" in flags


class Dreamer(Agent):
    """Dreamer (DreamerV3): the world model learns from replay, the actor-critic only in its
    imagination. Works with any family that gives features (``--model``), through the contract.

    One update: the world-model loss on a replay batch, then the actor and critic losses on
    ``horizon``-step rollouts imagined from every replayed state (and, with ``replay_value``, the
    replay value loss: the critic fits lambda-returns along the replayed sequences, its gradient
    reaching the world model, all terms then backpropagated together as the published DreamerV3
    does); each of the three parameter sets is clipped and stepped by its own optimiser.
    docs/DESIGN.md lists both DreamerV3 versions and where the defaults depart from them.
    """

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
        optimizer: str = "adam",
        agc: float = 0.0,
        warmup: int = 0,
        laprop_eps: float = 1e-20,
        slow_targets: bool = True,
        replay_value: float = 0.0,
        replay_value_grad: bool = True,
        actor_grad: str = "reinforce",
        actor_grad_mix: float = 0.5,
        imag_bf16: bool = False,
        model_bf16: bool = False,
        adversary: nn.Module | None = None,
        penalty: float = 0.0,
        cost_limit: float | None = None,
        cost_horizon: int = 0,
        lagrange: dict[str, float] | None = None,
        risky_starts: float = 0.0,
    ):
        super().__init__()
        self.world_model = world_model
        if penalty > 0 and DISAGREES not in world_model.capabilities:
            raise RunConfigError(
                f"--penalty subtracts the world model's epistemic uncertainty from imagined rewards; "
                f"{type(world_model).__name__} does not measure it (no disagreement()). The rssm family does "
                "(its --model.prior-heads prior heads); or train with --penalty 0"
            )
        self.penalty = penalty  # offline: imagined rewards are r - penalty * disagreement
        # --invariant-encoder: a domain classifier behind gradient reversal, stepped with the model.
        self.adversary = adversary
        self.obs_spec = world_model.obs_spec
        self.action_spec = action_spec
        feat, onehot = world_model.feature_size, world_model.feature_onehot
        self.actor = Actor(
            feat, action_spec.dim, action_spec.discrete, units=units, layers=layers, unimix=unimix, onehot=onehot
        )
        self.critic = Critic(feat, units=units, layers=layers, bins=bins, onehot=onehot)
        self.slow_critic = SlowCritic(self.critic)
        self.return_scale = ReturnScale(decay=return_decay)
        # Constrained learning (--cost-limit): a cost critic and a Lagrange multiplier that holds
        # the imagined cost per episode under the limit (behavior/constraints.py).
        self.cost_limit, self.cost_horizon = cost_limit, cost_horizon
        if risky_starts:
            require_costs(world_model, "--dreamer.risky-starts draws imagined starts where the model predicts cost")
        self.risky_starts = risky_starts
        if cost_limit is not None:
            require_costs(world_model, "--cost-limit trains the actor against the world model's predicted costs")
            require_cost_horizon(cost_horizon)
            self.cost_critic = Critic(feat, units=units, layers=layers, bins=bins, onehot=onehot)
            self.slow_cost_critic = SlowCritic(self.cost_critic)
            self.cost_scale = ReturnScale(decay=return_decay)
            gains = lagrange or {}
            self.lagrangian = PIDLagrangian(
                cost_limit,
                kp=gains.get("kp", 0.1),
                ki=gains.get("ki", 0.01),
                kd=gains.get("kd", 0.0),
                ceiling=gains.get("ceiling", 100.0),
            )
        self.horizon, self.gamma, self.lam, self.entropy = horizon, gamma, lam, entropy
        self.clips = {"model": model_clip, "actor": ac_clip, "critic": ac_clip}
        if cost_limit is not None:
            self.clips["cost_critic"] = ac_clip
        self.agc = agc
        self.slow_fraction, self.slow_reg, self.slow_targets = slow_critic_fraction, slow_critic_reg, slow_targets
        self.replay_value, self.replay_value_grad = replay_value, replay_value_grad
        if actor_grad not in ("reinforce", "dynamics", "mix"):
            raise ValueError(f"--dreamer.actor-grad must be reinforce, dynamics or mix, got {actor_grad!r}")
        # Share of REINFORCE in the actor's objective; the rest backpropagates the return.
        self.reinforce = {"reinforce": 1.0, "dynamics": 0.0, "mix": actor_grad_mix}[actor_grad]
        self.imag_bf16, self.model_bf16 = imag_bf16, model_bf16
        self._replay_shape = (16, 32)
        # Adam keeps the epsilons of DreamerV3's first version; LaProp takes its own (1e-20).
        eps = (
            {"model": 1e-8, "actor": 1e-5, "critic": 1e-5, "cost_critic": 1e-5}
            if optimizer == "adam"
            else dict.fromkeys(self.clips, laprop_eps)
        )
        lrs = {"model": model_lr, "actor": actor_lr, "critic": critic_lr, "cost_critic": critic_lr}
        self.optimizers = {
            name: make_optimizer(optimizer, self._params(name), lr=lrs[name], eps=eps[name], warmup=warmup)
            for name in self.clips
        }

    @property
    def constrained(self) -> bool:
        """Whether the actor learns under a cost limit."""
        return self.cost_limit is not None

    def _params(self, name: str) -> list[nn.Parameter]:
        modules = {"model": self.world_model, "actor": self.actor, "critic": self.critic}
        module = self.cost_critic if name == "cost_critic" else modules[name]
        extra = self.adversary.parameters() if name == "model" and self.adversary is not None else ()
        return [*module.parameters(), *extra]

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

    predicts_return = True

    @torch.no_grad()
    def predicted_return(self, carry: PolicyCarry, outcomes: list[tuple[dict, float, bool]]) -> Tensor:
        """For each candidate ``(observation, reward, terminated)`` of this step, ``(K,)``: its
        reward plus, unless it ends the episode, the discounted lambda-return imagined
        (``horizon`` steps under the actor, the critic beyond) from the latent state after
        observing it, filtered from ``carry`` (one env)."""
        observations = [o for o, _, _ in outcomes]
        count = len(observations)
        obs = {k: torch.as_tensor(np.stack([o[k] for o in observations])).to(self.device) for k in self.obs_spec.keys()}
        state = carry.state.map(lambda x: x.expand(count, *x.shape[1:]))
        start = PolicyCarry(state, carry.action.expand(count, -1))
        post = self.posterior(obs, torch.zeros(count, dtype=torch.bool, device=self.device), start)
        wm = self.world_model
        feat, _ = wm.imagine_features(post, functools.partial(self.actor.act, clip=False), self.horizon)
        heads = wm.predict(feat[:, 1:], decode_obs=False)
        value = self._target_critic()(feat).mean()
        returns = lambda_returns(
            heads["reward"].float(), heads["cont"].float(), value.float(), gamma=self.gamma, lam=self.lam
        )
        reward = torch.tensor([r for _, r, _ in outcomes], device=self.device)
        goes_on = torch.tensor([0.0 if t else 1.0 for _, _, t in outcomes], device=self.device)
        return reward + self.gamma * goes_on * returns[:, 0]

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
        metrics = dict(metrics)
        losses = {k: v.float() for k, v in losses.items()}
        posts = posts.map(lambda x: x.float())
        scales = self.world_model.loss_scales
        assert set(losses) == set(scales), (sorted(losses), sorted(scales))
        terms = {k: v.mean() for k, v in losses.items()}
        model_loss = sum(scales[k] * v for k, v in terms.items())
        if self.adversary is not None:
            with self._autocast(self.model_bf16):
                embed = self.world_model.embed({k: batch[k] for k in self.obs_spec.keys()})
            terms["domain"], metrics["domain/adversary_acc"] = self.adversary.loss(embed, batch[DOMAIN])
            model_loss = model_loss + terms["domain"]  # the reversal inside turns it against the encoder

        B, T = batch["is_first"].shape
        norms: dict[str, Tensor] = {}
        # Without a replay value loss reaching the world model, its step comes first and the actor
        # and critic imagine in the updated model (DreamerV3's first version); with it, all terms
        # share one backward pass through the model as it was (the published update).
        joint = self.replay_value > 0 and self.replay_value_grad
        if not joint:
            check_finite(terms)
            self._step(["model"], model_loss, norms)
        start = posts.map(lambda x: x.detach().reshape(-1, *x.shape[2:]))  # (B*T, ...)
        start_cont = 1.0 - batch["is_terminal"].reshape(-1).float()
        ac_losses, ac_metrics, first_return = self._imagination_losses(
            *self._with_risky_starts(start, start_cont), replayed=B * T
        )
        first_return = first_return[: B * T]  # the replayed starts' own (risky extra starts follow them)
        if self.replay_value > 0:
            replay_posts = posts if joint else posts.map(lambda x: x.detach())
            replay_loss = self._replay_value_loss(replay_posts, batch, first_return.reshape(B, T))
            ac_losses["replay_value"] = replay_loss
            ac_losses["critic"] = ac_losses["critic"] + self.replay_value * replay_loss
        check_finite({**terms, **ac_losses} if joint else ac_losses)  # before the networks change
        names = ["model", "critic", "actor"] if joint else ["critic", "actor"]
        loss = ac_losses["critic"] + ac_losses["actor"] + (model_loss if joint else 0.0)
        if self.constrained:
            names.append("cost_critic")
            loss = loss + ac_losses["cost_critic"]
        self._step(names, loss, norms)
        self.slow_critic.update(self.critic, self.slow_fraction)
        if self.constrained:
            self.slow_cost_critic.update(self.cost_critic, self.slow_fraction)

        out = {f"loss/{k}": v.item() for k, v in terms.items()}
        out.update({f"loss/{k}": v.item() for k, v in ac_losses.items()})
        out.update({f"grad_norm/{k}": float(v) for k, v in norms.items()})
        out.update({k: float(v) for k, v in {**metrics, **ac_metrics}.items()})
        return out

    def _step(self, names: list[str], loss: Tensor, norms: dict[str, Tensor]) -> None:
        """Backpropagate ``loss`` once, then clip and step each named parameter set."""
        for name in names:
            self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        for name in names:
            norms[name] = clip_gradients(self._params(name), clip=self.clips[name], agc=self.agc)
            self.optimizers[name].step()

    def _autocast(self, enabled: bool):
        return autocast(self.device, enabled)

    def _full(self, x):
        """Back to float32 after bfloat16 imagination (other dtypes, e.g. float64 in tests, stay)."""
        return x.float() if self.imag_bf16 else x

    def _target_critic(self) -> nn.Module:
        """What bootstraps the returns and gives the baseline: the slow critic or the critic."""
        return self.slow_critic if self.slow_targets else self.critic

    def _imagination_losses(self, start: Any, start_cont: Tensor, replayed: int | None = None):
        """Imagine ``horizon`` steps from every start state ``(N,)``: actor and critic losses, their
        diagnostics, and the imagined return from each start ``(N,)`` (the replay value loss's
        bootstrap). The first ``replayed`` starts are the replayed states (the rest: risky starts):
        the return scales and the measured cost per episode come from them alone, so extra starts
        drawn where cost is likely do not make the policy look costlier than it is."""
        wm = self.world_model
        if self.reinforce == 1.0:  # the score function needs no gradient through the rollout
            with torch.no_grad(), self._autocast(self.imag_bf16):
                policy = functools.partial(self.actor.act, clip=False)
                feat, actions = wm.imagine_features(start, policy, self.horizon)  # (N, H+1, .)
                feat = self._full(feat)
                heads = wm.predict(feat[:, 1:], decode_obs=False)
                value = self._target_critic()(feat).mean()  # (N, H+1)
                cost_value = self._target_cost_critic()(feat).mean() if self.constrained else None
        else:
            # The return's gradient flows through the rollout into the actor only: the world model and
            # the critic are held fixed while it is built (their gradients come from their own losses).
            held = (self.cost_critic,) if self.constrained else ()
            with frozen(wm, self.critic, *held), self._autocast(self.imag_bf16):
                feat, actions = wm.imagine_features(start, self.actor.rsample, self.horizon, differentiable=True)
                feat = self._full(feat)
                heads = wm.predict(feat[:, 1:], decode_obs=False)
                value = self._target_critic()(feat).mean()
                cost_value = self._target_cost_critic()(feat).mean() if self.constrained else None
        reward, cont, value = self._full(heads["reward"]), self._full(heads["cont"]), self._full(value)
        reward, doubt = self.penalised(feat[:, 1:], reward)
        returns = lambda_returns(reward, cont, value, gamma=self.gamma, lam=self.lam)  # (N, H)
        # Weight of step k: probability the episode is still going at s_k.
        weight = torch.cumprod(torch.cat([start_cont[:, None], cont[:, :-1]], 1), 1).detach()
        scale = self.return_scale.update(returns[:replayed])
        cost = None
        if self.constrained:
            cost, measured = self._cost_terms(heads[COST], cont, self._full(cost_value), weight, replayed)
        with self._autocast(self.imag_bf16):
            losses, metrics = actor_critic_losses(
                actor=self.actor,
                critic=self.critic,
                slow_critic=self.slow_critic,
                feat=feat,
                action=self._full(actions),
                returns=returns,
                value=value.detach(),
                weight=weight,
                scale=scale,
                entropy=self.entropy,
                slow_reg=self.slow_reg,
                reinforce=self.reinforce,
                cost=cost,
            )
        if cost is not None:
            metrics["imag/episode_cost"] = measured
        if doubt is not None:
            metrics["imag/disagreement"] = doubt.mean()
        return losses, metrics, returns[:, 0].detach()

    def _with_risky_starts(self, start: Any, start_cont: Tensor) -> tuple[Any, Tensor]:
        """The replayed starts ``(N,)`` followed by ``risky_starts * N`` more drawn from them in
        proportion to their predicted cost: imagination then begins where failure is near as
        often as the model says it is there, and the actor learns to recover from it."""
        if not self.risky_starts:
            return start, start_cont
        wm = self.world_model
        with torch.no_grad():
            cost = wm.predict(wm.features(start), decode_obs=False)[COST].float().clamp_min(0.0)
        extra = int(round(self.risky_starts * len(cost)))
        if extra == 0 or not bool(cost.sum() > 0):
            return start, start_cont
        index = torch.multinomial(cost, extra, replacement=True)
        return start.map(lambda x: torch.cat([x, x[index]])), torch.cat([start_cont, start_cont[index]])

    def _target_cost_critic(self) -> nn.Module:
        return self.slow_cost_critic if self.slow_targets else self.cost_critic

    def _cost_terms(
        self, cost: Tensor, cont: Tensor, cost_value: Tensor, weight: Tensor, replayed: int | None
    ) -> tuple[CostTerms, Tensor]:
        """The imagined costs' lambda-returns and scale, the multiplier after this update's
        measurement of the cost per episode (from the first ``replayed`` starts), and that measure."""
        cost = self._full(cost).float().clamp_min(0.0)  # a cost is never negative; the head's mean may dip below
        returns = lambda_returns(cost, cont, cost_value, gamma=self.gamma, lam=self.lam)
        measured = episode_cost(cost[:replayed], weight[:replayed], self.cost_horizon)
        multiplier = self.lagrangian.update(measured)
        scale = self.cost_scale.update(returns[:replayed])
        return CostTerms(self.cost_critic, self.slow_cost_critic, returns, cost_value, scale, multiplier), measured

    def penalised(self, feat: Any, reward: Tensor) -> tuple[Tensor, Tensor | None]:
        """Imagined rewards less ``penalty`` times the world model's disagreement about each state
        (MOPO's ``r - lambda u``), and the disagreement; as they were without a penalty."""
        if not self.penalty:
            return reward, None
        with torch.no_grad():
            doubt = self.world_model.disagreement(feat).float()
        return reward - self.penalty * doubt, doubt

    def _replay_value_loss(self, posts: Any, batch: dict[str, Tensor], boot: Tensor) -> Tensor:
        """The critic on the replayed states ``(B, T)`` fits lambda-returns of the real rewards,
        bootstrapped at every step with the return imagined from there (``boot``), plus the pull
        towards the slow critic; rows whose target crosses an episode's end are left out."""
        feat = self.world_model.features(posts if self.replay_value_grad else posts.map(lambda x: x.detach()))
        target, valid = replay_lambda_returns(
            batch["reward"].float(), batch["is_terminal"], batch["is_first"], boot, gamma=self.gamma, lam=self.lam
        )  # (B, T-1)
        feat = time_slice(feat, slice(None, -1))
        dist = self.critic(feat)
        slow = self.slow_critic(feat).mean().detach()
        nll = -(dist.log_prob(target.detach()) + self.slow_reg * dist.log_prob(slow))
        mask = valid.float()
        return (nll * mask).sum() / mask.sum().clamp_min(1.0)


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """Parameters of ``modules`` record no gradient inside (activations still carry it)."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def make_dreamer(
    obs_spec: ObsSpec,
    action_spec: ActionSpec,
    model: ModelConfig,
    agent: DreamerConfig,
    cls: type = None,
    world_model: WorldModelBase | None = None,
    adversary: nn.Module | None = None,
    penalty: float = 0.0,
    cost_limit: float = NO_COST_LIMIT,
    cost_horizon: int = 0,
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
        optimizer=agent.optimizer,
        agc=agent.agc,
        warmup=agent.warmup,
        laprop_eps=agent.laprop_eps,
        slow_targets=agent.slow_targets,
        replay_value=agent.replay_value,
        replay_value_grad=agent.replay_value_grad,
        actor_grad=agent.actor_grad,
        actor_grad_mix=agent.actor_grad_mix,
        imag_bf16=agent.imag_bf16,
        model_bf16=model.bf16,
        adversary=adversary,
        penalty=penalty,
        cost_limit=None if cost_limit == NO_COST_LIMIT else cost_limit,
        cost_horizon=cost_horizon,
        lagrange={
            "kp": agent.lagrange_kp,
            "ki": agent.lagrange_ki,
            "kd": agent.lagrange_kd,
            "ceiling": agent.lagrange_max,
        },
        risky_starts=agent.risky_starts,
    )


def build_dreamer(obs_spec: ObsSpec, action_spec: ActionSpec, cfg) -> Dreamer:
    wm = build_world_model(cfg, obs_spec, action_spec)
    adversary = build_adversary(cfg, wm)
    agent = make_dreamer(
        obs_spec,
        action_spec,
        cfg.model,
        cfg.dreamer,
        world_model=wm,
        adversary=adversary,
        penalty=cfg.penalty,
        cost_limit=cfg.cost_limit,
        cost_horizon=cfg.cost_horizon,
    )
    agent.configure_replay(cfg.batch, cfg.seq_len)
    return agent


SPEC = AgentSpec(
    build=build_dreamer,
    default_family="rssm",
    offline_defaults={"penalty": OFFLINE_PENALTY},
    validate=validate_dreamer,
    plans_with="mpc",
)
