"""``wm``: the command line. The only place that reads flags into a config."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path
from typing import Any

from .cli_data import add_data_parser, cmd_data
from .config import (
    BLOCKS,
    CONTROLLERS,
    OBJECTIVES,
    OBS_MODES,
    SIZES,
    VMC_RETRAINABLE,
    VMC_STAGES,
    Config,
    PlanConfig,
    range_text,
    resolve,
    validate,
)
from .errors import RunConfigError, WorldModelsError, os_error_text
from .registry import AGENTS, FAMILIES, PLANNERS

# Fields a resumed run may change: how long it runs (for V/M/C: how long each stage runs), its
# threads and its device.
RESUMABLE = {
    "threads",  # how many cores a run uses changes nothing it learns
    "device",  # a run trained on a GPU resumes on a CPU and the other way round
    "steps",
    "checkpoint_minutes",  # how often a run saves changes nothing it learns
    "vmc.rollouts",
    "vmc.vae_steps",
    "vmc.rnn_steps",
    "vmc.generations",
    "vmc.workers",
    "vmc.eval_every",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_dataclass_flags(
    parser: argparse.ArgumentParser, cls, prefix: str = "", choices: dict | None = None, skip: tuple = ()
) -> None:
    """One flag per field; defaults are suppressed so we know which flags were given."""
    choices = choices or {}
    for f in dataclasses.fields(cls):
        if f.name in BLOCKS or f.name in skip:
            continue
        name = prefix + f.name
        default = f.default
        kind = type(default)
        fits = range_text(f.metadata)
        help_text = f"{f.metadata.get('help', '')} (default: {default}{'; ' + fits if fits else ''})"
        if kind is bool:
            parser.add_argument(
                _flag(name), dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        else:
            metavar = {int: "N", float: "X", str: "S"}[kind]
            if name in choices or name in ALTERNATIVES:
                metavar = "{" + ",".join(choices.get(name) or ALTERNATIVES[name]) + "}"
            parser.add_argument(
                _flag(name),
                dest=name,
                type=kind,
                default=argparse.SUPPRESS,
                metavar=metavar,
                choices=choices.get(name),
                help=help_text,
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wm",
        description="worldmodels: learn a world model of an environment, then act, plan and dream in it.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="train an agent: dreamer (default), pets (ensemble + planner), mpc (RSSM + planner) or vmc (VAE + "
        "MDN-RNN + controller evolved in the dream)",
        description="Train an agent. Launched by torchrun (`torchrun --nproc_per_node N -m worldmodels train ...`) "
        "it trains data parallel: each rank its own envs and share of the batch, rank 0 writing the run.",
    )
    train.add_argument("--resume", metavar="RUN", help="continue the run in this folder with its stored config")
    train.add_argument("--quiet", action="store_true", help="no progress bar or status lines")
    train.add_argument("--no-finish", action="store_true", help="skip the learning curve and dream at the end")
    train.add_argument(
        "--stage",
        choices=VMC_STAGES,
        help="vmc: run only this stage (collect, vae, mdnrnn, controller), e.g. to train it longer",
    )
    train.add_argument(
        "--retrain",
        action="store_true",
        help="vmc, with --resume and --stage: start that stage over from scratch, and every stage after it",
    )
    # The V/M/C settings users reach for most, without the block prefix (the paper's terms).
    train.add_argument(
        "--rollouts",
        dest="vmc.rollouts",
        type=int,
        default=argparse.SUPPRESS,
        metavar="N",
        help="vmc: random-policy episodes to collect (same as --vmc.rollouts)",
    )
    train.add_argument(
        "--controller-in",
        dest="vmc.controller_in",
        choices=["dream", "real"],
        default=argparse.SUPPRESS,
        help="vmc: evolve the controller in the dream or the real env (same as --vmc.controller-in)",
    )
    train.add_argument(
        "--model",
        dest="family",
        choices=FAMILIES.names(),
        default=argparse.SUPPRESS,
        help="world-model family the agent learns with (default: the agent's own: rssm for dreamer and mpc, "
        "ensemble for pets, vmc for vmc); dreamer and mpc take any family that gives latent features",
    )
    train.add_argument(
        "--env-kwarg",
        dest="env_kwarg_list",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one keyword argument for the env's constructor (repeatable; VALUE is read as JSON if it parses, "
        "else as a string): --env-kwarg continuous=false",
    )
    _add_dataclass_flags(train, Config, choices=_choices(), skip=("family", "finetune_from"))
    for name, cls in BLOCKS.items():
        _add_dataclass_flags(train.add_argument_group(name, cls.__doc__), cls, f"{name}.")

    ft = sub.add_parser(
        "finetune",
        help="a new run that starts from a trained run's weights and learns on a changed system or new data "
        "(--logdir NEW; the source run is only read)",
    )
    ft.add_argument("run", help="the trained run to start from")
    ft.add_argument(
        "--set",
        dest="set_",
        metavar="SPEC",
        default="",
        help="the changed system: fix env parameters, as wm eval --set does ('g=1.5,m=1.3'); replaces the source's "
        "randomisation unless --randomize is given too",
    )
    ft.add_argument("--lr-scale", type=float, default=1.0, help="multiply every learning rate (e.g. 0.3)")
    ft.add_argument("--quiet", action="store_true", help="no progress bar or status lines")
    ft.add_argument("--no-finish", action="store_true", help="skip the learning curve and dream at the end")
    _add_dataclass_flags(ft, Config, choices=_choices(), skip=("family", "finetune_from"))
    for name, cls in BLOCKS.items():
        _add_dataclass_flags(ft.add_argument_group(name, cls.__doc__), cls, f"{name}.")

    ev = sub.add_parser(
        "eval",
        help="evaluate a trained run on fresh start states: mean ± std return (and cost, on a task with costs) "
        "(eval.json), optional video; --vary/--set/--disturb: out of distribution (RUN/ood/)",
    )
    ev.add_argument("run", help="run folder")
    ev.add_argument("--episodes", type=int, default=10, help="episodes, each from a start state of its own")
    ev.add_argument("--video", action="store_true", help="write RUN/eval.mp4 of the first episode")
    ev.add_argument(
        "--seed",
        type=int,
        default=0,
        help="which set of start states (each disjoint from training's and the run's own evaluations)",
    )
    ev.add_argument("--sample", action="store_true", help="sample actions instead of taking the mode (greedy)")
    ev.add_argument("--device", help="where to run it (default: the run's --device; auto: cuda when available)")
    _add_threads(ev)
    ood = ev.add_argument_group(
        "domains", "evaluate out of distribution (RUN/ood/): parameters not named here are nominal"
    )
    ood.add_argument(
        "--vary",
        metavar="SPEC",
        help="a grid of one or two parameters, NAME=LO:HI:N each ('masspole=0.25:4:9,length=0.25:4:9'): "
        "--episodes per cell, RUN/ood/grid.json and a heatmap (or curve) grid.png",
    )
    ood.add_argument("--set", dest="set_", metavar="SPEC", default="", help="fix parameters: 'body_mass[pole]=3.0'")
    ood.add_argument(
        "--disturb", metavar="SPEC", help="disturbances instead of the run's own: 'push=1.0@0.05,obs_noise=0.01'"
    )
    ood.add_argument(
        "--nominal", action="store_true", help="the nominal env: none of the run's randomisation or disturbances"
    )

    dr = sub.add_parser(
        "dream", help="open-loop video prediction on held-out episodes: MSE, PSNR, SSIM vs repeating the last frame"
    )
    dr.add_argument("run", help="run folder")
    dr.add_argument("--context", type=int, default=5, help="real steps the model observes first")
    dr.add_argument("--horizon", type=int, default=45, help="steps it then imagines under the real actions")
    dr.add_argument("--episodes", type=int, default=4, help="held-out episodes to average over")
    dr.add_argument("--seed", type=int, default=0)
    dr.add_argument("--device", help="where to run it (default: the run's --device)")
    _add_threads(dr)
    dr.add_argument("--temperature", type=float, default=1.0, help="vmc: MDN sampling temperature of the dream")
    dr.add_argument(
        "--policy",
        choices=["agent", "random"],
        default="agent",
        help="who plays the held-out episodes: the run's agent, or seeded random actions (the same episodes "
        "for every run, to compare models)",
    )

    pl = sub.add_parser("plan", help="act by planning with a trained model; latency and model uncertainty")
    pl.add_argument("run", help="run folder (pets, mpc, or dreamer: plans in its world model)")
    pl.add_argument("--episodes", type=int, default=5)
    pl.add_argument("--video", action="store_true", help="write RUN/plan/plan.mp4 of the first episode")
    pl.add_argument("--planner", choices=PLANNERS.names(), help="override the run's planner")
    pl.add_argument("--device", help="where to run it (default: the run's --device)")
    _add_threads(pl)
    pl.add_argument("--seed", type=int, default=0)
    _add_dataclass_flags(pl.add_argument_group("plan", "override the run's planning settings"), PlanConfig, "plan.")

    be = sub.add_parser("bench", help="benchmarks: `wm bench planners` times every planner's decisions")
    be.add_argument("what", choices=["planners"])
    be.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    be.add_argument("--decisions", type=int, default=20, help="timed decisions per planner (after 3 warm-ups)")
    _add_threads(be)
    be.add_argument("--size", default="XXS", help="latent model size for the *_latent rows")
    _add_dataclass_flags(be.add_argument_group("plan", "change the timed setting"), PlanConfig, "plan.")
    add_data_parser(sub)
    return parser


def _add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads`` of the commands in THREADED (main applies it)."""
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores; 1 beside other jobs)")


