"""Few-shot adaptation: a trained run fine-tuned on a changed system with 1, 2, 5 and 10 target
episodes, against the unadapted run and runs trained from scratch on the same target episodes.

    python benchmarks/finetune.py --source runs/bench/pendulum-pets --set "g=1.5,m=1.3" \\
        --episodes 1 2 5 10 --out runs/bench/finetune-pendulum --json docs/finetune_pendulum.json \\
        -- --train-ratio 1024

For every N in ``--episodes``: ``wm finetune SOURCE --set SPEC --episodes N`` (b), and a fresh
model of the source's settings trained on exactly the target episodes that run collected (c,
``wm train --dataset FINETUNED --offline``, for as many updates as the fine-tuning made and at
least ``--scratch-steps``), so that (b) and (c) differ only in where their weights started;
extra flags after ``--`` go to both. Each, and the source itself (a), is scored
on the changed system by the open-loop prediction error at ``--horizons`` steps after ``--context``
observed ones, on ``--held-out`` target episodes of random play no run saw, and by ``wm eval``'s
return there (``--eval-episodes``). ``--reference RUN`` adds a run trained to convergence on the
target as the bar. Existing runs and scores (``OUT/scores/NAME.json``) are reused, so a stopped
benchmark picks up where it stopped and two of them (different ``--episodes``, one ``--out``) can
share the work. Prints JSON; ``--plot`` draws error and return against N.

    python benchmarks/finetune.py --report runs/bench/finetune-pendulum --json docs/finetune_pendulum.json \
        --plot docs/finetune_pendulum.png     # whatever is scored so far, no new runs
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import torch
from json_out import emit


def wm(*args: str) -> None:
    print("$ wm " + " ".join(shlex.quote(a) for a in args), flush=True)
    # one thread each: wm eval would take every core, and runs of a benchmark share them
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "worldmodels", *args], check=True, env=env)


def counters(run_dir: Path) -> dict:
    """A run's counters at its last checkpoint ({} before its first)."""
    from worldmodels.run import checkpoint

    path = run_dir / checkpoint.NAME
    return checkpoint.load(path)["counters"] if path.exists() else {}


def score(name: str, run_dir: Path, target: str, held_out, args) -> dict:
    """Open-loop error on the held-out target episodes and the return on the target system. The
    return (a ``wm eval`` of 10 episodes: minutes) is kept in ``OUT/scores/NAME.json`` and
    reused; the error (seconds) is measured anew unless it was measured the same way."""
    from worldmodels.report.dream import prediction_error
    from worldmodels.run.runs import load_run

    cached = Path(args.out) / "scores" / f"{name}.json"
    result = json.loads(cached.read_text()) if cached.exists() else {}
    if result.get("samples") != args.samples:
        # Imagination samples: average each episode's error over --samples rollouts, seeded.
        torch.manual_seed(0)
        with torch.no_grad():
            error = prediction_error(
                load_run(run_dir).world_model, held_out * args.samples, args.context, args.horizons
            )
        result.update(
            {"run": str(run_dir), "mse": {str(h): e for h, e in error["mse"].items()}, "samples": args.samples}
        )
    if "mean_return" not in result:
        wm("eval", str(run_dir), "--set", target, "--episodes", str(args.eval_episodes))
        ood = max((run_dir / "ood").glob("domain-*.json"), key=lambda p: p.stat().st_mtime)
        domain = json.loads(ood.read_text())
        result.update(
            {"mean_return": domain["mean_return"], "std_return": domain["std_return"], "returns": domain["returns"]}
        )
        result["eval_episodes"] = args.eval_episodes
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(result, indent=2) + "\n")
    return result


# Settings a from-scratch run sets for itself rather than taking from the source.
OWN = {"logdir", "seed", "steps", "randomize", "episodes", "eval_every", "threads", "finetune_from"}


def source_flags(cfg) -> list[str]:
    """``wm train`` flags that give a fresh run the source's settings (model sizes, planner,
    learning rates): every field where the source differs from a new run of its agent."""
    from worldmodels.config import flag, resolve

    base = resolve({"agent": cfg.agent, "env": cfg.env, "obs": cfg.obs, "size": cfg.size}).to_dict()
    flags = []
    for block, values in cfg.to_dict().items():
        fields = values.items() if isinstance(values, dict) else [(None, values)]
        for name, value in fields:
            key, default = (name, base[block][name]) if name else (block, base[block])
            if value == default or (name is None and block in OWN):
                continue
            name_flag = flag(block if name else "", key)
            if isinstance(value, bool):
                flags += [name_flag] if value else []  # store_true flags
            else:
                flags += [name_flag, str(value)]
    return flags


def report(out: Path) -> dict:
    """Every score in ``OUT/scores``, by name."""
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "scores").glob("*.json"))}


