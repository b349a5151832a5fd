"""Typed configuration: dataclasses with a help string per field, and named size presets.

Only the CLI and the small ``make_*`` factories read a ``Config``; modules take keyword arguments.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from typing import Any

# Keys of a field's range in its metadata: value >= ge, > gt, <= le, < lt; pow2: a power of two.
RANGE_KEYS = ("ge", "gt", "le", "lt", "pow2")


def _f(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    pow2: bool = False,
) -> Any:
    """A config field: its default, its ``--help`` text and, for numbers, the range that works.

    The range is stored in the field's metadata (``ge``, ``gt``, ``le``, ``lt``, ``pow2``) and
    checked by :func:`check_ranges` before a run starts.
    """
    if ge is not None and gt is not None or le is not None and lt is not None:
        raise TypeError("give at most one lower bound (ge or gt) and one upper bound (le or lt)")
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt, "pow2": pow2 or None}
    return field(default=default, metadata={"help": help, **{k: v for k, v in bounds.items() if v is not None}})


# --penalty of agents that learn in imagination, for --offline runs unless given (docs/DESIGN.md,
# "Datasets and offline learning").
OFFLINE_PENALTY = 1.0
# --cost-limit's "none".
NO_COST_LIMIT = -1.0


@dataclass
class ModelConfig:
    """World-model sizes and loss scales (DreamerV3 recipe). Dimensions default to size XXS."""

    deter: int = _f(128, "GRU (deterministic) state size", ge=1)
    stoch: int = _f(16, "number of categorical latent variables", ge=1)
    classes: int = _f(16, "classes per categorical latent", ge=1)
    units: int = _f(128, "hidden units of every MLP", ge=1)
    layers: int = _f(1, "hidden layers of every MLP", ge=1)
    cnn_depth: int = _f(16, "channels of the first conv layer (doubles per stage)", ge=1)
    image_size: int = _f(64, "side of the square image the CNN sees", ge=8, pow2=True)
    unimix: float = _f(0.01, "uniform mixture on categorical probabilities", ge=0, lt=1)
    free_nats: float = _f(1.0, "free bits: KL below this is not penalised", ge=0)
    kl_dyn: float = _f(0.5, "scale of KL(sg(post) || prior)", ge=0)
    kl_rep: float = _f(0.1, "scale of KL(post || sg(prior))", ge=0)
    bins: int = _f(255, "two-hot bins of reward and critic heads", ge=2)
    lr: float = _f(3e-4, "world-model learning rate (DreamerV3: 4e-5)", gt=0)
    bf16: bool = _f(False, "world-model update under bfloat16 autocast (1.7x on pixels; losses in fp32)")
    vector_norm: bool = _f(
        False,
        "standardise each state dimension (after symlog) by its mean and spread in the data seen, for the "
        "encoder's input and the decoder's target, so that small-range dimensions are fit as closely as large",
    )
    grad_clip: float = _f(1000.0, "world-model gradient norm clip (with --dreamer.agc 0)", gt=0)
    prior_heads: int = _f(
        5, "rssm with --penalty: prior heads whose disagreement is the model's epistemic uncertainty", ge=2
    )


@dataclass
class TransformerConfig:
    """The transformer family's sequence model (--model transformer; STORM's values in brackets).

    Its latent, encoders, decoders and heads are set by the model block, as the RSSM's are."""

    dim: int = _f(128, "width of the tokens and of every attention layer [512]", ge=1)
    layers: int = _f(2, "attention blocks [2]", ge=1)
    heads: int = _f(4, "attention heads per block; --transformer.dim must be a multiple of it [8]", ge=1)
    context: int = _f(
        16,
        "steps each step attends to, itself included: the window imagination carries (at most --seq-len) [64]",
        ge=1,
    )
    dropout: float = _f(0.0, "dropout on attention weights and residual branches while training [0.1]", ge=0, lt=1)


@dataclass
class DreamerConfig:
    """Actor-critic learning in imagination (agents dreamer and mpc)."""

    horizon: int = _f(15, "imagination horizon", ge=1)
    gamma: float = _f(0.997, "discount (1 - 1/333)", gt=0, le=1)
    lam: float = _f(0.95, "lambda of lambda-returns", ge=0, le=1)
    entropy: float = _f(3e-4, "actor entropy regulariser scale", ge=0)
    actor_lr: float = _f(1e-4, "actor learning rate (DreamerV3: 4e-5)", gt=0)
    critic_lr: float = _f(1e-4, "critic learning rate (DreamerV3: 4e-5)", gt=0)
    optimizer: str = _f(
        "adam",
        "adam (DreamerV3's first version) | laprop (as published: RMS-normalised momentum; with --dreamer.agc 0.3 "
        "--dreamer.warmup 1000 --dreamer.replay-value 0.3 the published update, docs/DESIGN.md)",
    )
    agc: float = _f(
        0.0,
        "adaptive gradient clipping: each tensor's gradient norm at most agc x max(1e-3, its weight norm) "
        "(DreamerV3: 0.3; 0: clip the global norms to --model.grad-clip and --dreamer.grad-clip instead)",
        ge=0,
    )
    warmup: int = _f(0, "updates over which laprop's learning rates ramp up linearly from 0 (DreamerV3: 1000)", ge=0)
    laprop_eps: float = _f(
        1e-20, "laprop's epsilon (adam uses 1e-8 for the world model, 1e-5 for actor and critic)", gt=0
    )
    grad_clip: float = _f(100.0, "actor and critic gradient norm clip (with --dreamer.agc 0)", gt=0)
    slow_critic_fraction: float = _f(0.02, "EMA fraction of the slow critic per update", gt=0, le=1)
    slow_critic_reg: float = _f(1.0, "scale of the pull towards the slow critic", ge=0)
    slow_targets: bool = _f(
        True,
        "bootstrap returns and the baseline from the slow critic (off: from the critic, as DreamerV3; on "
        "CartPole that policy collapsed onto one action, docs/DESIGN.md)",
    )
    replay_value: float = _f(
        0.0,
        "scale of the replay value loss: the critic also fits lambda-returns along replayed sequences, "
        "bootstrapped with the imagined returns (DreamerV3: 0.3; 0: off)",
        ge=0,
    )
    replay_value_grad: bool = _f(True, "the replay value loss also trains the world model's representation (DreamerV3)")
    actor_grad: str = _f(
        "reinforce",
        "how the actor learns: reinforce (score function, DreamerV3) | dynamics (backpropagate the imagined "
        "return through the world model, Dreamer V1/V2) | mix (--dreamer.actor-grad-mix of reinforce, "
        "the rest dynamics)",
    )
    actor_grad_mix: float = _f(0.5, "share of reinforce in --dreamer.actor-grad mix", ge=0, le=1)
    lagrange_kp: float = _f(
        0.1, "--cost-limit: proportional gain of the PID Lagrange multiplier, per unit of relative violation", ge=0
    )
    lagrange_ki: float = _f(0.01, "--cost-limit: integral gain of the PID Lagrange multiplier, per update", ge=0)
    lagrange_kd: float = _f(0.0, "--cost-limit: derivative gain of the PID Lagrange multiplier", ge=0)
    lagrange_max: float = _f(100.0, "--cost-limit: the Lagrange multiplier's ceiling", gt=0)
    risky_starts: float = _f(
        0.0,
        "on an env with costs: imagine also from this many more starts (a fraction of the replayed ones) drawn in "
        "proportion to their predicted cost, so the actor practises recovering near failure in the dream",
        ge=0,
        le=1,
    )
    return_decay: float = _f(0.99, "EMA decay of the 5-95 percentile return range", ge=0, lt=1)
    imag_bf16: bool = _f(
        True,
        "imagination and actor-critic updates under bfloat16 autocast, where the hardware has bfloat16 (AMX, CUDA)",
    )
    sparse_imagination: bool = _f(True, "imagine with class indices and gather-based heads (exact; off: dense)")


