"""``wm finetune``: a new run that starts from a trained run's weights and learns on new data.

The new run's config is the source run's with what the command changes: where it runs
(``logdir``), the system it now learns on (``--set`` fixes parameters of the env, as ``wm eval
--set`` does; ``--env``, ``--randomize``, ``--dataset``), how long (``--episodes``, ``--steps``),
what stays fixed (``--freeze``), how fast it moves (``--lr-scale`` multiplies every learning
rate) and how much of the source's own replay each batch keeps (``--mix``). It is an ordinary run
after that: it resumes with ``wm train --resume``, evaluates, dreams and plans like any other.
The source run is only ever read; a new run inside it, or in place of it, is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import NO_COST_LIMIT, Config, parse_stored
from ..envs.domains import Domain
from ..errors import RunConfigError
from ..registry import agent_spec
from . import checkpoint
from .runs import CONFIG, read_config

# Every learning rate a run has, scaled together by --lr-scale.
LEARNING_RATES = ("model.lr", "dreamer.actor_lr", "dreamer.critic_lr", "ensemble.lr")


def finetune_config(
    source: str | Path,
    logdir: str | Path,
    *,
    given: dict[str, Any] | None = None,
    set_: str = "",
    lr_scale: float = 1.0,
) -> Config:
    """The config of a run that fine-tunes ``source`` into ``logdir``. ``given`` holds settings
    as flat keys (``{"episodes": 5, "model.lr": 1e-4}``), as ``wm train``'s flags name them.
    Unless given, ``prefill`` is 0 (the trained agent acts from the first step)."""
    given = dict(given or {})
    src, out = Path(source), Path(logdir)
    cfg = read_config(src)
    if cfg.agent == "vmc":
        raise RunConfigError(
            f"{src} is a V/M/C run, whose stages train in sequence; fine-tune with `wm train --resume {src} "
            "--stage S --retrain` there, or fine-tune a dreamer, mpc or pets run"
        )
    if not (src / checkpoint.NAME).is_file():
        raise RunConfigError(
            f"{src} has no checkpoint yet ({checkpoint.NAME}): there are no weights to start from. Train it first "
            f"(`wm train --resume {src}`)."
        )
    where, home = out.resolve(), src.resolve()
    if where == home or home in where.parents:
        raise RunConfigError(
            f"--logdir {out} is {'the source run' if where == home else 'inside the source run'} {src}: fine-tuning "
            "never writes into the run it starts from. Choose a folder outside it."
        )
    if (out / CONFIG).exists():
        raise RunConfigError(
            f"{out} already holds a run: continue it with `wm train --resume {out}`, or choose another"
        )
    if lr_scale <= 0:
        raise RunConfigError(f"--lr-scale multiplies the learning rates and must be > 0, got {lr_scale}")
    data = cfg.to_dict()
    if set_:
        fixed = Domain.parse(set_, flag="--set", mode="value")
        drawn = Domain.parse(given.get("randomize", ""))
        given["randomize"] = drawn.merged(fixed).text
    given.setdefault("prefill", 0)
    if given.get("cost_limit", NO_COST_LIMIT) != NO_COST_LIMIT and "plan.objective" not in given:
        given["plan.objective"] = "constrained"  # as a fresh run's planners respect a limit (config.resolve)
    if given.get("offline") and not cfg.offline:  # the agent's offline settings (dreamer: the penalty)
        given = {**agent_spec(given.get("agent", cfg.agent)).offline_defaults, **given}
    for key in LEARNING_RATES:
        block, name = key.split(".")
        data[block][name] = data[block][name] * lr_scale
    for key, value in given.items():
        block, _, name = key.rpartition(".")
        (data[block] if block else data)[name] = value
    data["logdir"], data["finetune_from"] = str(out), str(src)
    try:
        return parse_stored(data)
    except (TypeError, ValueError) as err:
        raise RunConfigError(f"wm finetune {src}: {err}") from err
