"""What the model sees and does: observation and action specs shared by envs, models and agents.

Kept free of torch so environment worker processes can import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

# Observation keys the encoders understand: uint8 images (H, W, C) and float vectors (D,).
IMAGE, VECTOR = "image", "vector"
# Recorded beside the observations, never encoded: the episode's domain values (envs/domains.py).
DOMAIN = "domain"
# Recorded beside the reward, aligned like it: the cost paid on arriving at a step (info["cost"]).
COST = "cost"


@dataclass(frozen=True)
class ObsSpec:
    """Shapes of what the model sees: ``image`` ``(H, W, C)`` uint8 and/or ``vector`` ``(D,)``;
    ``cost``: the env also charges a cost per step (Safety-Gymnasium's ``info["cost"]``), which the
    replay records beside the reward and families then predict (docs/DESIGN.md, "Costs")."""

    image: tuple[int, int, int] | None = None
    vector: int | None = None
    cost: bool = False

    def keys(self) -> list[str]:
        return [k for k in (IMAGE, VECTOR) if getattr(self, k) is not None]


@dataclass(frozen=True)
class ActionSpec:
    """Actions as the model sees them: one-hot of ``dim`` classes, or ``dim`` values in [-1, 1]."""

    dim: int
    discrete: bool
