"""Recorded episodes as the library holds them, and the transition layout datasets store.

In memory an episode is a dict of aligned steps (docs/DESIGN.md, "Time alignment"): ``T + 1``
rows of ``obs_t`` (the model's view: ``"image"``, ``"vector"``, and ``"domain"`` where it was
randomised), ``action_t`` in model space (one-hot or [-1, 1]; zeros on the last row),
``reward_t`` (received on arriving at ``obs_t``; 0 on the first row), ``is_first``,
``is_terminal`` and ``is_last``. That is what the replay stores and what every agent trains on.

On disk (Minari, and this library's HDF5 layout) an episode of ``T`` transitions is
``observations`` (``T + 1`` rows, the first and every one after), ``actions``, ``rewards``,
``terminations`` and ``truncations`` (``T`` rows each), actions in the env's own units.
:func:`to_transitions` and :func:`from_transitions` convert, and the latter refuses an episode
that cannot be one (lengths that disagree, a step after the end, values that are not finite)
with a :class:`BadEpisode` saying why, so a reader can skip it and go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from gymnasium import spaces

from ..envs.spaces import action_spec, from_env_actions, to_env_actions
from ..errors import DatasetError
from ..specs import COST, DOMAIN, IMAGE, VECTOR, ActionSpec, ObsSpec

OBS_KEYS = (IMAGE, VECTOR, DOMAIN)  # what an episode's observation rows may hold


class BadEpisode(ValueError):
    """One recorded episode that cannot be used; the reader skips it and names it."""


def to_transitions(steps: dict[str, np.ndarray], action_space: spaces.Space) -> dict:
    """Aligned steps (``T + 1`` rows) -> ``observations`` (``T + 1``) and ``actions``,
    ``rewards``, ``terminations``, ``truncations`` (``T`` each), actions in the env's units."""
    terminal, last = np.asarray(steps["is_terminal"][1:], bool), np.asarray(steps["is_last"][1:], bool)
    return {
        "observations": {k: steps[k] for k in OBS_KEYS if k in steps},
        "actions": to_env_actions(action_space, steps["action"][:-1]),
        "rewards": np.asarray(steps["reward"][1:], np.float32),
        "terminations": terminal,
        "truncations": last & ~terminal,
    }


def from_transitions(
    observations: dict[str, np.ndarray],
    actions: np.ndarray,
    rewards: np.ndarray,
    terminations: np.ndarray,
    truncations: np.ndarray,
    action_space: spaces.Space,
) -> dict[str, np.ndarray]:
    """The inverse of :func:`to_transitions`. An episode whose last transition is flagged neither
    terminated nor truncated ends there all the same (the recording stopped: a truncation)."""
    rewards, actions = np.asarray(rewards), np.asarray(actions)
    terminations = np.asarray(terminations, bool).reshape(-1)
    truncations = np.asarray(truncations, bool).reshape(-1)
    n = len(rewards)
    if n == 0:
        raise BadEpisode("it has no transitions")
    lengths = {"actions": len(actions), "terminations": len(terminations), "truncations": len(truncations)}
    lengths.update({f"observations/{k}": len(v) - 1 for k, v in observations.items()})
    wrong = {k: v for k, v in lengths.items() if v != n}
    if wrong:
        said = ", ".join(f"{k} {v + 1 if k.startswith('observations') else v}" for k, v in wrong.items())
        raise BadEpisode(f"its arrays disagree in length: {n} rewards (so {n + 1} observations) but {said}")
    ended = np.flatnonzero(terminations[:-1] | truncations[:-1])
    if len(ended):
        raise BadEpisode(f"it ends at transition {int(ended[0])} but goes on to {n}")
    if not np.all(np.isfinite(rewards)):
        raise BadEpisode(f"its rewards hold {int(np.sum(~np.isfinite(rewards)))} non-finite value(s)")
    for key, value in observations.items():
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise BadEpisode(f"its {key} observations hold non-finite values")
    try:
        model_actions = from_env_actions(action_space, actions)
    except ValueError as err:
        raise BadEpisode(f"its actions do not fit the action space: {err}") from None
    if not np.all(np.isfinite(model_actions)):
        raise BadEpisode("its actions hold non-finite values")
    flags = np.zeros(n + 1, bool)
    terminal, last = flags.copy(), flags.copy()
    terminal[1:], last[-1] = terminations, True
    first = flags.copy()
    first[0] = True
    return {
        **{k: np.asarray(v) for k, v in observations.items()},
        "action": np.concatenate([model_actions, np.zeros((1, model_actions.shape[1]), np.float32)]),
        "reward": np.concatenate([[0.0], rewards.reshape(-1)]).astype(np.float32),
        "is_first": first,
        "is_terminal": terminal,
        "is_last": last,
    }


