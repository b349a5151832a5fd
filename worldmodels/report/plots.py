"""PNG plots: learning curves, dream metrics, predicted vs real state trajectories."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def learning_curve(rows: list[dict], path: Path, title: str) -> Path:
    """Episode returns (training) and evaluation returns against env steps (against train
    steps for a run that learned offline, whose env steps are all zero)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    offline = bool(rows) and all(r.get("env_steps", 0) == 0 and "train_steps" in r for r in rows)
    key = "train_steps" if offline else "env_steps"
    train = [(r[key], r["episode/return"]) for r in rows if "episode/return" in r]
    evals = [(r[key], r["eval/return"]) for r in rows if "eval/return" in r]
    if train:
        x, y = zip(*train)
        ax.plot(x, y, color="tab:blue", alpha=0.6, label="training episodes")
    if evals:
        x, y = zip(*evals)
        ax.plot(x, y, "o-", color="tab:orange", label="evaluation (mean)")
    ax.set_xlabel("train steps (offline: no environment steps)" if offline else "environment steps")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def horizon_metrics(metrics: dict[str, list[float]], path: Path, title: str, what: str = "frame") -> Path:
    """MSE, PSNR (and SSIM for frames) of imagined frames (or state vectors) per horizon step."""
    keys = [k for k in ("mse", "psnr", "ssim") if k in metrics]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5))
    steps = np.arange(1, len(metrics["mse"]) + 1)
    for ax, key in zip(axes, keys):
        ax.plot(steps, metrics[key], label="model")
        if f"baseline_{key}" in metrics:
            ax.plot(steps, metrics[f"baseline_{key}"], "--", label=f"repeat last context {what}")
            ax.legend()
        ax.set_xlabel("steps into the future")
        ax.set_ylabel(key.upper())
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def trajectories(
    real: np.ndarray, pred: np.ndarray, context: int, path: Path, title: str, std: np.ndarray | None = None
) -> Path:
    """Real vs predicted ``(T, D)`` state trajectories, one panel per dimension; ``std`` adds a ±1 std band."""
    dims = real.shape[1]
    cols = min(dims, 4)
    rows = (dims + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    t = np.arange(len(real))
    for d in range(rows * cols):
        ax = axes[d // cols][d % cols]
        if d >= dims:
            ax.axis("off")
            continue
        ax.plot(t, real[:, d], color="black", label="real")
        ax.plot(t, pred[:, d], color="tab:red", label="model" if std is None else "model mean ± std")
        if std is not None:
            ax.fill_between(t, pred[:, d] - std[:, d], pred[:, d] + std[:, d], color="tab:red", alpha=0.25, lw=0)
        ax.axvline(context - 0.5, color="gray", ls=":")
        ax.set_title(f"dim {d}", fontsize=9)
        if d == 0:
            ax.legend(fontsize=7)
    fig.suptitle(f"{title} (left of the dotted line: observed; right: imagined)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def trajectory_frames(real: np.ndarray, pred: np.ndarray, context: int, title: str) -> list[np.ndarray]:
    """Frames of the trajectory plot drawn up to each step: a video of the dream for states."""
    dims = real.shape[1]
    cols = min(dims, 4)
    rows = (dims + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    frames = []
    for t in range(1, len(real) + 1):
        for d in range(rows * cols):
            ax = axes[d // cols][d % cols]
            ax.clear()
            if d >= dims:
                ax.axis("off")
                continue
            ax.plot(real[:t, d], color="black")
            ax.plot(pred[:t, d], color="tab:red")
            ax.set_xlim(0, len(real))
            lo, hi = min(real[:, d].min(), pred[:, d].min()), max(real[:, d].max(), pred[:, d].max())
            ax.set_ylim(lo - 0.05 * (hi - lo + 1e-6), hi + 0.05 * (hi - lo + 1e-6))
            ax.axvline(context - 0.5, color="gray", ls=":")
        fig.suptitle(f"{title}: real (black) vs dream (red)")
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return frames


def stage_curves(rows: list[dict], path: Path, title: str) -> Path:
    """V/M/C: VAE loss, MDN-RNN NLL per step, and CMA-ES fitness (with real-env evaluations)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (
        ("vae_steps", ["vae/recon", "vae/kl"], "VAE", "loss per frame"),
        ("rnn_steps", ["mdnrnn/nll"], "MDN-RNN", "NLL per latent dim"),
        ("generation", ["fitness/mean", "fitness/max", "eval/return"], "controller (CMA-ES)", "return"),
    )
    for ax, (x_key, keys, name, ylabel) in zip(axes, panels):
        for k in keys:
            pts = [(r[x_key], r[k]) for r in rows if x_key in r and k in r]
            if pts:
                x, y = zip(*pts)
                ax.plot(
                    x,
                    y,
                    "o-" if k == "eval/return" else ".-" if len(pts) < 30 else "-",  # a few points still show
                    label=k.split("/")[-1] if k != "eval/return" else "real env",
                )
        ax.set_title(name)
        ax.set_xlabel(x_key.replace("_", " "))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def seed_curves(reports: dict[str, dict], path: Path, title: str, threshold: float | None = None) -> Path:
    """Evaluation return against env steps for each labelled multi-seed report: the IQM over seeds
    with its 95% bootstrap band, and every seed as a thin line."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for (label, rep), color in zip(reports.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        for points in rep["curves"].values():
            x, y = zip(*points)
            ax.plot(x, y, color=color, alpha=0.25, lw=0.8)
        if rep["curve"]:
            x = [p["env_steps"] for p in rep["curve"]]
            ax.fill_between(x, [p["ci_low"] for p in rep["curve"]], [p["ci_high"] for p in rep["curve"]],
                            color=color, alpha=0.2)  # fmt: skip
            ax.plot(x, [p["iqm"] for p in rep["curve"]], "o-", color=color, ms=3,
                    label=f"{label} (IQM of {len(rep['seeds'])} seeds, 95% CI)")  # fmt: skip
    if threshold is not None:
        ax.axhline(threshold, color="grey", ls="--", lw=1)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _tick(v: float) -> str:
    return f"{v:.3g}"


def domain_grids(grids: dict[str, dict], path: Path, title: str) -> Path:
    """Returns over a grid of domains (report/ood.py), side by side under one colour scale:
    heatmaps for two parameters, curves with ±1 std bands for one. The training range, where
    the run had one, is outlined (heatmaps) or shaded (curves)."""
    first = next(iter(grids.values()))
    if len(first["axes"]) == 1:
        fig, ax = plt.subplots(figsize=(7, 4))
        axis = first["axes"][0]
        for label, grid in grids.items():
            x, mean, std = np.array(grid["axes"][0]["values"]), np.array(grid["mean"]), np.array(grid["std"])
            (line,) = ax.plot(x, mean, "o-", label=label)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
            if axis["key"] in grid.get("trained_range", {}):
                lo, hi = grid["trained_range"][axis["key"]]
                ax.axvspan(lo, hi, color=line.get_color(), alpha=0.08)
        if not axis["absolute"]:
            ax.set_xscale("log")
            ax.set_xlabel(f"{axis['key']} (x nominal)")
        else:
            ax.set_xlabel(axis["key"])
        ax.set_ylabel("return")
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(title)
    else:
        lows = [np.min(g["mean"]) for g in grids.values()]
        highs = [np.max(g["mean"]) for g in grids.values()]
        vmin, vmax = min(lows), max(highs)
        fig, axes = plt.subplots(1, len(grids), figsize=(5.2 * len(grids) + 1, 4.8), squeeze=False)
        for ax, (label, grid) in zip(axes[0], grids.items()):
            ya, xa = grid["axes"]
            mean = np.array(grid["mean"])
            image = ax.imshow(mean, origin="lower", cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
            ax.set_xticks(range(len(xa["values"])), [_tick(v) for v in xa["values"]], rotation=45)
            ax.set_yticks(range(len(ya["values"])), [_tick(v) for v in ya["values"]])
            ax.set_xlabel(xa["key"] + ("" if xa["absolute"] else " (x nominal)"))
            ax.set_ylabel(ya["key"] + ("" if ya["absolute"] else " (x nominal)"))
            for (i, j), value in np.ndenumerate(mean):
                shade = "white" if value < (vmin + vmax) / 2 else "black"
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=6, color=shade)
            inside = [_inside(a["values"], grid.get("trained_range", {}).get(a["key"])) for a in (ya, xa)]
            if all(span is not None for span in inside):
                (y0, y1), (x0, x1) = inside
                ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, ec="red", lw=2))
            ax.set_title(label)
        fig.colorbar(image, ax=axes[0].tolist(), label="mean return")
        outlined = any(g.get("trained_range") for g in grids.values())
        fig.suptitle(title + ("\n(red box: the training range)" if outlined else ""), y=1.06 if outlined else 1.0)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _inside(values: list[float], span: list[float] | None) -> tuple[int, int] | None:
    """First and last index of ``values`` within ``span`` (None: no span, or no value in it)."""
    if span is None:
        return None
    idx = [i for i, v in enumerate(values) if span[0] - 1e-9 <= v <= span[1] + 1e-9]
    return (idx[0], idx[-1]) if idx else None


def push_curves(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """Return (mean, ±1 std band) against push size, one line per run."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (sizes, mean, std) in curves.items():
        (line,) = ax.plot(sizes, mean, "o-", label=label)
        ax.fill_between(sizes, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("push size")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def safety_curves(runs: dict[str, dict], path: Path, title: str, limit: float | None = None) -> Path:
    """Left: the real cost each run paid while learning, cumulative, against env steps. Right: its
    evaluation return and cost per episode (mean and std), with the cost limit where there is one.
    ``runs``: label -> ``{"steps", "paid", "return", "return_std", "cost", "cost_std"}``."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for label, r in runs.items():
        left.plot(r["steps"], r["paid"], label=label)
    left.set_xlabel("environment steps")
    left.set_ylabel("cost paid while learning (cumulative)")
    left.grid(alpha=0.3)
    left.legend()
    labels = list(runs)
    x = np.arange(len(labels))
    twin = right.twinx()
    right.bar(x - 0.2, [runs[k]["return"] for k in labels], 0.4, yerr=[runs[k]["return_std"] for k in labels],
              color="tab:blue", label="return")  # fmt: skip
    twin.bar(x + 0.2, [runs[k]["cost"] for k in labels], 0.4, yerr=[runs[k]["cost_std"] for k in labels],
             color="tab:red", label="cost")  # fmt: skip
    if limit is not None:
        twin.axhline(limit, color="tab:red", linestyle="--", linewidth=1, label=f"limit {limit:g}")
    top = max([runs[k]["cost"] + runs[k]["cost_std"] for k in labels] + [limit or 0.0, 1.0])
    twin.set_ylim(0, 1.1 * top)  # costs are >= 0; with none paid the axis would centre on 0
    right.set_xticks(x, labels)
    right.set_ylabel("evaluation return per episode", color="tab:blue")
    twin.set_ylabel("evaluation cost per episode", color="tab:red")
    right.set_title("evaluation")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
