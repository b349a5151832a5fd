"""The physical parameters of an env that a domain can change, and pushes on its bodies.

Two backends, found from ``env.unwrapped``:

- :class:`ClassicPhysics`: gymnasium's classic-control envs keep their physical constants as
  attributes (CartPole's ``masspole``, Pendulum's ``g``); the table :data:`CLASSIC` names them
  and the constants derived from them, and which state entry a push changes.
- :class:`MujocoPhysics`: any env holding a ``mujoco.MjModel`` (gymnasium's MuJoCo envs as
  ``unwrapped.model``, dm_control tasks through :class:`~worldmodels.envs.dmc.DMCEnv`'s
  ``mj_model``): masses, friction, damping, actuator gears, colours, lights, gravity and the
  timestep, addressed by the names the model gives its bodies, geoms, joints and actuators.

Values are set relative to the nominal ones read when the backend is made, never to the last
episode's: ``set_values`` restores every parameter first, so draws do not accumulate.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .domain_spec import DomainSpecError, ParamSpec


@dataclass(frozen=True)
class ClassicEnv:
    """What can change in one classic-control env: parameter name -> attribute, a hook that
    recomputes derived constants, and the state entry (a velocity) that a push changes (None:
    the env cannot be pushed)."""

    params: dict[str, str]
    push_index: int | None
    push_what: str
    derived: Callable[[Any], None] | None = None
    positive: bool = True  # the constants are masses, lengths, forces: absolute values must be > 0


def _cartpole_derived(env: Any) -> None:
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length


# LINK_LENGTH_2 is left out: gymnasium's Acrobot draws with it but its dynamics never read it.
_ACROBOT = {
    name.lower(): name
    for name in (
        "LINK_LENGTH_1", "LINK_MASS_1", "LINK_MASS_2", "LINK_COM_POS_1", "LINK_COM_POS_2", "LINK_MOI",
    )
}  # fmt: skip

# Keyed by the class name of ``env.unwrapped`` or of a class it derives from.
CLASSIC: dict[str, ClassicEnv] = {
    "CartPoleEnv": ClassicEnv(
        {k: k for k in ("gravity", "masscart", "masspole", "length", "force_mag", "tau")},
        push_index=3,
        push_what="the pole's angular velocity (rad/s)",
        derived=_cartpole_derived,
    ),
    "PendulumEnv": ClassicEnv({k: k for k in ("g", "m", "l", "dt")}, 1, "the angular velocity (rad/s)"),
    "MountainCarEnv": ClassicEnv({"force": "force", "gravity": "gravity"}, 1, "the car's velocity"),
    "Continuous_MountainCarEnv": ClassicEnv({"power": "power"}, 1, "the car's velocity"),
    "AcrobotEnv": ClassicEnv(_ACROBOT, 2, "the first link's angular velocity (rad/s)"),
}


class ClassicPhysics:
    """Physical constants of a gymnasium classic-control env (see :data:`CLASSIC`)."""

    def __init__(self, env: Any, table: ClassicEnv):
        self.env, self.table = env, table
        self.nominal = {name: float(getattr(env, attr)) for name, attr in table.params.items()}

    def names(self) -> list[str]:
        return list(self.table.params)

    def check(self, param: ParamSpec) -> None:
        kind = type(self.env).__name__
        if param.name not in self.table.params:
            raise DomainSpecError(f"{kind} has no parameter {param.name!r}; it has {', '.join(self.table.params)}")
        if param.target is not None:
            raise DomainSpecError(
                f"{kind}'s {param.name} is one number: write {param.name}=..., without [{param.target}]"
            )
        if self.table.positive and param.absolute and param.low <= 0:
            raise DomainSpecError(
                f"{kind}'s {param.name} is a positive physical constant (nominal {self.nominal[param.name]:g}); "
                f"got {param.text()}"
            )

    def set_values(self, values: list[tuple[ParamSpec, float]]) -> None:
        for name, attr in self.table.params.items():
            setattr(self.env, attr, self.nominal[name])
        for param, value in values:
            nominal = self.nominal[param.name]
            setattr(self.env, self.table.params[param.name], value if param.absolute else nominal * value)
        if self.table.derived is not None:
            self.table.derived(self.env)

    def check_push(self, target: str | None) -> None:
        kind = type(self.env).__name__
        if self.table.push_index is None:
            raise DomainSpecError(f"{kind} names no state entry a push changes (push_index), so it cannot be pushed")
        if target is not None:
            raise DomainSpecError(f"push[{target}]: bodies are named only in MuJoCo envs; {kind} takes push=SIZE@PROB")

    def push_directions(self, rng: np.random.Generator, count: int) -> list[np.ndarray]:
        """``count`` candidate directions, the first one random: here signs, so from two on
        both of them (a random one, then the other)."""
        first = float(rng.choice((-1.0, 1.0)))
        return [np.array([first])] if count < 2 else [np.array([first]), np.array([-first])]

    def push(self, size: float, target: str | None, direction: np.ndarray) -> None:
        """Add ``size`` along ``direction`` (a sign) to the pushed velocity of the env's state
        (before its next step)."""
        state = np.array(self.env.state, dtype=np.float64)
        state[self.table.push_index] += size * float(direction[0])
        self.env.state = state

    _PLAIN = (int, float, bool, str, np.ndarray, np.generic, tuple, list, type(None))

    def snapshot(self) -> Any:
        """What :meth:`restore` needs to undo a step: every plain attribute of the env (its state,
        step counters, last inputs) and its generator's state; renderers and the like stay."""
        kept = {k: copy.deepcopy(v) for k, v in vars(self.env).items() if isinstance(v, self._PLAIN)}
        return kept, copy.deepcopy(self.env.np_random.bit_generator.state)

    def restore(self, snapshot: Any) -> None:
        kept, generator = snapshot
        for key, value in kept.items():
            setattr(self.env, key, copy.deepcopy(value))
        self.env.np_random.bit_generator.state = generator

    def release(self) -> None:
        """A classic push is a change of state: nothing to take back after the step."""


