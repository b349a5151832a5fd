"""Out-of-distribution evaluation: a trained run played in domains it may never have seen.

``wm eval RUN --vary "body_mass[pole]=0.25:4:9,dof_damping=0.25:4:9"`` plays every cell of a
grid of one or two parameters (a curve or a heatmap) and writes ``RUN/ood/grid.json`` and
``RUN/ood/grid.png``; ``--set`` fixes parameters (in a grid, or alone for one domain) and
``--disturb`` applies disturbances. In both, every parameter the flags do not name is at its
nominal value, and every cell plays the same start states (``wm eval``'s own reset seeds) with
the agent's random draws restarted alike, so cells differ only in their domain.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable

import numpy as np
import torch

from ..envs.disturbances import Disturbance
from ..envs.domain_spec import DomainSpecError
from ..envs.domains import Domain
from ..envs.make import make_env
from ..envs.seeding import report_seeds
from ..run.collect import agent_device, own_torch_rng, play_episodes, return_summary
from ..run.runs import LoadedRun, env_kwargs
from .evaluate import check_episodes
from .plots import domain_grids

OOD = "ood"


def _play(run: LoadedRun, domain: Domain, disturbance: Disturbance, seeds: list[int], mode: bool) -> list[float]:
    """The episodes of ``seeds`` in one domain. The agent's own draws (latent samples, sampled
    actions) restart from the same torch seed in every domain, so that domains are compared on
    the same starts and the same luck."""
    cfg = run.config
    env = make_env(cfg.env, **{**env_kwargs(cfg), "randomize": domain, "disturb": disturbance})
    device = agent_device(run.agent)
    try:
        with own_torch_rng(device):
            torch.manual_seed(seeds[0])
            return [ep.ret for ep in play_episodes(env, run.agent, seeds, mode=mode)]
    finally:
        env.close()


def _disturbance(run: LoadedRun, disturb: str | None) -> Disturbance:
    """``--disturb`` if given, else the run's own disturbances."""
    return Disturbance.parse(run.config.disturb if disturb is None else disturb)


def _protocol(run: LoadedRun, seed: int, seeds: list[int], mode: bool) -> dict:
    return {
        "policy": "greedy" if mode else "sampled",
        "start_states": "the same reset seeds in every domain: wm eval's own, disjoint from training's "
        "(worldmodels.envs.seeding.report_seeds)",
        "run_seed": run.config.seed,
        "eval_seed": seed,
        "reset_seeds": seeds,
        "trained_on": {"randomize": run.config.randomize, "disturb": run.config.disturb},
    }


def _trained_ranges(run: LoadedRun, axes: tuple) -> dict[str, list[float]]:
    """The run's ``--randomize`` range of each grid axis it randomised in the same units."""
    trained = {p.key: p for p in Domain.parse(run.config.randomize).params}
    return {
        p.key: [trained[p.key].low, trained[p.key].high]
        for p in axes
        if p.key in trained and trained[p.key].absolute == p.absolute
    }


def slug(text: str) -> str:
    """A file-name-safe form of a spec (``body_mass[pole]=3`` -> ``body_mass-pole-=3``)."""
    return re.sub(r"[^A-Za-z0-9._=@+-]+", "-", text).strip("-") or "nominal"


def evaluate_domain(
    run: LoadedRun,
    *,
    set_: str = "",
    disturb: str | None = None,
    nominal: bool = False,
    episodes: int = 10,
    seed: int = 0,
    mode: bool = True,
) -> dict:
    """One fixed domain (``set_``; nominal elsewhere), with ``disturb`` or the run's disturbances
    (none with ``nominal``). Writes ``RUN/ood/domain-<spec>.json``."""
    check_episodes(episodes, seed)
    domain = Domain.parse(set_, flag="--set", mode="value")
    disturbance = Disturbance() if nominal and disturb is None else _disturbance(run, disturb)
    seeds = report_seeds(run.config.seed, seed, episodes)
    returns = _play(run, domain, disturbance, seeds, mode)
    stats = return_summary(returns)
    result = {
        "set": domain.text,
        "disturb": disturbance.text,
        **{f"{k}_return": v for k, v in stats.items()},
        "episodes": episodes,
        "env_steps": int(run.counters.get("env_steps", 0)),
        "returns": returns,
        "protocol": _protocol(run, seed, seeds, mode),
    }
    folder = run.run_dir / OOD
    folder.mkdir(exist_ok=True)
    name = slug("+".join(t for t in (domain.text, disturbance.text) if t))
    path = folder / f"domain-{name}.json"
    path.write_text(json.dumps(result, indent=2))
    result["path"] = str(path)
    return result


def evaluate_grid(
    run: LoadedRun,
    vary: str,
    *,
    set_: str = "",
    disturb: str | None = None,
    episodes: int = 5,
    seed: int = 0,
    mode: bool = True,
    echo: Callable[[str], None] | None = None,
) -> dict:
    """Every cell of the ``vary`` grid (one or two ``NAME=LO:HI:N`` parameters), ``episodes``
    each. Writes ``RUN/ood/grid.json`` (the axes, mean and std return per cell, every return)
    and ``RUN/ood/grid.png``; returns the grid with the paths."""
    check_episodes(episodes, seed)
    axes = Domain.parse(vary, flag="--vary", mode="grid").params
    if not axes:
        raise DomainSpecError("--vary needs one or two parameters, e.g. --vary masspole=0.25:4:9")
    fixed = Domain.parse(set_, flag="--set", mode="value")
    both = {p.key for p in fixed.params} & {p.key for p in axes}
    if both:
        raise DomainSpecError(f"{', '.join(sorted(both))} is both varied (--vary) and fixed (--set): give it once")
    disturbance = _disturbance(run, disturb)
    seeds = report_seeds(run.config.seed, seed, episodes)
    values = [p.grid() for p in axes]
    shape = tuple(len(v) for v in values)
    mean, std = np.zeros(shape), np.zeros(shape)
    returns: np.ndarray = np.zeros((*shape, episodes))
    for index in itertools.product(*(range(n) for n in shape)):
        cell = Domain(fixed.params + tuple(p.at(values[a][i]) for a, (p, i) in enumerate(zip(axes, index))))
        got = _play(run, cell, disturbance, seeds, mode)
        returns[index] = got
        mean[index], std[index] = float(np.mean(got)), float(np.std(got))
        if echo is not None:
            where = ", ".join(f"{p.key}={values[a][i]:.3g}" for a, (p, i) in enumerate(zip(axes, index)))
            echo(f"{where}: return {mean[index]:.1f} ± {std[index]:.1f}")
    grid = {
        "axes": [{"key": p.key, "values": v, "absolute": p.absolute or p.visual} for p, v in zip(axes, values)],
        "set": fixed.text,
        "disturb": disturbance.text,
        "mean": mean.tolist(),
        "std": std.tolist(),
        "returns": returns.tolist(),
        "episodes": episodes,
        "env_steps": int(run.counters.get("env_steps", 0)),
        "env": run.config.env,
        "agent": run.config.agent,
        "protocol": _protocol(run, seed, seeds, mode),
        "trained_range": _trained_ranges(run, axes),
    }
    folder = run.run_dir / OOD
    folder.mkdir(exist_ok=True)
    json_path, png_path = folder / "grid.json", folder / "grid.png"
    json_path.write_text(json.dumps(grid, indent=2))
    domain_grids({run.run_dir.name: grid}, png_path, f"{run.config.describe()}: return per domain")
    return {**grid, "json": str(json_path), "png": str(png_path)}
