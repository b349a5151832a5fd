"""Registries: world-model families, agents, planners and environment suites, found by name.

Each registry maps a name to a target, given either as the object itself or as a lazy
``"module:attribute"`` string that is imported only when the name is asked for (so an
uninstalled suite or a heavy family costs nothing until used, as gymnasium's registry and
dreamerv3's suite table do). The CLI lists :meth:`Registry.names` as its choices.

Other packages plug in without touching this one, either by calling ``register_*``::

    import worldmodels
    worldmodels.register_family("linear", "mypkg.linear:make_linear", features=True)

or through an entry point in their ``pyproject.toml``, whose target is called (or imported)
once before the CLI builds its flags::

    [project.entry-points."worldmodels.plugins"]
    mypkg = "mypkg.worldmodels_plugin:register"
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import WorldModelsError

PLUGIN_GROUP = "worldmodels.plugins"


class UnknownNameError(WorldModelsError, ValueError):
    """A name no registry entry has; the message lists the registered ones."""


def load_target(target: Any) -> Any:
    """``"package.module:attr"`` -> the attribute (imported now); anything else as it is."""
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


@dataclass
class Entry:
    name: str
    target: Any  # the object, or "module:attr"
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        self.target = load_target(self.target)
        return self.target


class Registry:
    """Name -> target, read lazily. ``what`` and ``flag`` phrase the errors (``--model``, ...)."""

    def __init__(self, what: str, flag: str):
        self.what, self.flag = what, flag
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: Any = None, *, replace: bool = False, **meta: Any):
        """Register ``target`` under ``name``; without a target, a decorator."""
        if target is None:

            def decorate(obj):
                self.register(name, obj, replace=replace, **meta)
                return obj

            return decorate
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.what} needs a non-empty name, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.what} {name!r} is already registered (pass replace=True to override it)")
        self._entries[name] = Entry(name, target, dict(meta))
        return target

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        load_plugins()
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def entry(self, name: str) -> Entry:
        load_plugins()
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.what} {name!r} ({self.flag}); registered: {', '.join(self._entries)}.{hint}"
            )
        return self._entries[name]

    def get(self, name: str) -> Any:
        """The target registered as ``name`` (imported on first use)."""
        return self.entry(name).load()

    def meta(self, name: str) -> dict[str, Any]:
        return self.entry(name).meta


# --------------------------------------------------------------------- the registries
# A family's target: ``make(obs_spec, action_spec, cfg) -> world model`` (see models/base.py).
FAMILIES = Registry("world-model family", "--model")
# An agent's target: an ``AgentSpec`` (see agents/base.py).
AGENTS = Registry("agent", "--agent")
# A planner's target: a class with ``from_config(action_dim, plan, **bounds)`` (see planning/).
PLANNERS = Registry("planner", "--planner")
# A suite's target: ``make(task, **env_kwargs) -> gymnasium.Env`` for ids spelled ``prefix:task``.
SUITES = Registry("environment suite", "--env")

FAMILIES.register("rssm", "worldmodels.models.world_model:make_rssm", features=True)
FAMILIES.register("transformer", "worldmodels.models.transformer:make_transformer", features=True)
FAMILIES.register("ensemble", "worldmodels.models.ensemble:make_ensemble", features=False)
FAMILIES.register("vmc", "worldmodels.models.vision_memory:make_vision_memory", features=False)

AGENTS.register("dreamer", "worldmodels.agents.dreamer:SPEC")
AGENTS.register("mpc", "worldmodels.agents.mpc:SPEC")
AGENTS.register("pets", "worldmodels.agents.pets:SPEC")
AGENTS.register("vmc", "worldmodels.agents.vmc:SPEC")

PLANNERS.register("cem", "worldmodels.planning.cem:CEM", discrete=False)
PLANNERS.register("mppi", "worldmodels.planning.mppi:MPPI", discrete=False)
PLANNERS.register("mcts", "worldmodels.planning.mcts:MCTS", discrete=True)

SUITES.register("dmc", "worldmodels.envs.dmc:make_dmc", extra="dmc", spelling="dmc:walker-walk")
SUITES.register("safe", "worldmodels.envs.safe:make_safe", spelling="safe:PointGoal")


@dataclass(frozen=True)
class AgentSpec:
    """An agent's registry entry: how to build it and how a run of it behaves.

    ``build(obs_spec, action_spec, cfg)`` returns the agent (a ``worldmodels.agents.base.Agent``).
    ``families``: the world-model families it can learn with (``None``: any family registered with ``features=True``);
    ``default_family`` is used when ``--model`` is not given. ``defaults``: settings the agent
    changes from the global defaults unless given on the command line (flat keys, dotted for a
    block: ``{"plan.horizon": 5}``); ``offline_defaults`` those it changes besides for ``--offline``
    runs (Dreamer: the uncertainty penalty). ``train``: ``(cfg, resume, options) -> exit code``, the loop a
    run of it trains with. ``plans_with``: the agent ``wm plan`` acts with on this agent's model
    (``None``: it cannot plan, and ``no_plan`` says why).
    """

    build: Callable[..., Any] | str
    default_family: str
    families: tuple[str, ...] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    offline_defaults: Mapping[str, Any] = field(default_factory=dict)
    validate: Callable[[Any], None] | None = None
    train: Callable[..., int] | str = "worldmodels.run.train:train_run"
    curve: str = "learning"  # learning (returns over env steps) | stages (one panel per stage)
    plans_with: str | None = None
    no_plan: str = ""
    obs_label: str | None = None  # what `describe` calls its observations (None: the --obs mode)

    def check_family(self, cfg) -> str:
        """The family ``cfg`` asks for, or an error naming those this agent learns with."""
        family = cfg.family or self.default_family
        entry = FAMILIES.entry(family)
        if self.families is not None and family not in self.families:
            raise ValueError(
                f"--agent {cfg.agent} learns with the {' or '.join(self.families)} world model; "
                f"--model {family} does not fit it (leave --model out)"
            )
        if self.families is None and not entry.meta.get("features", False):
            usable = [n for n in FAMILIES.names() if FAMILIES.meta(n).get("features")]
            raise ValueError(
                f"--agent {cfg.agent} learns in imagination from latent features, which --model {family} does "
                f"not give; families that do: {', '.join(usable)}"
            )
        return family


def agent_spec(name: str) -> AgentSpec:
    """The registered :class:`AgentSpec` of ``name`` (an unknown name lists the registered ones)."""
    spec = AGENTS.get(name)
    if not isinstance(spec, AgentSpec):
        raise TypeError(f"agent {name!r} is registered with {spec!r}, not an AgentSpec")
    return spec


def register_family(name: str, make: Any, *, features: bool = True, replace: bool = False) -> None:
    """Add a world-model family: ``make(obs_spec, action_spec, cfg)`` returns a
    :class:`worldmodels.models.base.WorldModelBase`. ``features``: its states give features an
    actor-critic can learn from, so ``--agent dreamer`` and ``--agent mpc`` accept it."""
    FAMILIES.register(name, make, replace=replace, features=features)


def register_agent(name: str, spec: Any, *, replace: bool = False) -> None:
    """Add an agent: ``spec`` is an :class:`worldmodels.agents.base.AgentSpec` (or its path)."""
    AGENTS.register(name, spec, replace=replace)


def register_planner(name: str, cls: Any, *, discrete: bool = False, replace: bool = False) -> None:
    """Add a planner class with ``from_config(action_dim, plan, low=, high=, horizon=)``;
    ``discrete``: it searches discrete actions (as MCTS does) instead of continuous sequences."""
    PLANNERS.register(name, cls, replace=replace, discrete=discrete)


def register_suite(name: str, make: Any, *, extra: str | None = None, replace: bool = False) -> None:
    """Add an env suite: ids ``name:task`` are made by ``make(task, **env_kwargs)``; ``extra``
    names the pip extra that installs what it needs (for the error when it is missing)."""
    SUITES.register(name, make, replace=replace, extra=extra, spelling=f"{name}:TASK")


_plugins_loaded = False


def load_plugins() -> None:
    """Call (or import) every ``worldmodels.plugins`` entry point once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            obj = ep.load()
        except Exception as err:  # a broken plugin must not take the CLI down with it
            import warnings

            warnings.warn(f"worldmodels plugin {ep.name!r} ({ep.value}) failed to load: {err}", stacklevel=2)
            continue
        if callable(obj):  # a register() function; a module registers on import
            obj()