@dataclass(frozen=True)
class MujocoField:
    """A MuJoCo model array a parameter scales: the kind of object that names its rows (a
    ``mujoco.mjtObj`` name), the array, and the columns changed (None: all)."""

    obj: str | None
    array: str
    columns: slice | None = None
    clip: tuple[float, float] | None = None


MUJOCO: dict[str, MujocoField] = {
    "body_mass": MujocoField("mjOBJ_BODY", "body_mass"),
    "geom_friction": MujocoField("mjOBJ_GEOM", "geom_friction"),
    "dof_damping": MujocoField("mjOBJ_JOINT", "dof_damping"),
    "actuator_gear": MujocoField("mjOBJ_ACTUATOR", "actuator_gear", slice(0, 1)),
    "geom_rgba": MujocoField("mjOBJ_GEOM", "geom_rgba", slice(0, 3), clip=(0.0, 1.0)),
    "light_diffuse": MujocoField("mjOBJ_LIGHT", "light_diffuse", clip=(0.0, 1.0)),
    "gravity": MujocoField(None, "gravity"),
    "timestep": MujocoField(None, "timestep"),
}
# Absolute values below these are not physical: (bound, whether the bound itself is allowed).
_LOWEST = {
    "body_mass": (0.0, False),
    "geom_friction": (0.0, True),
    "dof_damping": (0.0, True),
    "gravity": (0.0, True),
    "timestep": (0.0, False),
    "geom_rgba": (0.0, True),
    "light_diffuse": (0.0, True),
}
_OBJECT_WORD = {
    "mjOBJ_BODY": "body",
    "mjOBJ_GEOM": "geom",
    "mjOBJ_JOINT": "joint",
    "mjOBJ_ACTUATOR": "actuator",
    "mjOBJ_LIGHT": "light",
}
_PLURAL = {"body": "bodies"}
_COUNT = {
    "mjOBJ_BODY": "nbody",
    "mjOBJ_GEOM": "ngeom",
    "mjOBJ_JOINT": "njnt",
    "mjOBJ_ACTUATOR": "nu",
    "mjOBJ_LIGHT": "nlight",
}


def _plural(word: str) -> str:
    return _PLURAL.get(word, word + "s")


def mujoco_model(env: Any) -> tuple[Any, Any, float] | None:
    """``(MjModel, MjData, seconds per env step)`` of a MuJoCo env, or None for any other env."""
    try:
        import mujoco
    except ImportError:  # pragma: no cover - mujoco is a core dependency
        return None
    model = getattr(env, "model", None)
    if isinstance(model, mujoco.MjModel):  # gymnasium's MujocoEnv
        return model, env.data, float(getattr(env, "dt", model.opt.timestep))
    handles = getattr(env, "mujoco_handles", None)  # DMCEnv
    if callable(handles):
        return handles()
    return None