# The name earlier versions used for the Dreamer block.
AgentConfig = DreamerConfig


@dataclass
class PlanConfig:
    """Planning before every action (agents pets and mpc). PETS / TD-MPC2 settings."""

    horizon: int = _f(15, "planning horizon in model steps", ge=1)
    controller: str = _f(
        "sequence",
        "what the planner optimises: sequence (open-loop actions) | linear (gains of a linear state-feedback "
        "law, rolled out closed loop: for unstable systems and long horizons; --agent pets)",
    )
    population: int = _f(500, "candidate action sequences per iteration (CEM, MPPI)", ge=2)
    iterations: int = _f(5, "refits of the sampling distribution per action (CEM, MPPI)", ge=1)
    elites: int = _f(50, "best candidates CEM refits to", ge=1)
    momentum: float = _f(0.1, "share of the old mean/std CEM keeps per iteration", ge=0, lt=1)
    temperature: float = _f(0.5, "MPPI temperature, in units of the scores' standard deviation", gt=0)
    init_std: float = _f(0.5, "initial sampling std, as a fraction of the action half-range", gt=0)
    min_std: float = _f(0.05, "floor of the sampling std, as a fraction of the action half-range", gt=0)
    particles: int = _f(1, "particles per ensemble member and candidate (trajectory sampling)", ge=1)
    objective: str = _f(
        "mean",
        "mean | risk (mean - beta*std across members) | cvar | optimistic (+beta*std) | constrained (plans whose "
        "pessimistic predicted cost fits --cost-limit first, by return; the rest by cost; the default with "
        "--cost-limit)",
    )
    cost_quantile: float = _f(
        0.9, "constrained: the quantile of the members' (or particles') predicted costs a plan is judged by", ge=0, le=1
    )
    cost_slack: float = _f(
        0.02, "constrained: predicted cost over the plan tolerated beyond its share of --cost-limit (model noise)", ge=0
    )
    cost_floor: float = _f(
        0.05, "constrained: a predicted step cost counts towards the budget only beyond this (model noise)", ge=0
    )
    beta: float = _f(1.0, "weight of the spread in the risk and optimistic objectives", ge=0)
    cvar_alpha: float = _f(0.1, "cvar: mean of this worst fraction of particle returns", gt=0, le=1)
    discount: float = _f(0.99, "discount of rewards along a plan", ge=0, le=1)
    policy_samples: int = _f(24, "mpc: candidates drawn from the actor's own rollouts (TD-MPC2)", ge=0)
    simulations: int = _f(32, "MCTS simulations per action", ge=1)
    c_puct: float = _f(1.25, "MCTS exploration constant of pUCT", ge=0)
    root_noise: float = _f(0.25, "MCTS Dirichlet noise mixed into the root prior while training", ge=0, le=1)
    dirichlet_alpha: float = _f(0.3, "MCTS Dirichlet concentration of the root noise", gt=0)
    bf16: bool = _f(False, "roll candidates out under bfloat16 autocast (2x at large populations)")


@dataclass
class EnsembleConfig:
    """Probabilistic ensemble dynamics (agent pets)."""

    members: int = _f(5, "ensemble members, each trained on its own bootstrap draws", ge=1)
    units: int = _f(64, "hidden units per member MLP (PETS: 200; 64 plans 3x faster on CPU)", ge=1)
    layers: int = _f(3, "hidden layers per member MLP", ge=1)
    lr: float = _f(1e-3, "learning rate", gt=0)
    weight_decay: float = _f(5e-5, "AdamW weight decay", ge=0)
    batch: int = _f(256, "transitions per member per update", ge=1)
    value: bool = _f(
        False,
        "learn a state value (one head per member) by TD(lambda) on replayed sequences and add it at the "
        "plan's horizon (for rewards whose cost lies beyond the horizon, e.g. survival tasks)",
    )
    value_horizon: int = _f(32, "replayed steps per value target sequence (with --ensemble.value)", ge=2)
    value_lambda: float = _f(0.95, "TD(lambda) mixing of the value targets: 0 one-step, 1 Monte Carlo", ge=0, le=1)