def _choices() -> dict[str, list[str]]:
    return {"agent": AGENTS.names(), "planner": ["auto", *PLANNERS.names()]}


# Fields with a fixed set of values: shown in --help, checked by config.validate (which says what fits).
ALTERNATIVES = {
    "obs": OBS_MODES,
    "size": tuple(SIZES),
    "plan.objective": OBJECTIVES,
    "plan.controller": CONTROLLERS,
}


def _given(args: argparse.Namespace) -> dict[str, Any]:
    skip = {"command", "resume", "quiet", "no_finish", "stage", "retrain", "env_kwarg_list", "run", "set_", "lr_scale"}
    given = {k: v for k, v in vars(args).items() if k not in skip}
    if getattr(args, "env_kwarg_list", None):
        try:
            kwargs = json.loads(given.get("env_kwargs", "{}") or "{}")
        except json.JSONDecodeError as err:
            raise ValueError(f"--env-kwargs must be a JSON object, got {given['env_kwargs']!r} ({err})") from err
        if not isinstance(kwargs, dict):
            raise ValueError(
                f"--env-kwargs must be a JSON object such as '{{\"g\": 3.0}}', got {given['env_kwargs']!r}"
            )
        for item in args.env_kwarg_list:
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise ValueError(f"--env-kwarg takes KEY=VALUE, got {item!r}")
            try:
                kwargs[key] = json.loads(value)
            except json.JSONDecodeError:
                kwargs[key] = value
        given["env_kwargs"] = json.dumps(kwargs, sort_keys=True)
    return given