class MujocoPhysics:
    """Parameters of a MuJoCo model (see :data:`MUJOCO`), with pushes through ``xfrc_applied``.

    ``body_mass`` scales a body's inertia with its mass (the same shape, denser), so its
    rotation responds like a heavier body's would; ``dof_damping[joint]`` changes every degree of
    freedom of the joint; ``gravity==g`` sets the magnitude and keeps the direction."""

    def __init__(self, model: Any, data: Any, dt: float, steppable: bool = True):
        import mujoco

        self.mujoco, self.model, self.data, self.dt = mujoco, model, data, dt
        self.steppable = steppable  # env.unwrapped.step may be called between snapshot and restore
        self.substeps = max(1, round(dt / float(model.opt.timestep)))  # physics steps per env step
        self.nominal = {name: np.array(self._array(f), copy=True) for name, f in MUJOCO.items()}
        self.nominal["body_inertia"] = np.array(model.body_inertia, copy=True)
        self._pushed: int | None = None

    def _array(self, field: MujocoField) -> np.ndarray:
        if field.array == "gravity":
            return self.model.opt.gravity
        if field.array == "timestep":
            return np.array([self.model.opt.timestep])
        return getattr(self.model, field.array)

    def names(self) -> list[str]:
        return list(MUJOCO)

    def _object_names(self, obj: str) -> list[str]:
        kind = getattr(self.mujoco.mjtObj, obj)
        count = getattr(self.model, _COUNT[obj])
        return [self.mujoco.mj_id2name(self.model, kind, i) or f"#{i}" for i in range(count)]

    def _rows(self, param: ParamSpec) -> np.ndarray | slice:
        """The rows of the parameter's array its target addresses (all rows without one)."""
        field = MUJOCO[param.name]
        if field.obj is None:
            return slice(None)
        if param.target is None:
            return slice(1, None) if param.name == "body_mass" else slice(None)  # never the world body
        index = self.mujoco.mj_name2id(self.model, getattr(self.mujoco.mjtObj, field.obj), param.target)
        if index < 0:
            names = [n for n in self._object_names(field.obj) if n and n != "world"]
            raise DomainSpecError(
                f"the model has no {_OBJECT_WORD[field.obj]} named {param.target!r} ({param.key}); "
                f"its {_plural(_OBJECT_WORD[field.obj])}: {', '.join(names) or 'none'}"
            )
        if field.obj == "mjOBJ_JOINT":
            start = int(self.model.jnt_dofadr[index])
            end = int(self.model.jnt_dofadr[index + 1]) if index + 1 < self.model.njnt else self.model.nv
            return np.arange(start, end)
        return np.array([index])

    def check(self, param: ParamSpec) -> None:
        if param.name not in MUJOCO:
            raise DomainSpecError(f"MuJoCo models have no parameter {param.name!r}; they have {', '.join(MUJOCO)}")
        field = MUJOCO[param.name]
        if field.obj is None and param.target is not None:
            raise DomainSpecError(f"{param.name} belongs to the whole model: write {param.name}=..., without a target")
        low = _LOWEST.get(param.name)
        if param.absolute and low is not None and (param.low < low[0] or (param.low == low[0] and not low[1])):
            bound = f">= {low[0]:g}" if low[1] else f"> {low[0]:g}"
            raise DomainSpecError(f"{param.key} must be {bound}, got {param.text()}")
        if field.obj is not None and getattr(self.model, _COUNT[field.obj]) == 0:
            raise DomainSpecError(f"{param.key}: the model has no {_plural(_OBJECT_WORD[field.obj])}")
        self._rows(param)  # raises for unknown names

    def set_values(self, values: list[tuple[ParamSpec, float]]) -> None:
        for name, field in MUJOCO.items():
            self._array(field)[...] = self.nominal[name]
        self.model.body_inertia[...] = self.nominal["body_inertia"]
        self.model.opt.timestep = float(self.nominal["timestep"][0])
        for param, value in values:
            self._set(param, value)
        self.mujoco.mj_setConst(self.model, self.data)  # subtree masses and other derived constants

    def _set(self, param: ParamSpec, value: float) -> None:
        field, rows = MUJOCO[param.name], self._rows(param)
        if param.name == "timestep":
            base = float(self.nominal["timestep"][0])
            self.model.opt.timestep = value if param.absolute else base * value
            return
        if param.name == "gravity":
            nominal = self.nominal["gravity"]
            norm = float(np.linalg.norm(nominal)) or 1.0
            self.model.opt.gravity[:] = nominal / norm * value if param.absolute else nominal * value
            return
        array = self._array(field)
        nominal = self.nominal[param.name][rows]
        new = np.array(nominal, copy=True)
        cols = (slice(None), field.columns) if field.columns is not None else ...
        new[cols] = value if param.absolute else nominal[cols] * value
        if field.clip is not None:
            new = np.clip(new, *field.clip)
        array[rows] = new
        if param.name == "body_mass":  # the same shape, denser: inertia scales with mass
            base = self.nominal["body_mass"][rows]
            ratio = np.divide(new, base, out=np.ones_like(new), where=base > 0)
            self.model.body_inertia[rows] = self.nominal["body_inertia"][rows] * ratio[..., None]

    def push_directions(self, rng: np.random.Generator, count: int) -> list[np.ndarray]:
        """``count`` candidate directions, the first one random: random horizontal ones for a
        free-floating model; otherwise ±x (planar models move in x), so from two on both ways."""
        if self.model.njnt and int(self.model.jnt_type[0]) == int(self.mujoco.mjtJoint.mjJNT_FREE):
            angles = rng.uniform(0.0, 2 * np.pi, count)
            return [np.array([np.cos(a), np.sin(a), 0.0]) for a in angles]
        first = float(rng.choice((-1.0, 1.0)))
        signs = [first] if count < 2 else [first, -first]
        return [np.array([sign, 0.0, 0.0]) for sign in signs]

    def push(self, size: float, target: str | None, direction: np.ndarray) -> None:
        """Change ``target``'s velocity (default: the first body below the world) by ``size``
        m/s along ``direction`` over the next env step: a force of size x subtree mass / step time."""
        body = 1
        if target is not None:
            body = self.mujoco.mj_name2id(self.model, self.mujoco.mjtObj.mjOBJ_BODY, target)
        mass = float(self.model.body_subtreemass[body])
        dt = self.substeps * float(self.model.opt.timestep)  # the env step's length, randomised timestep included
        self.data.xfrc_applied[body, :3] = np.asarray(direction) * size * mass / dt
        self._pushed = body

    def snapshot(self) -> Any:
        """The full physics state (``mj_getState``), to undo a looked-ahead step."""
        if not self.steppable:
            raise DomainSpecError(
                "adversarial pushes look one step ahead in the simulator, which dm_control tasks do not allow "
                "from outside; use gymnasium's MuJoCo envs or random pushes"
            )
        spec = self.mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(self.mujoco.mj_stateSize(self.model, spec))
        self.mujoco.mj_getState(self.model, self.data, state, spec)
        return state

    def restore(self, snapshot: Any) -> None:
        self.mujoco.mj_setState(self.model, self.data, snapshot, self.mujoco.mjtState.mjSTATE_INTEGRATION)
        self.mujoco.mj_forward(self.model, self.data)

    def release(self) -> None:
        if self._pushed is not None:
            self.data.xfrc_applied[self._pushed, :3] = 0.0
            self._pushed = None

    def check_push(self, target: str | None) -> None:
        if target is not None and self.mujoco.mj_name2id(self.model, self.mujoco.mjtObj.mjOBJ_BODY, target) < 0:
            names = [n for n in self._object_names("mjOBJ_BODY") if n and n != "world"]
            raise DomainSpecError(f"the model has no body named {target!r} to push; its bodies: {', '.join(names)}")


