"""Planners that never see a model (docs/DESIGN.md): CEM and MPPI optimise a callable objective
``actions (N, H, A) -> scores (N,)``; MCTS searches with step / value / prior callables."""

from .cem import CEM
from .mcts import MCTS
from .mppi import MPPI
from .shooting import ShootingPlanner

__all__ = ["CEM", "MCTS", "MPPI", "ShootingPlanner"]