def resolve_config(args: argparse.Namespace) -> tuple[Config, bool]:
    """Fresh run: defaults, the agent and size presets, then given flags. Resume: the stored config."""
    given = _given(args)
    if args.resume:
        from .run.runs import read_config

        stored = read_config(Path(args.resume))
        flat = _flatten(stored)
        if given.get("logdir") == args.resume:
            given.pop("logdir")
        changeable = RESUMABLE | _retrainable(args)
        conflicts = {k: (flat.get(k), v) for k, v in given.items() if k not in changeable and flat.get(k) != v}
        if conflicts:
            lines = ", ".join(f"--{k.replace('_', '-')}: stored {a!r}, given {b!r}" for k, (a, b) in conflicts.items())
            raise RunConfigError(
                f"the flags conflict with the stored config of {args.resume} ({lines}). A resumed run keeps its "
                "config (only how long it runs and --threads may change; with --retrain --stage S also the training "
                "settings of S and later stages); start a new run with another --logdir to change it."
            )
        for key in changeable & given.keys():
            block, _, field = key.rpartition(".")
            setattr(getattr(stored, block) if block else stored, field, given[key])
        stored.logdir = str(args.resume)
        return stored, True
    given = _dataset_defaults(given)
    from .run.distributed import launched

    cfg = resolve(given)
    # The other ranks of a torchrun launch find the config rank 0 has just written.
    if (Path(cfg.logdir) / "config.json").exists() and launched().main:
        raise RunConfigError(
            f"{cfg.logdir} already holds a run. Continue it with `wm train --resume {cfg.logdir}`, "
            "or choose a new --logdir."
        )
    return cfg, False


