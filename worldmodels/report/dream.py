"""``wm dream``: open-loop prediction on held-out episodes.

The model observes ``context`` real steps, then imagines ``horizon`` steps under the actions
that were really taken. Pixels: real | model | |error| video (MP4 and GIF) and MSE / PSNR / SSIM
per horizon step next to a repeat-the-last-context-frame baseline (does the model beat "nothing
moves"?). V/M/C dreams by sampling its MDN-RNN at ``temperature`` and decoding with its VAE. State: predicted vs real
trajectories per dimension as a PNG.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..envs.seeding import held_out_seeds
from ..models.base import TEMPERATURE
from ..run.collect import Episode, RandomAgent, run_episode
from ..run.runs import LoadedRun
from ..specs import IMAGE, VECTOR
from . import plots
from .frame_metrics import psnr, ssim
from .video import label, upscale, write_gif, write_video


def open_loop(
    run: LoadedRun, ep: Episode, context: int, horizon: int, temperature: float = 1.0
) -> dict[str, np.ndarray]:
    """Observe ``context`` steps of ``ep``, imagine up to ``horizon`` more under its actions
    (the world model's ``open_loop``: see ``models/base.py``)."""
    return run.world_model.open_loop(ep.steps, context, horizon, temperature=temperature)


def prediction_error(world_model, episodes: list[dict[str, np.ndarray]], context: int, horizons: list[int]) -> dict:
    """Open-loop error of ``world_model`` on recorded ``episodes`` (aligned steps, e.g. a
    dataset's): observe ``context`` steps of each, imagine on under its actions, and average the
    squared error of the predicted observation (images in [0, 1]) ``h`` steps after the context,
    for each ``h`` in ``horizons``. Returns ``{h: mse}`` and how many episodes reached each ``h``."""
    key = IMAGE if world_model.obs_spec.image is not None else VECTOR
    errors: dict[int, list[float]] = {h: [] for h in horizons}
    for steps in episodes:
        if len(steps["reward"]) <= context:
            continue
        pred = world_model.open_loop(steps, context, max(horizons))
        real = steps[key].astype(np.float32) / (255.0 if key == IMAGE else 1.0)
        for h in horizons:
            t = context + h - 1
            if t < len(pred[key]):
                errors[h].append(float(np.mean((pred[key][t] - real[t]) ** 2)))
    return {
        "mse": {h: float(np.mean(e)) if e else None for h, e in errors.items()},
        "episodes": {h: len(e) for h, e in errors.items()},
        "observation": key,
        "context": context,
    }


def dream(
    run: LoadedRun,
    *,
    context: int = 5,
    horizon: int = 45,
    episodes: int = 4,
    seed: int = 0,
    temperature: float = 1.0,
    policy: str = "agent",
) -> dict:
    """Write ``RUN/dream/`` (metrics.json, plots, video) and return the metrics.

    ``policy="random"`` plays the held-out episodes with seeded random actions instead of the
    run's agent, so different models (an RSSM and a V/M/C run) are scored on the same episodes.
    """
    if policy not in ("agent", "random"):
        raise ValueError(f"--policy must be agent or random, got {policy!r}")
    if context < 1 or horizon < 1:
        raise ValueError(f"--context and --horizon must be >= 1, got {context} and {horizon}")
    out_dir = run.run_dir / "dream"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = run.make_env()
    try:
        # Held out: fresh episodes from seeds the training run never used.
        eps = []
        for s in held_out_seeds(0, seed, episodes):
            actor = RandomAgent(run.agent.action_spec, s) if policy == "random" else run.agent
            eps.append(run_episode(env, actor, seed=s, mode=False))
    finally:
        env.close()
    usable = [e for e in eps if len(e) > context]
    if not usable:
        raise ValueError(f"held-out episodes had {[len(e) for e in eps]} steps; need more than --context {context}")
    key = IMAGE if run.agent.obs_spec.image is not None else VECTOR
    errs: list[list[float]] = [[] for _ in range(horizon)]
    base_errs: list[list[float]] = [[] for _ in range(horizon)]
    sims: list[list[float]] = [[] for _ in range(horizon)]
    base_sims: list[list[float]] = [[] for _ in range(horizon)]
    first: tuple[Episode, dict] | None = None
    spread: list[list[float]] = [[] for _ in range(horizon)]
    for ep in usable:
        pred = open_loop(run, ep, context, horizon, temperature)
        for k, d in enumerate(pred.get("disagreement", [])[context:]):
            spread[k].append(float(d))
        real = ep.steps[key].astype(np.float32)
        if key == IMAGE:
            real = real / 255.0
        H = len(pred[key]) - context
        for k in range(H):
            t = context + k
            errs[k].append(float(np.mean((pred[key][t] - real[t]) ** 2)))
            base_errs[k].append(float(np.mean((real[context - 1] - real[t]) ** 2)))
        if key == IMAGE:
            future = real[context : context + H]
            for k, (m, b) in enumerate(zip(ssim(pred[key][context:], future), ssim(real[[context - 1] * H], future))):
                sims[k].append(float(m))
                base_sims[k].append(float(b))
        first = first or (ep, pred)
    n = sum(1 for e in errs if e)
    mse = np.array([np.mean(e) for e in errs[:n]])
    base = np.array([np.mean(e) for e in base_errs[:n]])
    # PSNR peak: 1 for images in [0, 1]; the range of the real values for state vectors.
    peak = 1.0 if key == IMAGE else float(np.ptp(np.concatenate([e.steps[key] for e in usable])) or 1.0)
    metrics = {
        "mse": mse.tolist(),
        "psnr": psnr(mse, peak).tolist(),
        "baseline_mse": base.tolist(),
        "baseline_psnr": psnr(base, peak).tolist(),
        "episodes_per_step": [len(e) for e in errs[:n]],
        "context": context,
        "horizon": horizon,
        "observation": key,
        "env_steps": int(run.counters.get("env_steps", 0)),
    }
    if key == IMAGE:
        metrics["ssim"] = [float(np.mean(x)) for x in sims[:n]]
        metrics["baseline_ssim"] = [float(np.mean(x)) for x in base_sims[:n]]
    metrics["policy"] = policy
    if TEMPERATURE in run.world_model.capabilities:
        metrics["temperature"] = temperature
    if any(spread):  # an ensemble: how far its members drift apart along the rollout
        metrics["member_std"] = [float(np.mean(s)) for s in spread[:n]]
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    title = f"{run.config.env} ({key}), context {context}"
    metrics["files"] = [
        str(plots.horizon_metrics(metrics, out_dir / "metrics.png", title, "frame" if key == IMAGE else "step"))
    ]
    ep, pred = first
    if key == IMAGE:
        metrics["files"] += _write_videos(ep.steps[IMAGE][: len(pred[IMAGE])], pred[IMAGE], out_dir)
    else:
        T = len(pred[VECTOR])
        real = ep.steps[VECTOR][:T]
        std = pred["std"][:T] if "std" in pred else None
        path = plots.trajectories(real, pred[VECTOR], context, out_dir / "trajectories.png", title, std)
        metrics["files"].append(str(path))
        frames = _state_frames(run, real, pred[VECTOR])
        if frames is None:  # no renderer for arbitrary states: animate the trajectory plot
            frames = plots.trajectory_frames(real, pred[VECTOR], context, title)
        metrics["files"] += [
            str(write_video(out_dir / "dream.mp4", frames)),
            str(write_gif(out_dir / "dream.gif", frames)),
        ]
    return metrics


def _state_frames(run: LoadedRun, real: np.ndarray, pred: np.ndarray) -> list[np.ndarray] | None:
    """Render real | imagined side by side with the env's own renderer, where the observation
    *is* the simulator state (CartPole, MountainCar): set ``env.unwrapped.state`` and render."""
    env = run.make_env()
    try:
        obs, _ = env.reset(seed=0)
        inner = env.unwrapped
        state = getattr(inner, "state", None)
        if state is None or np.shape(state) != obs[VECTOR].shape or not np.allclose(state, obs[VECTOR]):
            return None
        frames = []
        for r, p in zip(real, pred):
            inner.state = np.asarray(r, dtype=np.float64)
            left = np.asarray(env.render())
            inner.state = np.asarray(p, dtype=np.float64)
            right = np.asarray(env.render())
            sep = np.full((left.shape[0], 4, 3), 255, np.uint8)
            frames.append(np.concatenate([label(left, "real"), sep, label(right, "dream")], 1))
        return frames
    except Exception:  # an env whose renderer rejects foreign states: fall back to the plot
        return None
    finally:
        env.close()


def _write_videos(real: np.ndarray, pred: np.ndarray, out_dir: Path) -> list[str]:
    """Frames of real | model | 4x|error| side by side, enlarged 4x (the error is amplified so small
    deviations show)."""
    pred_u8 = (pred * 255).round().astype(np.uint8)
    error = np.clip(4 * np.abs(real.astype(np.int16) - pred_u8.astype(np.int16)), 0, 255).astype(np.uint8)
    sep = np.full((real.shape[1], 2, real.shape[3]), 255, np.uint8)
    frames = [upscale(np.concatenate([r, sep, p, sep, e], 1), 4) for r, p, e in zip(real, pred_u8, error)]
    return [str(write_video(out_dir / "dream.mp4", frames)), str(write_gif(out_dir / "dream.gif", frames))]
