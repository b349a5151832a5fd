"""The one small grammar of ``--randomize``, ``--set`` and ``--vary``.

A spec is a comma-separated list of ``NAME=VALUES`` items::

    body_mass[pole]=0.5:2.0        # 0.5x to 2x the nominal pole mass (log-uniform per episode)
    masspole==0.05:0.2             # '==': absolute values, uniform per episode
    dof_damping=1.5                # one value (--set): 1.5x the nominal damping of every joint
    length=0.25:4:9                # --vary: 9 grid points from 0.25x to 4x (geometric)
    visual.hue=-0.2:0.2            # visual parameters are the transform's own values

``=`` multiplies the env's nominal value (a *scale*: it must be positive, and ranges of scales
are drawn log-uniformly, so that 0.5x and 2x are equally likely); ``==`` gives the value itself
(drawn uniformly). ``NAME[TARGET]`` addresses one named body, geom, joint, actuator or light of
a MuJoCo model; without a target a MuJoCo parameter applies to all of them at once. Visual
parameters (``visual.*``) have no nominal value to multiply: their values are always absolute.

This module only parses and prints; what a name means for a given env is envs/physics.py's and
envs/visual.py's business.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..errors import WorldModelsError

VISUAL_PREFIX = "visual."

_ITEM = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_.]*)(?:\[(?P<target>[^\]]+)\])?(?P<op>==|=)(?P<value>.+)$")


class DomainSpecError(WorldModelsError, ValueError):
    """A ``--randomize`` / ``--set`` / ``--vary`` / ``--disturb`` spec that does not parse or fit."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a domain: ``name[target]`` between ``low`` and ``high`` (equal for a fixed
    value), as a scale of the nominal value or (``absolute``) as the value itself; ``points``
    grid points for ``--vary`` (0 otherwise)."""

    name: str
    target: str | None
    low: float
    high: float
    absolute: bool
    points: int = 0

    @property
    def key(self) -> str:
        """``name[target]``, or ``name``: what the parameter is called in metrics and grids."""
        return f"{self.name}[{self.target}]" if self.target is not None else self.name

    @property
    def visual(self) -> bool:
        return self.name.startswith(VISUAL_PREFIX)

    @property
    def scale(self) -> bool:
        """Values multiply the nominal one (log-uniform draws, geometric grids)."""
        return not self.absolute and not self.visual

    @property
    def fixed(self) -> bool:
        return self.low == self.high

    def text(self) -> str:
        """The item back in the grammar (``parse_params(p.text())`` gives ``p`` again)."""
        values = (
            [number_text(self.low)]
            if self.fixed and not self.points
            else [number_text(self.low), number_text(self.high)]
        )
        if self.points:
            values.append(str(self.points))
        return f"{self.key}{'==' if self.absolute else '='}{':'.join(values)}"

    def sample(self, rng: np.random.Generator) -> float:
        """One draw for an episode: log-uniform for scales, uniform otherwise."""
        if self.fixed:
            return self.low
        if self.scale:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def grid(self) -> list[float]:
        """The ``points`` values of ``--vary``: geometric for scales, evenly spaced otherwise."""
        n = max(self.points, 1)
        space = np.geomspace if self.scale else np.linspace
        return [float(v) for v in space(self.low, self.high, n)] if n > 1 else [self.low]

    def at(self, value: float) -> ParamSpec:
        """This parameter fixed at ``value`` (one cell of a grid)."""
        return ParamSpec(self.name, self.target, float(value), float(value), self.absolute)


def number_text(x: float) -> str:
    """A number as the grammar writes it: ``2`` for 2.0, ``0.05`` for 0.05."""
    return repr(float(x)).removesuffix(".0") if float(x).is_integer() else repr(float(x))


def parse_number(text: str, item: str, flag: str) -> float:
    """``text`` as a finite float, or a :class:`DomainSpecError` naming the item and the flag."""
    try:
        value = float(text)
    except ValueError:
        raise DomainSpecError(f"{flag} {item!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DomainSpecError(f"{flag} {item!r}: values must be finite numbers, got {text!r}")
    return value


def parse_params(text: str, *, flag: str = "--randomize", mode: str = "range") -> list[ParamSpec]:
    """Parse a spec. ``mode``: ``range`` (``--randomize``: a value or ``lo:hi``), ``value``
    (``--set``: one value each) or ``grid`` (``--vary``: ``lo:hi:n`` each, at most two)."""
    if mode not in ("range", "value", "grid"):
        raise ValueError(f"mode must be range, value or grid, got {mode!r}")
    out: list[ParamSpec] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        match = _ITEM.match(item)
        if match is None:
            raise DomainSpecError(
                f"{flag} {item!r} is not NAME=VALUES; write e.g. masspole=0.5:2.0 (scales of the nominal value), "
                "masspole==0.05:0.2 (absolute values) or body_mass[pole]=0.5:2.0 (one named body)"
            )
        name, target, op, value = match["name"], match["target"], match["op"], match["value"]
        absolute = op == "=="
        parts = value.split(":")
        numbers = [parse_number(p, item, flag) for p in parts]
        points = 0
        if mode == "grid":
            if len(parts) != 3:
                raise DomainSpecError(f"{flag} {item!r}: give LOW:HIGH:POINTS, e.g. {name}=0.25:4:9")
            count = numbers.pop()
            if not count.is_integer() or count < 2:
                raise DomainSpecError(f"{flag} {item!r}: the number of grid points must be an integer >= 2")
            points = int(count)
        elif mode == "value" and len(parts) != 1:
            raise DomainSpecError(f"{flag} {item!r}: --set takes one value per parameter, e.g. {name}=2.0")
        elif len(parts) > 2:
            raise DomainSpecError(f"{flag} {item!r}: give one value or LOW:HIGH (grids of LOW:HIGH:N are for --vary)")
        low, high = numbers[0], numbers[-1]
        if low > high:
            raise DomainSpecError(
                f"{flag} {item!r}: the low end {number_text(low)} is above the high end {number_text(high)}"
            )
        param = ParamSpec(name, target, low, high, absolute, points)
        if param.scale and low <= 0:
            raise DomainSpecError(
                f"{flag} {item!r}: '=' values are scales of the nominal value and must be > 0; for absolute values "
                f"write {param.key}=={value}"
            )
        if any(p.key == param.key for p in out):
            raise DomainSpecError(f"{flag}: {param.key} is given twice")
        out.append(param)
    if mode == "grid" and len(out) > 2:
        raise DomainSpecError(
            f"{flag} takes one or two parameters (a curve or a heatmap), got {len(out)}: "
            f"{', '.join(p.key for p in out)}; fix the others with --set"
        )
    return out


def format_params(params: list[ParamSpec]) -> str:
    """The spec text of ``params`` (the inverse of :func:`parse_params`)."""
    return ",".join(p.text() for p in params)
