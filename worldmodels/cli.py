"""``wm``: the command line. The only place that reads flags into a config."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path
from typing import Any

from .config import AgentConfig, Config, ModelConfig, apply_size, validate
from .errors import RunConfigError, WorldModelsError

# Fields a resumed run may change: only how long it runs.
RESUMABLE = {"steps"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls, prefix: str = "") -> None:
    """One flag per field; defaults are suppressed so we know which flags were given."""
    for f in dataclasses.fields(cls):
        if f.name in ("model", "agent"):
            continue
        name = prefix + f.name
        default = f.default
        kind = type(default)
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        if kind is bool:
            parser.add_argument(
                _flag(name), dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        else:
            metavar = {int: "N", float: "X", str: "S"}[kind]
            parser.add_argument(
                _flag(name), dest=name, type=kind, default=argparse.SUPPRESS, metavar=metavar, help=help_text
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wm",
        description="worldmodels: learn a world model of an environment, then act, plan and dream in it.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a Dreamer agent (world model + actor-critic)")
    train.add_argument("--resume", metavar="RUN", help="continue the run in this folder with its stored config")
    train.add_argument("--quiet", action="store_true", help="no progress bar or status lines")
    train.add_argument("--no-finish", action="store_true", help="skip the learning curve and dream at the end")
    _add_dataclass_flags(train, Config)
    _add_dataclass_flags(train.add_argument_group("model"), ModelConfig, "model.")
    _add_dataclass_flags(train.add_argument_group("agent"), AgentConfig, "agent.")

    ev = sub.add_parser("eval", help="evaluate a trained run: mean ± std return, optional video")
    ev.add_argument("run", help="run folder")
    ev.add_argument("--episodes", type=int, default=10)
    ev.add_argument("--video", action="store_true", help="write RUN/eval.mp4 of the first episode")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--sample", action="store_true", help="sample actions instead of taking the mode")

    dr = sub.add_parser("dream", help="open-loop video prediction on held-out episodes")
    dr.add_argument("run", help="run folder")
    dr.add_argument("--context", type=int, default=5, help="real steps the model observes first")
    dr.add_argument("--horizon", type=int, default=45, help="steps it then imagines under the real actions")
    dr.add_argument("--episodes", type=int, default=4, help="held-out episodes to average over")
    dr.add_argument("--seed", type=int, default=0)
    return parser


def _given(args: argparse.Namespace) -> dict[str, Any]:
    skip = {"command", "resume", "quiet", "no_finish"}
    return {k: v for k, v in vars(args).items() if k not in skip}


def resolve_config(args: argparse.Namespace) -> tuple[Config, bool]:
    """Fresh run: defaults, then the size preset, then given flags. Resume: the stored config."""
    given = _given(args)
    if args.resume:
        from .run.runs import read_config

        stored = read_config(Path(args.resume))
        flat = _flatten(stored)
        if given.get("logdir") == args.resume:
            given.pop("logdir")
        conflicts = {k: (flat.get(k), v) for k, v in given.items() if k not in RESUMABLE and flat.get(k) != v}
        if conflicts:
            lines = ", ".join(f"--{k.replace('_', '-')}: stored {a!r}, given {b!r}" for k, (a, b) in conflicts.items())
            raise RunConfigError(
                f"the flags conflict with the stored config of {args.resume} ({lines}). A resumed run keeps its "
                "config (only --steps may change); start a new run with another --logdir to change it."
            )
        stored.steps = given.get("steps", stored.steps)
        stored.logdir = str(args.resume)
        return stored, True
    cfg = Config()
    top = {k: v for k, v in given.items() if "." not in k}
    cfg = dataclasses.replace(cfg, **top)
    model = apply_size(cfg.model, cfg.size)
    model = dataclasses.replace(model, **{k[6:]: v for k, v in given.items() if k.startswith("model.")})
    agent = dataclasses.replace(cfg.agent, **{k[6:]: v for k, v in given.items() if k.startswith("agent.")})
    cfg = dataclasses.replace(cfg, model=model, agent=agent)
    if (Path(cfg.logdir) / "config.json").exists():
        raise RunConfigError(
            f"{cfg.logdir} already holds a run. Continue it with `wm train --resume {cfg.logdir}`, "
            "or choose a new --logdir."
        )
    return cfg, False


def _flatten(cfg: Config) -> dict[str, Any]:
    d = cfg.to_dict()
    flat = {k: v for k, v in d.items() if k not in ("model", "agent")}
    flat.update({f"model.{k}": v for k, v in d["model"].items()})
    flat.update({f"agent.{k}": v for k, v in d["agent"].items()})
    return flat


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_train(args: argparse.Namespace) -> int:
    from .run.finish import finish
    from .run.train import Trainer

    # SIGTERM (schedulers, preemption, `kill`) and SIGINT (even where a shell started us with it
    # ignored) stop training the way Ctrl-C does: flush the replay, save a checkpoint, exit.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    cfg, resume = resolve_config(args)
    validate(cfg)
    print(
        f"run folder: {cfg.logdir}  ({'resuming' if resume else 'new run'}: {cfg.env}, obs {cfg.obs}, size {cfg.size})"
    )
    tty = sys.stderr.isatty()
    trainer = Trainer(cfg, resume=resume, progress=not args.quiet and tty, status_lines=not args.quiet and not tty)
    counters = trainer.train()
    c = counters
    print(f"done: {c['env_steps']} env steps, {c['train_steps']} train steps, {c['episodes']} episodes")
    if not args.no_finish:
        for path in finish(Path(cfg.logdir)):
            print(f"wrote {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .run.evaluate import evaluate
    from .run.runs import load_run

    result = evaluate(
        load_run(args.run), episodes=args.episodes, video=args.video, seed=args.seed, mode=not args.sample
    )
    print(f"return {result['mean_return']:.1f} ± {result['std_return']:.1f} over {result['episodes']} episodes")
    print(f"wrote {Path(args.run) / 'eval.json'}" + (f" and {result['video']}" if "video" in result else ""))
    return 0


def cmd_dream(args: argparse.Namespace) -> int:
    from .run.dream import dream
    from .run.runs import load_run

    m = dream(load_run(args.run), context=args.context, horizon=args.horizon, episodes=args.episodes, seed=args.seed)
    for k in (1, 10, 30):
        if k <= len(m["mse"]):
            print(f"horizon {k:>3}: MSE {m['mse'][k - 1]:.5f}  PSNR {m['psnr'][k - 1]:.2f} dB")
    print("wrote " + ", ".join([str(Path(args.run) / "dream" / "metrics.json"), *m["files"]]))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"train": cmd_train, "eval": cmd_eval, "dream": cmd_dream}
    try:
        return commands[args.command](args)
    except (WorldModelsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