@dataclass
class VMCConfig:
    """The V/M/C model (agent vmc; Ha & Schmidhuber 2018). Paper values in brackets."""

    rollouts: int = _f(500, "random-policy episodes collected for V and M [10,000]", ge=1)
    collect_hold: int = _f(
        10,
        "each random action of the collect stage is held for a random 1..N steps [1-10 tics, the paper's Doom data]",
        ge=1,
    )
    z: int = _f(32, "VAE latent size [32 CarRacing, 64 Doom]", ge=1)
    vae_depth: int = _f(32, "channels of the VAE's first convolution [32]", ge=1)
    vae_steps: int = _f(10_000, "VAE gradient steps", ge=1)
    vae_batch: int = _f(100, "frames per VAE batch [100]", ge=1)
    vae_lr: float = _f(1e-4, "VAE learning rate [1e-4]", gt=0)
    kl_tolerance: float = _f(0.5, "free nats per latent dimension of the VAE's KL [0.5]", ge=0)
    rnn_units: int = _f(256, "LSTM units of the MDN-RNN [256 CarRacing, 512 Doom]", ge=1)
    mixtures: int = _f(5, "Gaussians per latent dimension [5]", ge=1)
    rnn_steps: int = _f(4_000, "MDN-RNN gradient steps", ge=1)
    rnn_batch: int = _f(100, "sequences per MDN-RNN batch [100]", ge=1)
    rnn_seq: int = _f(64, "steps per MDN-RNN training sequence", ge=2)
    rnn_lr: float = _f(1e-3, "MDN-RNN learning rate [1e-3]", gt=0)
    done_weight: float = _f(10.0, "weight of deaths in M's done loss [10]", gt=0)
    calibrate_done: bool = _f(
        False,
        "set the dream's done threshold so that a random policy lives as long in the dream as in the "
        "collected episodes (default: the paper's, done logit > 0, which transferred better on Doom)",
    )
    controller_in: str = _f("dream", "where the controller is evolved: dream (inside M) | real (the env)")
    controller_hidden: int = _f(0, "hidden units of the controller (0: linear, as in the paper)", ge=0)
    controller_cell: bool = _f(False, "controller also sees the LSTM cell c: [z, h, c] (the paper's Doom)")
    generations: int = _f(200, "CMA-ES generations", ge=1)
    population: int = _f(64, "CMA-ES population [64]", ge=2)
    rollouts_per_candidate: int = _f(16, "episodes averaged per candidate's fitness [16]", ge=1)
    sigma0: float = _f(0.1, "CMA-ES initial step size [0.1]", gt=0)
    temperature: float = _f(1.15, "dream temperature tau of the MDN [1.15 Doom]", gt=0)
    dream_max_steps: int = _f(2100, "dream episodes end after this many steps [2100 Doom]", ge=1)
    workers: int = _f(2, "worker processes evaluating candidates", ge=1)
    eval_every: int = _f(10, "generations between real-env evaluations of the controller (the CMA-ES mean)", ge=1)


VMC_STAGES = ("collect", "vae", "mdnrnn", "controller")  # in the order they run
# Training settings (not shapes) a stage restarted with `--retrain` may change, with every later stage's.
VMC_RETRAINABLE = {
    "collect": (),
    "vae": ("vae_steps", "vae_batch", "vae_lr", "kl_tolerance"),
    "mdnrnn": ("rnn_steps", "rnn_batch", "rnn_seq", "rnn_lr", "done_weight"),
    "controller": (
        "population", "rollouts_per_candidate", "sigma0", "temperature", "dream_max_steps", "calibrate_done",
    ),
}  # fmt: skip
OBJECTIVES = ("mean", "risk", "cvar", "optimistic", "constrained")
CONTROLLERS = ("sequence", "linear")
EVAL_POLICIES = ("greedy", "sampled")
OPTIMIZERS = ("laprop", "adam")
ACTOR_GRADS = ("reinforce", "dynamics", "mix")
DEVICES = ("auto", "cpu", "cuda")  # and "cuda:N"


