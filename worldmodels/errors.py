"""Errors that teach: each says what was expected, what came, and how to fix it.

The CLI prints these without a traceback and exits with status 2.
"""


class WorldModelsError(Exception):
    """Base of every error the library raises on bad input."""


class UnknownEnvError(WorldModelsError):
    pass


class UnsupportedSpaceError(WorldModelsError):
    pass


class CheckpointError(WorldModelsError):
    pass


class RunConfigError(WorldModelsError):
    pass


class ReplayWriteError(WorldModelsError):
    pass


class NonFiniteLossError(WorldModelsError):
    """A loss term became NaN or infinite; parameters were not updated with it."""


class PlannerConfigError(WorldModelsError, ValueError):
    """Planner settings that cannot work (elites > population, horizon 0, MCTS on continuous)."""


class PlanningError(WorldModelsError):
    """Planning could not pick an action, e.g. every candidate's score was NaN."""
