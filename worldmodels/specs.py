"""What the model sees and does: observation and action specs shared by envs, models and agents.

Kept free of torch so environment worker processes can import it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

# Observation keys the encoders understand: uint8 images (H, W, C) and float vectors (D,).
IMAGE, VECTOR = "image", "vector"
# Recorded beside the observations, never encoded: the episode's domain values (envs/domains.py).
DOMAIN = "domain"


@dataclass(frozen=True)
class ObsSpec:
    """Shapes of what the model sees: ``image`` ``(H, W, C)`` uint8 and/or ``vector`` ``(D,)``."""

    image: tuple[int, int, int] | None = None
    vector: int | None = None

    def keys(self) -> list[str]:
        return [k for k in (IMAGE, VECTOR) if getattr(self, k) is not None]


@dataclass(frozen=True)
class ActionSpec:
    """Actions as the model sees them: one-hot of ``dim`` classes, or ``dim`` values in [-1, 1]."""

    dim: int
    discrete: bool