def _dataset_defaults(given: dict[str, Any]) -> dict[str, Any]:
    """With ``--dataset``, the env, observations, image size and action repeat it was recorded with,
    unless given."""
    if not given.get("dataset"):
        return given
    from .data.datasets import dataset_setup

    try:
        setup = dataset_setup(given["dataset"])
    except (OSError, ValueError, KeyError):  # unreadable here: the trainer's loader says why, in full
        return given
    flags = {"env": "env", "obs": "obs", "image_size": "model.image_size", "action_repeat": "action_repeat"}
    return {**{flags[k]: v for k, v in setup.items() if flags[k] not in given}, **given}


def _retrainable(args: argparse.Namespace) -> set[str]:
    """Settings ``--retrain --stage S`` may change: the training settings of S and every later stage."""
    if not (getattr(args, "retrain", False) and getattr(args, "stage", None)):
        return set()
    later = VMC_STAGES[VMC_STAGES.index(args.stage) :]
    return {f"vmc.{field}" for stage in later for field in VMC_RETRAINABLE[stage]}


def _flatten(cfg: Config) -> dict[str, Any]:
    d = cfg.to_dict()
    flat = {k: v for k, v in d.items() if k not in BLOCKS}
    for name in BLOCKS:
        flat.update({f"{name}.{k}": v for k, v in d[name].items()})
    return flat


def _block_flags(args: argparse.Namespace, block: str) -> dict[str, Any]:
    """The ``--block.field`` flags given, as ``{field: value}``."""
    return {k[len(block) + 1 :]: v for k, v in vars(args).items() if k.startswith(block + ".")}


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_train(args: argparse.Namespace) -> int:
    from .registry import agent_spec, load_target
    from .report.finish import finish
    from .run.train import TrainOptions

    # SIGTERM (schedulers, preemption, `kill`) and SIGINT (even where a shell started us with it
    # ignored) stop training the way Ctrl-C does: flush the replay, save a checkpoint, exit.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    cfg, resume = resolve_config(args)
    validate(cfg)
    from .run.distributed import launched

    if launched().main:  # one banner for a torchrun launch
        print(f"run folder: {cfg.logdir}  ({'resuming' if resume else 'new run'}: {cfg.describe()})")
    finisher = None if args.no_finish else finish
    options = TrainOptions(quiet=args.quiet, finish=finisher, stage=args.stage, retrain=args.retrain)
    return load_target(agent_spec(cfg.agent).train)(cfg, resume, options)


def cmd_finetune(args: argparse.Namespace) -> int:
    from .registry import agent_spec, load_target
    from .report.finish import finish
    from .run.finetune import finetune_config
    from .run.train import TrainOptions

    given = _given(args)
    if "logdir" not in given:
        raise ValueError(f"wm finetune needs --logdir NEW: the run it makes (the source {args.run} is only read)")
    logdir = given.pop("logdir")
    cfg = finetune_config(args.run, logdir, given=given, set_=args.set_, lr_scale=args.lr_scale)
    validate(cfg)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    print(f"run folder: {cfg.logdir}  (fine-tuning {args.run}: {cfg.describe()})")
    options = TrainOptions(quiet=args.quiet, finish=None if args.no_finish else finish)
    return load_target(agent_spec(cfg.agent).train)(cfg, False, options)


def cmd_eval(args: argparse.Namespace) -> int:
    from .report.evaluate import evaluate
    from .run.runs import load_run

    if args.vary or args.set_ or args.disturb is not None or args.nominal:
        return _eval_domains(args, load_run(args.run, device=args.device))
    result = evaluate(
        load_run(args.run, device=args.device),
        episodes=args.episodes,
        video=args.video,
        seed=args.seed,
        mode=not args.sample,
    )
    print(f"return {result['mean_return']:.1f} ± {result['std_return']:.1f} over {result['episodes']} episodes")
    if "mean_cost" in result:
        over = result.get("cost_violation_rate")
        limit = f", {over:.0%} of episodes over the limit {result['cost_limit']:g}" if over is not None else ""
        print(f"cost {result['mean_cost']:.2f} ± {result['std_cost']:.2f} per episode{limit}")
    print(f"wrote {Path(args.run) / 'eval.json'}" + (f" and {result['video']}" if "video" in result else ""))
    return 0