@dataclass
class Config:
    """Everything a run needs; stored as ``config.json`` in the run folder."""

    env: str = _f(
        "CartPole-v1",
        "gymnasium id (module:Id imports the module first, as gymnasium.make does), or suite:task for a "
        "registered suite (dmc:walker-walk for dm_control)",
    )
    obs: str = _f("state", "observations the agent sees: state | pixels | both")
    size: str = _f("XXS", "model size preset: XXS | XS | S | M | L (sets model dims)")
    steps: int = _f(10_000, "environment steps to train for", ge=1)
    seed: int = _f(0, "random seed", ge=0, le=2**32 - 1)
    logdir: str = _f("runs/default", "run folder: replay, checkpoints, metrics, videos")
    envs: int = _f(1, "parallel environments (more than 1 runs them in worker processes)", ge=1)
    action_repeat: int = _f(1, "repeat each action this many env steps (rewards summed)", ge=1)
    batch: int = _f(16, "sequences per training batch", ge=1)
    seq_len: int = _f(32, "length of each training sequence (DreamerV3: 64)", ge=2)
    train_ratio: float = _f(256.0, "replayed steps per policy step (DreamerV3: 512)", gt=0)
    prefill: int = _f(1000, "random-policy steps collected before training", ge=0)
    capacity: int = _f(1_000_000, "replay capacity in steps (oldest evicted first)", ge=1)
    chunk: int = _f(256, "steps per on-disk replay chunk", ge=1)
    eval_every: int = _f(2500, "environment steps between evaluations", ge=1)
    eval_episodes: int = _f(
        10,
        "episodes per evaluation, each from a fresh start state no training episode or earlier evaluation used",
        ge=1,
    )
    eval_policy: str = _f("greedy", "how evaluations act: greedy (the policy's mode) | sampled (as in training)")
    log_every: int = _f(500, "environment steps between metric lines", ge=1)
    checkpoint_every: int = _f(5000, "environment steps between checkpoints", ge=1)
    checkpoint_minutes: float = _f(
        10.0, "minutes between checkpoints, whatever the step count (0: by --checkpoint-every only)", ge=0
    )
    deterministic: bool = _f(
        False,
        "deterministic kernels and checkpoints at episode starts: a run stopped and resumed equals one that never "
        "stopped (slower)",
    )
    threads: int = _f(0, "torch threads (0: all cores, 1 when env workers run)", ge=0)
    max_episode_steps: int = _f(0, "cut episodes at this length (0: env default)", ge=0)
    agent: str = _f(
        "dreamer",
        "dreamer (actor-critic in imagination) | pets (ensemble + planner) | mpc (RSSM + planner) | "
        "vmc (VAE + MDN-RNN + evolved controller), or a registered plug-in agent",
    )
    family: str = _f(
        "",
        "world-model family the agent learns with (flag --model): rssm, or a registered one ('': the agent's "
        "own: rssm for dreamer and mpc, ensemble for pets, vmc for vmc)",
    )
    planner: str = _f("auto", "pets and mpc: cem | mppi | mcts (auto: cem, or mcts for discrete actions)")
    device: str = _f("auto", "where models run: auto (cuda when available, else cpu) | cpu | cuda | cuda:N")
    env_kwargs: str = _f("{}", "keyword arguments for the env's constructor, as JSON: '{\"continuous\": false}'")
    randomize: str = _f(
        "",
        "domain randomisation, drawn anew every episode: NAME=LO:HI scales the nominal value (log-uniform), "
        "NAME==LO:HI sets it (uniform), comma-separated: 'masspole=0.5:2,visual.hue=-0.2:0.2', "
        "'body_mass[pole]=0.5:2' (docs/DESIGN.md, Domains)",
    )
    disturb: str = _f(
        "",
        "disturbances while training and evaluating: 'push=SIZE@PROB,action_noise=S,obs_noise=S,delay=K', and "
        "adversarial=K: each training push the worst of K for the agent, as its model predicts (docs/DESIGN.md, "
        "Domains)",
    )
    invariant_encoder: bool = _f(
        False,
        "train the encoder to be blind to the randomised domain (DANN: a domain classifier on its output behind a "
        "gradient-reversal layer); needs --randomize and a family with an encoder (dreamer, mpc)",
    )
    invariant_weight: float = _f(1.0, "scale of the reversed domain-classifier gradient in the encoder", gt=0)
    dataset: str = _f(
        "",
        "recorded episodes to learn from: an HDF5 episode file, a Minari dataset folder (or minari:NAME), or a run "
        "folder; with --offline the only data, else they seed the replay before the agent collects its own",
    )
    offline: bool = _f(
        False,
        "learn from --dataset alone, never stepping the env while training (it is made for evaluations only); "
        "--steps, --eval-every, --log-every and --checkpoint-every then count train steps",
    )
    dataset_share: float = _f(
        0.0,
        "with --dataset online: the fraction of each batch drawn from the dataset (0: in proportion to its steps)",
        ge=0,
        lt=1,
    )
    episodes: int = _f(0, "stop after this many training episodes, whatever --steps says (0: by --steps)", ge=0)
    finetune_from: str = _f(
        "",
        "the run whose weights this one starts from (wm finetune sets it; the source run is only read)",
    )
    freeze: str = _f(
        "",
        "world-model parts not trained, comma-separated: encoder, dynamics, heads (wm finetune; what each is "
        "depends on the family)",
    )
    mix: float = _f(
        0.0,
        "wm finetune: the fraction of each batch replayed from the source run's own replay, so that what it "
        "learned there is not forgotten (0: none)",
        ge=0,
        lt=1,
    )
    penalty: float = _f(
        0.0,
        "offline model-based RL's uncertainty penalty: imagined rewards become r - penalty * u, u the world "
        "model's epistemic uncertainty (rssm: the disagreement of its --model.prior-heads prior heads); dreamer "
        f"and mpc with --offline: {OFFLINE_PENALTY} unless given (pets plans against its members' spread with "
        "--plan.objective risk instead)",
        ge=0,
    )
    cost_limit: float = _f(
        NO_COST_LIMIT,
        "the most cost an episode may pay (the env's info['cost'] summed): dreamer and mpc learn under it with a "
        "Lagrange multiplier, pets and mpc plan under it (--plan.objective constrained); -1: no limit (an env that "
        "charges costs still has them recorded, predicted and reported)",
        ge=NO_COST_LIMIT,
    )
    cost_horizon: int = _f(
        0,
        "episode length --cost-limit is spread over, in agent steps (env steps / --action-repeat; its share per "
        "step is limit / horizon); 0: the env's time limit, stored once the run starts",
        ge=0,
    )
    curriculum: bool = _f(
        False,
        "with --cost-limit on a task that defines difficulty levels (the safe: suite): start at its easiest version "
        "and raise the level by --curriculum-step after every evaluation that keeps the cost within the limit",
    )
    curriculum_step: float = _f(
        0.25, "--curriculum: how far one met evaluation raises the level (0 easy, 1 the task)", gt=0, le=1
    )
    pretrain_dream: int = _f(
        0,
        "world-model and behaviour updates on the prefill data before the agent's first own action: compute "
        "spent in the dream instead of real risk",
        ge=0,
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    dreamer: DreamerConfig = field(default_factory=DreamerConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    vmc: VMCConfig = field(default_factory=VMCConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)

    @classmethod
    def sized(cls, size: str = "XXS", **overrides: Any) -> Config:
        """A config with the named size preset's model dimensions, e.g. ``Config.sized("S", env=...)``."""
        cfg = resolve({"agent": overrides.get("agent", "dreamer"), "size": size})
        model = apply_size(overrides.pop("model", ModelConfig()), size)
        transformer = overrides.pop("transformer", dataclasses.replace(TransformerConfig(), **TRANSFORMER_SIZES[size]))
        return dataclasses.replace(cfg, model=model, transformer=transformer, **overrides)

    def describe(self) -> str:
        """One line for titles and banners: env, agent, observations and (for sized families) size."""
        from .registry import agent_spec

        spec = agent_spec(self.agent)
        family = self.family or spec.default_family
        size = f", size {self.size}" if family in SIZED_FAMILIES else ""
        obs = spec.obs_label or self.obs  # V/M/C always sees the env's own frames
        named = "" if family == spec.default_family else f" with {family}"
        offline = ", offline" if self.offline else ""
        return f"{self.env} ({self.agent}{named}, {obs}{size}{offline})"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        data = dict(data)
        if isinstance(data.get("agent"), dict):  # written before planning agents existed
            data["dreamer"] = data.pop("agent")
        blocks = {name: cls(**data.pop(name, {})) for name, cls in BLOCKS.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data, **blocks)


# DreamerV3's size blocks (v1 config names xsmall..large): GRU size, MLP width, CNN depth, layers,
# with its 32x32 latent. XXS is ours: small enough to learn CartPole in minutes on 2 CPU cores.
SIZES: dict[str, dict[str, int]] = {
    "XXS": dict(deter=128, units=128, cnn_depth=16, layers=1, stoch=16, classes=16),
    "XS": dict(deter=256, units=256, cnn_depth=24, layers=1, stoch=32, classes=32),
    "S": dict(deter=512, units=512, cnn_depth=32, layers=2, stoch=32, classes=32),
    "M": dict(deter=1024, units=640, cnn_depth=48, layers=3, stoch=32, classes=32),
    "L": dict(deter=2048, units=768, cnn_depth=64, layers=4, stoch=32, classes=32),
}

# The transformer family's blocks per size: XXS and XS ours for CPU, S STORM's (2 x 512, 8 heads).
TRANSFORMER_SIZES: dict[str, dict[str, int]] = {
    "XXS": dict(dim=128, layers=2, heads=4),
    "XS": dict(dim=256, layers=2, heads=4),
    "S": dict(dim=512, layers=2, heads=8),
    "M": dict(dim=768, layers=4, heads=8),
    "L": dict(dim=1024, layers=6, heads=16),
}

OBS_MODES = ("state", "pixels", "both")
# Families whose dimensions come from the --size presets (the model block, and the transformer block).
SIZED_FAMILIES = ("rssm", "transformer")

# The nested blocks of a Config: each becomes a flag group (--model.deter, --plan.horizon, ...).
BLOCKS = {
    "model": ModelConfig,
    "dreamer": DreamerConfig,
    "plan": PlanConfig,
    "ensemble": EnsembleConfig,
    "vmc": VMCConfig,
    "transformer": TransformerConfig,
}


def apply_size(model: ModelConfig, size: str) -> ModelConfig:
    """Return ``model`` with the named preset's dimensions."""
    if size not in SIZES:
        raise ValueError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    return dataclasses.replace(model, **SIZES[size])


def resolve(given: dict[str, Any]) -> Config:
    """A fresh run's config: defaults, the agent's presets, the size preset, then ``given``.

    ``given`` is flat: ``{"env": ..., "plan.horizon": 5, "model.deter": 256}``.
    """
    from .registry import agent_spec

    spec = agent_spec(given.get("agent", "dreamer"))
    flat = {**spec.defaults, **(spec.offline_defaults if given.get("offline") else {}), **given}
    if given.get("cost_limit", NO_COST_LIMIT) != NO_COST_LIMIT and "plan.objective" not in given:
        flat["plan.objective"] = "constrained"  # planners respect the limit unless told otherwise
    cfg = dataclasses.replace(Config(), **{k: v for k, v in flat.items() if "." not in k})
    blocks = {name: getattr(cfg, name) for name in BLOCKS}
    blocks["model"] = apply_size(cfg.model, cfg.size)
    blocks["transformer"] = dataclasses.replace(cfg.transformer, **TRANSFORMER_SIZES[cfg.size])
    for name in BLOCKS:
        fields = {k[len(name) + 1 :]: v for k, v in flat.items() if k.startswith(name + ".")}
        blocks[name] = dataclasses.replace(blocks[name], **fields)
    check_logdir(cfg.logdir)  # before anything asks the file system about it
    return dataclasses.replace(cfg, **blocks)


SYMBOLS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def flag(block: str, name: str) -> str:
    """The CLI flag of field ``name`` of ``block`` ('' for the top level): ``--model.cnn-depth``."""
    return f"--{block + '.' if block else ''}{name.replace('_', '-')}"


def range_text(meta: Any) -> str:
    """What fits a field with this metadata: ``>= 1``, ``in (0, 1]``, ``a power of 2 >= 8``; '' for anything."""
    low = next((k for k in ("ge", "gt") if k in meta), None)
    high = next((k for k in ("le", "lt") if k in meta), None)
    if low and high:
        opening, closing = ("[" if low == "ge" else "("), ("]" if high == "le" else ")")
        text = f"in {opening}{meta[low]}, {meta[high]}{closing}"
    else:
        text = " ".join(f"{SYMBOLS[k]} {meta[k]}" for k in (low, high) if k)
    if meta.get("pow2"):
        return f"a power of 2 {text}".rstrip()
    return text


def in_range(value: Any, meta: Any) -> bool:
    """Whether ``value`` lies in the range of a field with this metadata (NaN never does)."""
    checks = {
        "ge": lambda bound: value >= bound,
        "gt": lambda bound: value > bound,
        "le": lambda bound: value <= bound,
        "lt": lambda bound: value < bound,
        "pow2": lambda _: value >= 1 and int(value) & (int(value) - 1) == 0,
    }
    return all(check(meta[key]) for key, check in checks.items() if key in meta)


INT64 = 2**63  # ints must fit in 64 bits: torch and numpy hold them as int64


def _shown(value: Any) -> str:
    """``repr``-like text of a value for a message, cut short when it is long."""
    text = value if isinstance(value, numbers.Number) and not isinstance(value, bool) else repr(value)
    text = str(text)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _is_infinite(value: Any) -> bool:
    try:
        return math.isinf(value)
    except OverflowError:  # an int too large for a float
        return True


def _numeric_fields(cfg: Config):
    """``(block, field, value)`` for every int and float field of ``cfg`` and of its blocks."""
    blocks = [("", cfg)] + [(name, getattr(cfg, name)) for name in BLOCKS]
    for block, obj in blocks:
        for f in dataclasses.fields(obj):
            if f.type in ("int", "float"):
                yield block, f, getattr(obj, f.name)


def check_ranges(cfg: Config) -> None:
    """Reject a number outside its field's range (the ``_f(..., ge=, gt=, le=, lt=, pow2=)`` metadata),
    naming the flag, the value and what fits."""
    for block, f, value in _numeric_fields(cfg):
        name = flag(block, f.name)
        kind = numbers.Integral if f.type == "int" else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind):
            what = "an integer" if f.type == "int" else "a number"
            raise ValueError(f"{name} must be {what} ({f.metadata.get('help', '')}), got {value!r}")
        fits, about = range_text(f.metadata), f.metadata.get("help", "")
        if f.type == "int" and not -INT64 <= value < INT64:
            raise ValueError(f"{name} must be {fits} and below 2**63 ({about}), got {_shown(value)}")
        if f.type == "float" and _is_infinite(value):
            raise ValueError(f"{name} must be a finite number {fits} ({about}), got {_shown(value)}")
        if not in_range(value, f.metadata):
            raise ValueError(f"{name} must be {fits} ({about}), got {value}")


def check_types(cfg: Config) -> None:
    """Reject a block that is not its dataclass, or a text or on/off setting of another type (numbers:
    :func:`check_ranges`)."""
    for name, cls in BLOCKS.items():
        if not isinstance(getattr(cfg, name), cls):
            raise ValueError(f"the {name} block must be a {cls.__name__}, got {_shown(getattr(cfg, name))}")
    blocks = [("", cfg)] + [(name, getattr(cfg, name)) for name in BLOCKS]
    for block, obj in blocks:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.type == "str" and not isinstance(value, str):
                raise ValueError(
                    f"{flag(block, f.name)} must be text ({f.metadata.get('help', '')}), got {_shown(value)}"
                )
            if f.type == "bool" and not isinstance(value, bool):
                raise ValueError(
                    f"{flag(block, f.name)} must be true or false ({f.metadata.get('help', '')}), got {_shown(value)}"
                )


def check_logdir(logdir: Any) -> None:
    """A ``--logdir`` the file system can take: not empty, no NUL byte, encodable, not too long.

    Whether it can be written (a file in the way, a read-only disk) is found when the run folder is
    made (``runs.write_config``)."""
    fix = "choose another --logdir, e.g. --logdir runs/cartpole"
    if not isinstance(logdir, str) or not logdir.strip():
        raise ValueError(f"--logdir must name the run folder; got {_shown(logdir)}: {fix}")
    if "\x00" in logdir:
        raise ValueError(f"--logdir {_shown(logdir)} holds a NUL character, which no file name can: {fix}")
    try:
        raw = os.fsencode(logdir)
    except UnicodeError:
        raise ValueError(
            f"--logdir {_shown(logdir)} holds characters this system cannot write in a file name: {fix}"
        ) from None
    if len(raw) >= 4096 or any(len(part) > 255 for part in raw.split(os.sep.encode())):
        raise ValueError(
            f"--logdir {_shown(logdir)} is too long for a path (at most 255 bytes per folder name and 4095 in "
            f"all): {fix}"
        )


# Settings added after runs were first stored, with the value a run stored without them trained
# with: such a run resumes, evaluates and dreams with its own recipe (Adam, slow-critic targets,
# no replay value loss), though under this version's update order and episode seeds.
ADDED_LATER: dict[str, Any] = {
    "eval_policy": "greedy",
    "randomize": "",
    "disturb": "",
    "invariant_encoder": False,
    "invariant_weight": 1.0,
    "dataset": "",
    "offline": False,
    "dataset_share": 0.0,
    "penalty": 0.0,
    "cost_limit": NO_COST_LIMIT,
    "cost_horizon": 0,
    "pretrain_dream": 0,
    "curriculum": False,
    "curriculum_step": 0.25,
    "plan.cost_quantile": 0.9,
    "plan.cost_slack": 0.02,
    "plan.cost_floor": 0.05,
    "dreamer.lagrange_kp": 0.1,
    "dreamer.lagrange_ki": 0.01,
    "dreamer.lagrange_kd": 0.0,
    "dreamer.lagrange_max": 100.0,
    "dreamer.risky_starts": 0.0,
    "model.prior_heads": 5,
    "episodes": 0,
    "finetune_from": "",
    "freeze": "",
    "mix": 0.0,
    "model.vector_norm": False,
    "dreamer.optimizer": "adam",
    "dreamer.agc": 0.0,
    "dreamer.warmup": 0,
    "dreamer.laprop_eps": 1e-20,
    "dreamer.slow_targets": True,
    "dreamer.replay_value": 0.0,
    "dreamer.replay_value_grad": True,
    "dreamer.actor_grad": "reinforce",
    "dreamer.actor_grad_mix": 0.5,
}


def parse_stored(data: Any) -> Config:
    """The config a run folder's ``config.json`` holds (parsed JSON), checked key by key.

    Unlike :meth:`Config.from_dict` (which fills in defaults), every key must be there, with no
    others, and each value must have its field's type; a ``ValueError`` names the first that does not
    and says what fits.
    """
    if not isinstance(data, dict):
        raise ValueError(f'it holds a JSON {_json_kind(data)}, not an object of settings ({{"env": ..., ...}})')
    data = dict(data)
    if isinstance(data.get("agent"), dict) and "dreamer" not in data:  # written before planning agents existed
        data["dreamer"] = data.pop("agent")
    for key, value in ADDED_LATER.items():  # a run stored before the setting existed ran this way
        block, _, name = key.rpartition(".")
        if not block and name not in data:
            data[name] = value
        elif block and isinstance(data.get(block), dict) and name not in data[block]:
            data[block] = {**data[block], name: value}
    values = _stored_block(data, Config, "")
    blocks = {}
    for name, cls in BLOCKS.items():
        block = data[name]
        if not isinstance(block, dict):
            raise ValueError(
                f'"{name}" must be a JSON object of {cls.__name__} settings ({{"{dataclasses.fields(cls)[0].name}": '
                f"...}}), got {_json_kind(block)} {_shown(block)}"
            )
        blocks[name] = cls(**_stored_block(block, cls, name + "."))
    return Config(**values, **blocks)


_JSON_KINDS = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def _json_kind(value: Any) -> str:
    return "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)


def _stored_block(data: dict[str, Any], cls: type, prefix: str) -> dict[str, Any]:
    """The fields of ``cls`` from ``data`` (one block of a stored config), each of its type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0] if len(unknown[0]) <= 60 else unknown[0][:60] + "..."
        close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
        hint = f' (did you mean "{prefix}{close[0]}"?)' if close else ""
        raise ValueError(
            f'unknown key "{prefix}{key}"{hint}: remove it; the keys {cls.__name__} takes are {", ".join(fields)}'
        )
    missing = [name for name in fields if name not in data]
    if missing:
        default = Config() if cls is Config else cls()
        many = len(missing) > 1
        keys = ", ".join(f'"{prefix}{m}"' for m in missing[:8]) + (
            f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        shown = ", ".join(_default_text(m, getattr(default, m)) for m in missing[:4]) + (
            ", ..." if len(missing) > 4 else ""
        )
        raise ValueError(
            f"missing key{'s' if many else ''} {keys}: add {'them' if many else 'it'} back (the "
            f"default{'s' if many else ''}: {shown})"
        )
    values = {}
    for name, f in fields.items():
        value = data[name]
        if name not in BLOCKS:
            _check_stored_type(prefix + name, f, value)
            values[name] = value
    return values


def _default_text(name: str, value: Any) -> str:
    """``"name": value`` as JSON, a block shortened to its first few settings."""
    if dataclasses.is_dataclass(value):
        items = list(dataclasses.asdict(value).items())
        inner = ", ".join(f'"{k}": {json.dumps(v)}' for k, v in items[:3])
        return f'"{name}": {{{inner}{", ..." if len(items) > 3 else ""}}}'
    return f'"{name}": {json.dumps(value)}'


def _check_stored_type(key: str, f: dataclasses.Field, value: Any) -> None:
    kind = f.type
    fits = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
    }.get(kind, True)
    if fits:
        return
    hint = ""
    if isinstance(value, str) and kind in ("int", "float"):
        try:
            number = int(value) if kind == "int" else float(value)
            hint = f"; write it without quotes: {json.dumps(number)}"
        except ValueError:
            pass
    elif isinstance(value, float) and kind == "int" and value.is_integer() and math.isfinite(value):
        hint = f"; write it as {int(value)}"
    elif isinstance(value, str) and kind == "bool" and value.lower() in ("true", "false"):
        hint = f"; write it without quotes: {value.lower()}"
    elif kind == "str" and not isinstance(value, (dict, list)) and value is not None:
        hint = f"; write it in quotes: {json.dumps(json.dumps(value))}"
    raise ValueError(
        f'"{key}" must be {_TYPE_WORDS[kind]} ({f.metadata.get("help", "")}), got {_json_kind(value)} '
        f"{_shown(value)}{hint}"
    )


def validate(cfg: Config, *, device: bool = True) -> None:
    """Reject settings that cannot work, saying what fits (``device=False``: not whether this
    machine has the ``--device``, for looking at a run trained elsewhere)."""
    check_types(cfg)
    check_ranges(cfg)
    check_logdir(cfg.logdir)
    if cfg.obs not in OBS_MODES:
        raise ValueError(f"--obs must be one of {', '.join(OBS_MODES)}, got {cfg.obs!r}")
    if cfg.size not in SIZES:
        raise ValueError(f"--size must be one of {', '.join(SIZES)}, got {cfg.size!r}")
    if cfg.capacity < cfg.seq_len * cfg.envs:
        raise ValueError(
            f"--capacity {cfg.capacity} cannot hold one sequence of {cfg.seq_len} steps per env "
            f"({cfg.envs} envs); raise it to at least {cfg.seq_len * cfg.envs}"
        )
    from .registry import PLANNERS, agent_spec

    spec = agent_spec(cfg.agent)  # an unknown agent names the registered ones
    if cfg.planner != "auto":
        PLANNERS.entry(cfg.planner)
    for flag, value, allowed in (
        ("--plan.objective", cfg.plan.objective, OBJECTIVES),
        ("--plan.controller", cfg.plan.controller, CONTROLLERS),
        ("--eval-policy", cfg.eval_policy, EVAL_POLICIES),
        ("--dreamer.optimizer", cfg.dreamer.optimizer, OPTIMIZERS),
        ("--dreamer.actor-grad", cfg.dreamer.actor_grad, ACTOR_GRADS),
    ):
        if value not in allowed:
            raise ValueError(f"{flag} must be one of {', '.join(allowed)}, got {value!r}")
    spec.check_family(cfg)
    if device:
        check_device(cfg.device)
    env_kwargs(cfg)
    check_domain_specs(cfg)
    check_dataset(cfg)
    check_costs(cfg)
    if (cfg.family or spec.default_family) == "transformer":
        check_transformer(cfg)
    if spec.validate is not None:
        spec.validate(cfg)


def check_transformer(cfg: Config) -> None:
    """The transformer's window must fit in a replayed sequence, and its width split into heads."""
    tf = cfg.transformer
    if tf.context > cfg.seq_len:
        raise ValueError(
            f"--transformer.context {tf.context} is longer than the replayed sequences (--seq-len {cfg.seq_len}): "
            f"training would never fill the window imagination carries; lower it to at most {cfg.seq_len} or "
            f"raise --seq-len"
        )
    if tf.dim % tf.heads:
        raise ValueError(
            f"--transformer.dim {tf.dim} must be a multiple of --transformer.heads {tf.heads} (each head reads an "
            f"equal slice); e.g. --transformer.heads {math.gcd(tf.dim, tf.heads)}"
        )


# The parts of a world model that wm finetune --freeze names (models/base.py: WorldModelBase.parts).
PARTS = ("encoder", "dynamics", "heads")


def parse_parts(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def check_dataset(cfg: Config) -> None:
    """``--offline`` learns from a dataset, so it needs one; the dataset options need a dataset."""
    if cfg.offline and not cfg.dataset:
        raise ValueError(
            "--offline learns from recorded episodes alone: give them with --dataset PATH (an HDF5 episode file, a "
            "Minari dataset folder or a run folder; `wm data collect` records one)"
        )
    if cfg.dataset_share and not cfg.dataset:
        raise ValueError("--dataset-share is the dataset's share of each batch: give the dataset with --dataset")
    if cfg.mix and not cfg.finetune_from:
        raise ValueError("--mix replays a source run's data beside the new: it is for wm finetune RUN")
    if cfg.freeze:
        unknown = sorted(set(parse_parts(cfg.freeze)) - set(PARTS))
        if unknown:
            raise ValueError(f"--freeze {cfg.freeze!r}: {', '.join(unknown)} is not a part; parts: {', '.join(PARTS)}")
    if cfg.episodes and cfg.offline:
        raise ValueError("--episodes stops after collecting that many episodes; --offline collects none")
    if cfg.dataset_share and cfg.offline:
        raise ValueError("--dataset-share mixes a dataset with collected steps; --offline collects none: drop one")


def has_cost_limit(cfg: Config) -> bool:
    return cfg.cost_limit != NO_COST_LIMIT


def check_costs(cfg: Config) -> None:
    """``--cost-limit`` is a cost per episode (>= 0, or -1 for none); what plans or learns under it
    needs it; ``--pretrain-dream`` needs prefill data to dream from."""
    if cfg.cost_limit < 0 and cfg.cost_limit != NO_COST_LIMIT:
        raise ValueError(
            f"--cost-limit is the most cost an episode may pay, so it is >= 0 (got {cfg.cost_limit}); "
            "-1, the default, means no limit"
        )
    if cfg.plan.objective == "constrained" and not has_cost_limit(cfg):
        raise ValueError(
            "--plan.objective constrained plans under a cost budget: give it with --cost-limit C (the most cost an "
            "episode may pay), on an env that reports info['cost']"
        )
    if cfg.pretrain_dream and cfg.prefill < cfg.seq_len:
        raise ValueError(
            f"--pretrain-dream {cfg.pretrain_dream} trains on the prefill data before the first own action, and "
            f"--prefill {cfg.prefill} is less than one training sequence ({cfg.seq_len} steps); raise --prefill"
        )
    if cfg.curriculum and not has_cost_limit(cfg):
        raise ValueError(
            "--curriculum raises the task's difficulty while the cost stays within --cost-limit: give the limit"
        )
    if cfg.curriculum and cfg.offline:
        raise ValueError("--curriculum changes the env the agent collects in; --offline collects nothing: drop one")
    if cfg.pretrain_dream and cfg.offline:
        raise ValueError("--pretrain-dream trains before the first real action; --offline never acts: drop one")


def with_cost_horizon(cfg: Config, episode_limit: int | None) -> Config:
    """``cfg`` with ``cost_horizon`` set to the env's time limit where a cost limit needs it and
    none was given; a run on an env without one must say how long its episodes are."""
    if not has_cost_limit(cfg) or cfg.cost_horizon:
        return cfg
    if not episode_limit:
        raise ValueError(
            f"--cost-limit {cfg.cost_limit} is a cost per episode, and {cfg.env} sets no time limit to spread it "
            "over: give --cost-horizon N (the episode length it is spread over, in agent steps) or "
            "--max-episode-steps N (in env steps)"
        )
    return dataclasses.replace(cfg, cost_horizon=int(episode_limit))


def validate_mpc(cfg: Config) -> None:
    if cfg.plan.objective in ("risk", "optimistic"):
        raise ValueError(
            f"--plan.objective {cfg.plan.objective} needs an ensemble's spread (--agent pets); "
            "the latent model's particles support mean, cvar and constrained"
        )
    validate_dreamer(cfg)


def validate_dreamer(cfg: Config) -> None:
    if cfg.plan.controller == "linear":
        raise ValueError(
            "--plan.controller linear plans feedback gains on state vectors, which only --agent pets models; "
            "leave --plan.controller at sequence"
        )


def validate_pets(cfg: Config) -> None:
    if cfg.penalty:
        raise ValueError(
            "--penalty lowers imagined rewards where the model is unsure, for agents that learn a policy in "
            "imagination (dreamer, mpc); pets plans, and plans against its members' disagreement with "
            "--plan.objective risk --plan.beta B"
        )
    if cfg.invariant_encoder:
        raise ValueError(
            "--invariant-encoder trains an encoder, and pets' ensemble has none (it models state vectors as they "
            "are); use --agent dreamer or mpc"
        )
    if cfg.obs != "state":
        raise ValueError(
            "--agent pets models state vectors (--obs state); for pixels plan in a latent model: --agent mpc"
        )
    if cfg.ensemble.value and cfg.plan.discount >= 1:
        raise ValueError(
            "--ensemble.value learns (1 - discount) V, which needs --plan.discount < 1 "
            f"(e.g. 0.99), got {cfg.plan.discount}"
        )


def validate_vmc(cfg: Config) -> None:
    validate_dreamer(cfg)
    if has_cost_limit(cfg) or cfg.pretrain_dream:
        raise ValueError(
            "--cost-limit and --pretrain-dream are for agents that learn or plan in the replay loop (dreamer, mpc, "
            "pets); V/M/C evolves its controller in a stage of its own, which predicts no costs. Use --agent dreamer"
        )
    if cfg.penalty:
        raise ValueError(
            "--penalty lowers imagined rewards where the model's members disagree; V/M/C's MDN-RNN is one model "
            "with no such measure. Learn offline with it unpenalised, or use --agent dreamer (prior heads)"
        )
    if cfg.offline and cfg.vmc.controller_in == "real":
        raise ValueError(
            "--offline never steps the env while training, and --controller-in real scores every candidate "
            "controller in it: evolve the controller in the dream (--controller-in dream)"
        )
    from .envs.disturbances import Disturbance

    if Disturbance.parse(cfg.disturb).adversarial:
        raise ValueError(
            "adversarial pushes are judged by an agent's predicted return; V/M/C collects with a random policy "
            "and has none. Use random pushes (push=SIZE@PROB) or --agent dreamer"
        )
    if cfg.invariant_encoder:
        raise ValueError(
            "--invariant-encoder trains the encoder inside the replay loop of dreamer and mpc; V/M/C trains its VAE "
            "in a stage of its own, which does not take it. Use --agent dreamer or mpc"
        )
    v = cfg.vmc
    if cfg.model.image_size != 64:
        raise ValueError(
            f"--agent vmc's VAE takes 64x64 frames; leave --model.image-size at 64 (got {cfg.model.image_size})"
        )
    if v.controller_in not in ("dream", "real"):
        raise ValueError(f"--controller-in must be dream or real, got {v.controller_in!r}")


def check_device(device: str) -> None:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``; CUDA only where this machine has it."""
    import torch

    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"--device {device}: this machine has no CUDA device torch can use (torch {torch.__version__}, "
            f"CUDA build: {torch.version.cuda or 'no'}). Use --device cpu, or install a CUDA build of torch "
            "(see the README's install notes)"
        )
    if index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA devices")


def resolve_device(device: str):
    """The ``torch.device`` a run's models live on: ``auto`` is CUDA when available, else CPU."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device(device)
    return torch.device(device)


def check_domain_specs(cfg: Config) -> None:
    """``--randomize`` and ``--disturb`` parse (whether the env has those parameters is checked
    when it is made, before a run folder is)."""
    from .envs.disturbances import Disturbance
    from .envs.domains import Domain

    Domain.parse(cfg.randomize)
    if Disturbance.parse(cfg.disturb).adversarial:
        if cfg.envs > 1:
            raise ValueError(
                "adversarial pushes are judged by the agent in this process, next to its one env: use --envs 1 "
                "with adversarial=K"
            )
        if cfg.action_repeat > 1:
            raise ValueError(
                "adversarial pushes are judged one env step ahead, and with --action-repeat the agent's step is "
                f"{cfg.action_repeat} of them; use --action-repeat 1 with adversarial=K"
            )


def env_kwargs(cfg: Config) -> dict[str, Any]:
    """``--env-kwargs`` as a dict, or a clear error for what is not a JSON object."""
    try:
        kwargs = json.loads(cfg.env_kwargs or "{}")
    except json.JSONDecodeError as err:
        raise ValueError(f"--env-kwargs must be a JSON object such as '{{\"continuous\": false}}': {err}") from err
    if not isinstance(kwargs, dict):
        raise ValueError(f"--env-kwargs must be a JSON object (name: value), got {cfg.env_kwargs!r}")
    return kwargs