def conform_episode(
    steps: dict[str, np.ndarray], obs_spec: ObsSpec, domain_names: tuple[str, ...], recorded: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """An episode with exactly the keys an env's own steps have: the model's observations, the
    step keys, and ``domain`` where the env records the values of ``domain_names``: taken from
    the episode's own (named ``recorded``) where it has every one of them, else NaN (unknown:
    the domain probe and adversary skip such steps). Recorded and collected steps then sample
    into one batch."""
    keys = {*obs_spec.keys(), "action", "reward", "is_first", "is_terminal", "is_last"}
    if obs_spec.cost:  # the model learns the cost beside the reward, so it must be recorded
        if COST not in steps:
            raise DatasetError(
                "this env charges costs (info['cost']) and the model learns them, but the recorded episodes hold "
                "none: HDF5 and Minari files do not carry costs yet. Learn from a run folder of the same env (its "
                "replay keeps them: --dataset RUN)"
            )
        keys.add(COST)
    out = {k: v for k, v in steps.items() if k in keys}
    if domain_names:
        values = steps.get(DOMAIN)
        if values is not None and set(domain_names) <= set(recorded):
            out[DOMAIN] = values[:, [recorded.index(n) for n in domain_names]].astype(np.float32)
        else:
            out[DOMAIN] = np.full((len(steps["reward"]), len(domain_names)), np.nan, np.float32)
    return out


def model_observation_space(obs_spec: ObsSpec, domain_names: tuple[str, ...] = ()) -> spaces.Dict:
    """The observation space of the model's view (what :class:`~worldmodels.envs.adapter.ModelEnv` gives)."""
    parts: dict[str, spaces.Space] = {}
    if obs_spec.image is not None:
        parts[IMAGE] = spaces.Box(0, 255, obs_spec.image, np.uint8)
    if obs_spec.vector is not None:
        parts[VECTOR] = spaces.Box(-np.inf, np.inf, (obs_spec.vector,), np.float32)
    if domain_names:
        parts[DOMAIN] = spaces.Box(-np.inf, np.inf, (len(domain_names),), np.float32)
    return spaces.Dict(parts)


@dataclass
class Dataset:
    """Recorded episodes in the library's step layout, with the spaces they were recorded in.

    ``observation_space`` is the model's view (a Dict of ``image``/``vector``/``domain`` Boxes);
    ``action_space`` the env's own (the units exported actions are in). ``skipped`` names every
    episode a reader could not use and why; ``meta`` keeps what the source said about itself
    (env id, policy, seed, domain parameter names)."""

    episodes: list[dict[str, np.ndarray]]
    observation_space: spaces.Dict
    action_space: spaces.Space
    env_id: str | None = None
    source: str = ""
    format: str = ""
    skipped: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def obs_spec(self) -> ObsSpec:
        image = self.observation_space.spaces.get(IMAGE)
        vector = self.observation_space.spaces.get(VECTOR)
        return ObsSpec(
            image=tuple(image.shape) if image is not None else None,
            vector=int(vector.shape[0]) if vector is not None else None,
        )

    @property
    def action_spec(self) -> ActionSpec:
        return action_spec(self.action_space)

    @property
    def domain_names(self) -> tuple[str, ...]:
        return tuple(self.meta.get("domain_names", ()))

    @property
    def steps(self) -> int:
        """Transitions held (an episode of ``T + 1`` rows is ``T`` of them)."""
        return sum(len(ep["reward"]) - 1 for ep in self.episodes)

    def returns(self) -> np.ndarray:
        return np.array([float(np.sum(ep["reward"], dtype=np.float64)) for ep in self.episodes])

    def lengths(self) -> np.ndarray:
        return np.array([len(ep["reward"]) - 1 for ep in self.episodes], np.int64)

    def summary(self) -> dict:
        """What ``wm data info`` prints: counts, spaces, returns, lengths, what was skipped."""
        returns, lengths = self.returns(), self.lengths()
        shapes = {k: [*s.shape] for k, s in self.observation_space.spaces.items()}
        return {
            "source": self.source,
            "format": self.format,
            "env": self.env_id,
            "episodes": len(self.episodes),
            "steps": self.steps,
            "observations": shapes,
            "action_space": str(self.action_space),
            "return": _stats(returns),
            "length": _stats(lengths.astype(np.float64)),
            "terminated": int(sum(bool(ep["is_terminal"][-1]) for ep in self.episodes)),
            "skipped": list(self.skipped),
            **({"domain_names": list(self.domain_names)} if self.domain_names else {}),
            **{k: v for k, v in self.meta.items() if k in ("policy", "seed", "obs_mode", "randomize", "disturb")},
        }

    def check_matches(self, obs_spec: ObsSpec, action: ActionSpec, against: str) -> None:
        """Refuse a dataset the model of ``against`` (an env or a run) cannot train on, naming
        every key and shape that differs."""
        mine, theirs = self.obs_spec, obs_spec
        diffs = []
        for key in (IMAGE, VECTOR):
            a, b = getattr(mine, key), getattr(theirs, key)
            if a != b:
                diffs.append(f"{key}: the dataset has {_shape(a)}, {against} has {_shape(b)}")
        if self.action_spec != action:
            diffs.append(f"actions: the dataset has {_action(self.action_spec)}, {against} has {_action(action)}")
        if diffs:
            raise DatasetError(
                f"{self.source} does not match {against}: " + "; ".join(diffs) + ". Record the dataset with the "
                "same env, --obs and --image-size, or train on a dataset from that env."
            )


def _stats(x: np.ndarray) -> dict:
    if not len(x):
        return {}
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max())}


def _shape(value) -> str:
    if value is None:
        return "none"
    return f"({value},)" if isinstance(value, int) else str(tuple(value))


def _action(spec: ActionSpec) -> str:
    return f"{spec.dim} discrete actions" if spec.discrete else f"{spec.dim} continuous actions"