def plot(scores: dict, path: str) -> None:
    """Open-loop error at each horizon and target return against the number of target episodes:
    fine-tuned and from scratch as lines, the unadapted source and the reference as levels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizons = sorted({h for s in scores.values() for h in s["mse"]}, key=int)
    panels = [(f"prediction MSE, {h} step{'s' * (h != '1')} ahead", lambda s, h=h: s["mse"][h]) for h in horizons]
    panels.append(("target return (mean over eval episodes)", lambda s: s["mean_return"]))
    episodes = sorted({int(k.split("-")[1]) for k in scores if k.startswith(("finetuned-", "scratch-"))})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for ax, (title, value) in zip(axes, panels):
        for kind, style in (("finetuned", "o-"), ("scratch", "s--")):
            ns = sorted(int(k.split("-")[1]) for k in scores if k.startswith(kind + "-"))
            ax.plot(ns, [value(scores[f"{kind}-{n}"]) for n in ns], style, label=kind)
        for level, color in (("unadapted", "grey"), ("reference", "black")):
            if level in scores:
                ax.axhline(value(scores[level]), color=color, linestyle=":", label=level)
        ax.set_xscale("log")
        ax.set_xticks(episodes, [str(n) for n in episodes])
        ax.minorticks_off()
        ax.set_xlabel("target episodes")
        ax.set_title(title, fontsize=9)
        if title.startswith("prediction"):
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", help="the run trained at nominal parameters")
    parser.add_argument("--set", dest="set_", help="the changed system: 'g=1.5,m=1.3'")
    parser.add_argument("--report", help="an --out folder: write --json/--plot from its scores, run nothing")
    parser.add_argument("--plot", help="a PNG of error and return against the number of target episodes")
    parser.add_argument("--episodes", type=int, nargs="+", default=[1, 2, 5, 10])
    parser.add_argument("--horizons", type=int, nargs="+", default=[1, 10, 30])
    parser.add_argument("--context", type=int, default=5)
    parser.add_argument("--held-out", type=int, default=5, help="target episodes of random play to score on")
    parser.add_argument("--samples", type=int, default=8, help="open-loop rollouts averaged per held-out episode")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--reference", help="a run trained to convergence on the changed system")
    parser.add_argument("--scratch-steps", type=int, default=1000, help="the fewest updates a scratch model gets")
    parser.add_argument("--out")
    parser.add_argument("--json")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if args.report:
        scores = report(Path(args.report))
        text = json.dumps(scores, indent=2)
        print(text)
        if args.json:
            Path(args.json).write_text(text + "\n")
        if args.plot:
            plot(scores, args.plot)
        return
    if not (args.source and args.set_ and args.out):
        parser.error("--source, --set and --out are needed to run (or --report OUT)")
    torch.set_num_threads(1)
    from worldmodels.run.record import Recording, record_dataset
    from worldmodels.run.runs import read_config

    source, out = Path(args.source), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = read_config(source)
    target = record_dataset(
        Recording(env=cfg.env, episodes=args.held_out, seed=12345, overrides={"randomize": args.set_}),
        base=cfg,
    )
    result = {"source": str(source), "set": args.set_, "horizons": args.horizons, "context": args.context}
    # The benchmark scores every run itself: a run's own final evaluation is one short episode.
    common = ["--quiet", "--no-finish", "--threads", "1", "--eval-every", str(10**6), "--eval-episodes", "1", *extra]
    for n in args.episodes:
        tuned, scratch = out / f"finetuned-{n}", out / f"scratch-{n}"
        if not (tuned / "config.json").exists():
            wm("finetune", str(source), "--set", args.set_, "--episodes", str(n), "--logdir", str(tuned), *common)
        elif counters(tuned).get("episodes", 0) < n:  # stopped part way
            wm("train", "--resume", str(tuned), "--quiet", "--no-finish", "--threads", "1")
        steps = max(counters(tuned)["train_steps"], args.scratch_steps)
        if not (scratch / "config.json").exists():
            wm("train", "--agent", cfg.agent, "--env", cfg.env, "--obs", cfg.obs, *source_flags(cfg),
               "--randomize", args.set_, "--dataset", str(tuned), "--offline", "--steps", str(steps),
               "--seed", str(cfg.seed), "--logdir", str(scratch), *common)  # fmt: skip
        elif counters(scratch).get("train_steps", 0) < steps:
            wm("train", "--resume", str(scratch), "--quiet", "--no-finish", "--threads", "1")
        result[f"finetuned-{n}"] = score(f"finetuned-{n}", tuned, args.set_, target.episodes, args)
        result[f"scratch-{n}"] = score(f"scratch-{n}", scratch, args.set_, target.episodes, args)
        print(n, json.dumps({k: result[f"{k}-{n}"] for k in ("finetuned", "scratch")}), flush=True)
    # The levels last: a second benchmark sharing --out finds them scored by the first.
    result["unadapted"] = score("unadapted", source, args.set_, target.episodes, args)
    if args.reference:
        result["reference"] = score("reference", Path(args.reference), args.set_, target.episodes, args)
    emit(result, args.json)
    if args.plot:
        plot(report(out), args.plot)


if __name__ == "__main__":
    main()