def _eval_domains(args: argparse.Namespace, run) -> int:
    from .report.ood import evaluate_domain, evaluate_grid

    if args.video:
        raise ValueError("--video records wm eval's own episodes; drop it with --vary, --set, --disturb or --nominal")
    common = dict(set_=args.set_, disturb=args.disturb, episodes=args.episodes, seed=args.seed, mode=not args.sample)
    if args.vary:
        if args.nominal:
            raise ValueError("--vary evaluates named domains with everything else nominal already; drop --nominal")
        grid = evaluate_grid(run, args.vary, echo=print, **common)
        cells = [v for row in grid["mean"] for v in (row if isinstance(row, list) else [row])]
        print(f"return over the grid: {min(cells):.1f} .. {max(cells):.1f} (mean {sum(cells) / len(cells):.1f})")
        print(f"wrote {grid['json']} and {grid['png']}")
        return 0
    result = evaluate_domain(run, nominal=args.nominal, **common)
    where = ", ".join(t for t in (result["set"], result["disturb"]) if t) or "nominal"
    print(
        f"{where}: return {result['mean_return']:.1f} ± {result['std_return']:.1f} over {result['episodes']} episodes"
    )
    print(f"wrote {result['path']}")
    return 0


def cmd_dream(args: argparse.Namespace) -> int:
    from .report.dream import dream
    from .run.runs import load_run

    m = dream(
        load_run(args.run, device=args.device),
        context=args.context,
        horizon=args.horizon,
        episodes=args.episodes,
        seed=args.seed,
        temperature=args.temperature,
        policy=args.policy,
    )
    for k in (1, 10, 30, 100, 300):
        if k <= len(m["mse"]):
            spread = f"  ensemble member std {m['member_std'][k - 1]:.4f}" if "member_std" in m else ""
            ssim = f"  SSIM {m['ssim'][k - 1]:.3f} (repeat-last {m['baseline_ssim'][k - 1]:.3f})" if "ssim" in m else ""
            base = f" (repeat-last {m['baseline_psnr'][k - 1]:.2f})"
            print(f"horizon {k:>3}: MSE {m['mse'][k - 1]:.5f}  PSNR {m['psnr'][k - 1]:.2f} dB{base}{ssim}{spread}")
    print("wrote " + ", ".join([str(Path(args.run) / "dream" / "metrics.json"), *m["files"]]))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .report.plan import plan_episodes
    from .run.runs import load_run

    r = plan_episodes(
        load_run(args.run, device=args.device),
        episodes=args.episodes,
        video=args.video,
        seed=args.seed,
        planner=args.planner,
        plan=_block_flags(args, "plan"),
    )
    ms = r["ms_per_action"]
    print(
        f"{r['planner']}: return {r['mean_return']:.1f} ± {r['std_return']:.1f} over {r['episodes']} episodes; "
        f"{ms['median']:.1f} ms per action (median), {ms['p90']:.1f} (90th percentile)"
    )
    if "mean_disagreement" in r:
        print(f"ensemble disagreement along the episodes: {r['mean_disagreement']:.3g} (mean, target-normalised)")
    print("wrote " + ", ".join(r["files"]))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from .report.bench import bench_planners

    plan = dataclasses.replace(PlanConfig(), **_block_flags(args, "plan"))
    result = bench_planners(decisions=args.decisions, size=args.size, plan=plan)
    s = result["setting"]
    print(
        f"{s['population']} candidates, horizon {s['horizon']}, {s['iterations']} iterations; ensemble of "
        f"{s['ensemble_members']}x{s['ensemble_units']} units; MCTS {s['mcts_simulations']} simulations; "
        f"{s['torch_threads']} torch threads"
    )
    print(f"{'planner':<14}{'ms/action':>12}{'bf16':>10}")
    for name, row in result.items():
        if name != "setting":
            bf16 = f"{row['ms_per_action_bf16']:.1f}" if "ms_per_action_bf16" in row else "-"
            print(f"{name:<14}{row['ms_per_action']:>12.1f}{bf16:>10}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


# Commands whose --threads is torch's thread count for the command alone.
THREADED = ("eval", "dream", "plan", "bench")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "train": cmd_train,
        "finetune": cmd_finetune,
        "eval": cmd_eval,
        "dream": cmd_dream,
        "plan": cmd_plan,
        "bench": cmd_bench,
        "data": cmd_data,
    }
    if args.command in THREADED and args.threads:  # train and finetune take theirs from the run's config
        import torch

        torch.set_num_threads(args.threads)
    try:
        return commands[args.command](args)
    except (WorldModelsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system refused (a full or read-only disk, a path too long, ...)
        print(f"error: {os_error_text(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