def declared(env: Any) -> ClassicEnv | None:
    """The constants an env declares itself: ``domain_parameters`` (name -> attribute) and
    optionally ``push_index`` (the entry of ``env.state`` a push changes), class attributes that
    make any gymnasium env with constants in attributes randomisable."""
    params = getattr(env, "domain_parameters", None)
    if not params:
        return None
    return ClassicEnv(dict(params), getattr(env, "push_index", None), "its declared push entry", positive=False)


def physics_of(env: Any) -> ClassicPhysics | MujocoPhysics | None:
    """The backend for ``env`` (any wrapper of it), or None when neither knows the env."""
    inner = env.unwrapped
    # Through the MRO, so a subclass of a known env (safe:CartPoleZone's CartPole) has its constants.
    known = (CLASSIC[cls.__name__] for cls in type(inner).__mro__ if cls.__name__ in CLASSIC)
    table = declared(inner) or next(known, None)
    if table is not None:
        return ClassicPhysics(inner, table)
    handles = mujoco_model(inner)
    if handles is not None:
        return MujocoPhysics(*handles, steppable=getattr(inner, "model", None) is handles[0])
    return None


def no_physics_error(env: Any, what: str) -> DomainSpecError:
    name = env.spec.id if getattr(env, "spec", None) else type(env.unwrapped).__name__
    known = ", ".join(k.removesuffix("Env") for k in CLASSIC)
    return DomainSpecError(
        f"{what} needs an env whose physics worldmodels can change; {name} is neither a MuJoCo env nor one of "
        f"the classic-control envs it knows ({known}), and declares no domain_parameters (a class attribute "
        "mapping names to the attributes holding its constants). Visual parameters (visual.*) work on any env "
        "that renders."
    )
