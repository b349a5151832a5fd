"""What a finished training run leaves for a person to look at: a learning curve and a dream."""

from __future__ import annotations

from pathlib import Path

from ..registry import agent_spec
from ..run.logger import read_metrics
from ..run.runs import load_run, read_config
from . import plots
from .dream import dream


def finish(run_dir: Path) -> list[str]:
    """Write ``RUN/curve.png`` and ``RUN/dream/``; return the paths written."""
    cfg = read_config(run_dir)
    draw = plots.stage_curves if agent_spec(cfg.agent).curve == "stages" else plots.learning_curve
    curve = draw(read_metrics(run_dir), run_dir / "curve.png", cfg.describe())
    written = [str(curve)]
    try:
        written += dream(load_run(run_dir), context=5, horizon=45, episodes=2)["files"]
    except ValueError as err:  # e.g. held-out episodes too short to dream on
        written.append(f"(no dream: {err})")
    return written
