"""``wm data``: record, export and describe datasets (the flags of cli.py's ``data`` command)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .config import OBS_MODES


def add_data_parser(sub) -> None:
    data = sub.add_parser(
        "data", help="datasets: record any policy (collect), export a run's replay (export), describe one (info)"
    )
    verbs = data.add_subparsers(dest="data_command", required=True)

    ex = verbs.add_parser("export", help="a run's replay as a Minari dataset or an HDF5 file (whole episodes)")
    ex.add_argument("run", help="run folder (or its replay folder)")
    _output_flags(ex)

    co = verbs.add_parser("collect", help="record episodes of any policy into a dataset")
    co.add_argument("--env", default="", help="env id (default: the run's env when --policy is a run)")
    co.add_argument(
        "--policy",
        default="random",
        help="random, held:K (each random action held 1..K steps), or a trained run's folder (its agent acts)",
    )
    co.add_argument("--episodes", type=int, default=20, help="episodes to record, each from a start of its own")
    co.add_argument("--seed", type=int, default=0, help="which set of start states (and random actions)")
    co.add_argument("--sample", action="store_true", help="a run's policy: sample its actions instead of the mode")
    co.add_argument("--obs", choices=OBS_MODES, help="what is recorded: state, pixels or both (default: state)")
    co.add_argument("--image-size", type=int, help="side of recorded images (default 64)")
    co.add_argument("--action-repeat", type=int, help="env steps per recorded step (default 1)")
    co.add_argument("--max-episode-steps", type=int, help="cut episodes at this many env steps (0: the env's own)")
    co.add_argument("--randomize", metavar="SPEC", help="draw physics and looks per episode: 'masspole=0.5:2.0'")
    co.add_argument("--set", dest="set_", metavar="SPEC", help="fix parameters for every episode: 'g=15,m=1.3'")
    co.add_argument("--disturb", metavar="SPEC", help="disturbances while recording: 'push=0.5@0.02'")
    co.add_argument("--env-kwargs", metavar="JSON", help="keyword arguments of the env's constructor")
    _output_flags(co)

    info = verbs.add_parser("info", help="episodes, steps, spaces, returns and what could not be read")
    info.add_argument("path", help="a dataset: HDF5 file, Minari folder or minari:NAME, run or replay folder")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")


def _output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="where to write: a folder (Minari) or a .h5 file (HDF5)")
    parser.add_argument(
        "--format", choices=("minari", "hdf5"), help="minari (a folder) or hdf5 (one file; default from --out's name)"
    )
    parser.add_argument("--jpeg", action="store_true", help="minari: JPEG-encode images (smaller, lossy)")


def cmd_data(args: argparse.Namespace) -> int:
    return {"export": _export, "collect": _collect, "info": _info}[args.data_command](args)


def _export(args: argparse.Namespace) -> int:
    from .run.datasets import open_dataset

    dataset = open_dataset(args.run, allow_empty=True)
    return _write(dataset, args)


def _collect(args: argparse.Namespace) -> int:
    from .envs.domains import Domain
    from .run.record import Recording, record_dataset

    given = ("obs", "image_size", "action_repeat", "max_episode_steps", "disturb", "env_kwargs")
    overrides = {k: getattr(args, k) for k in given if getattr(args, k) is not None}
    if args.randomize is not None or args.set_ is not None:
        drawn = Domain.parse(args.randomize or "")
        overrides["randomize"] = drawn.merged(Domain.parse(args.set_ or "", flag="--set", mode="value")).text
    if not args.env and not Path(args.policy, "config.json").is_file():
        raise ValueError("wm data collect needs --env (or --policy RUN, whose env it then records)")
    rec = Recording(
        env=args.env,
        policy=args.policy,
        episodes=args.episodes,
        seed=args.seed,
        sample=args.sample,
        overrides=overrides,
    )
    dataset = record_dataset(rec, echo=print)
    return _write(dataset, args)


def _write(dataset, args: argparse.Namespace) -> int:
    from .data.datasets import require_episodes, save_dataset

    require_episodes(dataset)
    out = save_dataset(dataset, args.out, fmt=args.format, jpeg=args.jpeg)
    size = _size(out)
    print(
        f"wrote {out}: {len(dataset.episodes)} episodes, {dataset.steps:,} steps, {size / 2**20:.1f} MiB "
        f"({size / max(dataset.steps, 1):,.0f} bytes/step)"
    )
    for line in dataset.skipped:
        print(f"skipped {line}")
    return 0


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _info(args: argparse.Namespace) -> int:
    from .run.datasets import open_dataset

    dataset = open_dataset(args.path, allow_empty=True)
    summary = dataset.summary()
    where = Path(dataset.source)
    if where.exists():
        summary["bytes"] = _size(where)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['source']} ({summary['format']})")
    rows = [("env", summary["env"] or "unknown")]
    length, ret = summary["length"], summary["return"]
    counts = f"{summary['episodes']} ({summary['terminated']} terminated), {summary['steps']:,} steps"
    if length:
        counts += f"; length {length['mean']:.1f} ± {length['std']:.1f} ({length['min']:.0f}..{length['max']:.0f})"
    rows.append(("episodes", counts))
    if ret:
        rows.append(("return", f"{ret['mean']:.1f} ± {ret['std']:.1f} (min {ret['min']:.1f}, max {ret['max']:.1f})"))
    rows.append(("observations", ", ".join(f"{k} {tuple(v)}" for k, v in summary["observations"].items())))
    rows.append(("actions", summary["action_space"]))
    if summary.get("policy"):
        seed = f" (seed {summary['seed']})" if summary.get("seed") is not None else ""
        rows.append(("policy", f"{summary['policy']}{seed}"))
    if summary.get("domain_names"):
        rows.append(
            ("domain", ", ".join(summary["domain_names"]) + f" recorded per step ({summary.get('randomize', '')})")
        )
    if summary.get("disturb"):
        rows.append(("disturbed", summary["disturb"]))
    if "bytes" in summary:
        per = summary["bytes"] / max(summary["steps"], 1)
        rows.append(("on disk", f"{summary['bytes'] / 2**20:.2f} MiB ({per:,.0f} bytes/step)"))
    rows.append(("skipped", f"{len(summary['skipped'])}" if summary["skipped"] else "none"))
    for name, value in rows:
        print(f"  {name:<13}{value}")
    for line in summary["skipped"]:
        print(f"    {line}")
    return 0
