"""PNG plots: learning curves, dream metrics, predicted vs real state trajectories."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def learning_curve(rows: list[dict], path: Path, title: str) -> Path:
    """Episode returns (training) and evaluation returns against env steps."""
    fig, ax = plt.subplots(figsize=(7, 4))
    train = [(r["env_steps"], r["episode/return"]) for r in rows if "episode/return" in r]
    evals = [(r["env_steps"], r["eval/return"]) for r in rows if "eval/return" in r]
    if train:
        x, y = zip(*train)
        ax.plot(x, y, color="tab:blue", alpha=0.6, label="training episodes")
    if evals:
        x, y = zip(*evals)
        ax.plot(x, y, "o-", color="tab:orange", label="evaluation (mean)")
    ax.set_xlabel("environment steps")
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
