"""Typed configuration: dataclasses with a help string per field, and named size presets.

Only the CLI and the small ``make_*`` factories read a ``Config``; modules take keyword arguments.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class ModelConfig:
    """World-model sizes and loss scales (DreamerV3 recipe). Dimensions default to size XXS."""

    deter: int = _f(128, "GRU (deterministic) state size")
    stoch: int = _f(16, "number of categorical latent variables")
    classes: int = _f(16, "classes per categorical latent")
    units: int = _f(128, "hidden units of every MLP")
    layers: int = _f(1, "hidden layers of every MLP")
    cnn_depth: int = _f(16, "channels of the first conv layer (doubles per stage)")
    image_size: int = _f(64, "side of the square image the CNN sees")
    unimix: float = _f(0.01, "uniform mixture on categorical probabilities")
    free_nats: float = _f(1.0, "free bits: KL below this is not penalised")
    kl_dyn: float = _f(0.5, "scale of KL(sg(post) || prior)")
    kl_rep: float = _f(0.1, "scale of KL(post || sg(prior))")
    bins: int = _f(255, "two-hot bins of reward and critic heads")
    lr: float = _f(3e-4, "world-model learning rate (DreamerV3: 1e-4)")
    bf16: bool = _f(False, "world-model update under bfloat16 autocast (1.7x on pixels; losses in fp32)")
    grad_clip: float = _f(1000.0, "world-model gradient norm clip")


@dataclass
class AgentConfig:
    """Actor-critic learning in imagination."""

    horizon: int = _f(15, "imagination horizon")
    gamma: float = _f(0.997, "discount (1 - 1/333)")
    lam: float = _f(0.95, "lambda of lambda-returns")
    entropy: float = _f(3e-4, "actor entropy regulariser scale")
    actor_lr: float = _f(1e-4, "actor learning rate (DreamerV3: 3e-5)")
    critic_lr: float = _f(1e-4, "critic learning rate (DreamerV3: 3e-5)")
    grad_clip: float = _f(100.0, "actor and critic gradient norm clip")
    slow_critic_fraction: float = _f(0.02, "EMA fraction of the slow critic per update")
    slow_critic_reg: float = _f(1.0, "scale of the pull towards the slow critic")
    return_decay: float = _f(0.99, "EMA decay of the 5-95 percentile return range")
    imag_bf16: bool = _f(True, "imagination and actor-critic updates under bfloat16 autocast")
    sparse_imagination: bool = _f(True, "imagine with class indices and gather-based heads (exact; off: dense)")


@dataclass
class Config:
    """Everything a run needs; stored as ``config.json`` in the run folder."""

    env: str = _f("CartPole-v1", "gymnasium id, or dmc:domain-task for dm_control")
    obs: str = _f("state", "observations the agent sees: state | pixels | both")
    size: str = _f("XXS", "model size preset: XXS | XS | S | M | L (sets model dims)")
    steps: int = _f(10_000, "environment steps to train for")
    seed: int = _f(0, "random seed")
    logdir: str = _f("runs/default", "run folder: replay, checkpoints, metrics, videos")
    envs: int = _f(1, "parallel environments (more than 1 runs them in worker processes)")
    action_repeat: int = _f(1, "repeat each action this many env steps (rewards summed)")
    batch: int = _f(16, "sequences per training batch")
    seq_len: int = _f(32, "length of each training sequence (DreamerV3: 64)")
    train_ratio: float = _f(256.0, "replayed steps per policy step (DreamerV3: 512)")
    prefill: int = _f(1000, "random-policy steps collected before training")
    capacity: int = _f(1_000_000, "replay capacity in steps (oldest evicted first)")
    chunk: int = _f(256, "steps per on-disk replay chunk")
    eval_every: int = _f(2500, "environment steps between evaluations")
    eval_episodes: int = _f(5, "episodes per evaluation")
    log_every: int = _f(500, "environment steps between metric lines")
    checkpoint_every: int = _f(5000, "environment steps between checkpoints")
    deterministic: bool = _f(False, "deterministic torch kernels (slower)")
    threads: int = _f(0, "torch threads (0: all cores, 1 when env workers run)")
    max_episode_steps: int = _f(0, "cut episodes at this length (0: env default)")
    model: ModelConfig = field(default_factory=ModelConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)

    @classmethod
    def sized(cls, size: str = "XXS", **overrides: Any) -> Config:
        """A config with the named size preset's model dimensions, e.g. ``Config.sized("S", env=...)``."""
        model = apply_size(overrides.pop("model", ModelConfig()), size)
        return cls(size=size, model=model, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        data = dict(data)
        model = ModelConfig(**data.pop("model", {}))
        agent = AgentConfig(**data.pop("agent", {}))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data, model=model, agent=agent)


# DreamerV3's size blocks (v1 config names xsmall..large): GRU size, MLP width, CNN depth, layers,
# with its 32x32 latent. XXS is ours: small enough to learn CartPole in minutes on 2 CPU cores.
SIZES: dict[str, dict[str, int]] = {
    "XXS": dict(deter=128, units=128, cnn_depth=16, layers=1, stoch=16, classes=16),
    "XS": dict(deter=256, units=256, cnn_depth=24, layers=1, stoch=32, classes=32),
    "S": dict(deter=512, units=512, cnn_depth=32, layers=2, stoch=32, classes=32),
    "M": dict(deter=1024, units=640, cnn_depth=48, layers=3, stoch=32, classes=32),
    "L": dict(deter=2048, units=768, cnn_depth=64, layers=4, stoch=32, classes=32),
}

OBS_MODES = ("state", "pixels", "both")


def apply_size(model: ModelConfig, size: str) -> ModelConfig:
    """Return ``model`` with the named preset's dimensions."""
    if size not in SIZES:
        raise ValueError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    return dataclasses.replace(model, **SIZES[size])


def validate(cfg: Config) -> None:
    """Reject settings that cannot work, saying what fits."""
    if cfg.obs not in OBS_MODES:
        raise ValueError(f"--obs must be one of {', '.join(OBS_MODES)}, got {cfg.obs!r}")
    if cfg.size not in SIZES:
        raise ValueError(f"--size must be one of {', '.join(SIZES)}, got {cfg.size!r}")
    if cfg.chunk < 1 or cfg.batch < 1 or cfg.seq_len < 2:
        raise ValueError("--chunk and --batch must be >= 1 and --seq-len >= 2")
    if cfg.capacity < cfg.seq_len * cfg.envs:
        raise ValueError(
            f"--capacity {cfg.capacity} cannot hold one sequence of {cfg.seq_len} steps per env "
            f"({cfg.envs} envs); raise it to at least {cfg.seq_len * cfg.envs}"
        )
    if cfg.envs < 1 or cfg.action_repeat < 1:
        raise ValueError("--envs and --action-repeat must be >= 1")
