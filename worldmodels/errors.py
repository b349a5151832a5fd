"""Errors that teach: each says what was expected, what came, and how to fix it.

The CLI prints these without a traceback and exits with status 2.
"""

import errno


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


class CostError(WorldModelsError):
    """An env that should charge a cost (``info["cost"]``) charged none, or a non-finite one."""


class NonFiniteLossError(WorldModelsError):
    """A loss term became NaN or infinite; parameters were not updated with it."""


class PlannerConfigError(WorldModelsError, ValueError):
    """Planner settings that cannot work (elites > population, horizon 0, MCTS on continuous)."""


class PlanningError(WorldModelsError):
    """Planning could not pick an action, e.g. every candidate's score was NaN."""


class DatasetError(WorldModelsError):
    """A dataset that cannot be read or used: not found, no episodes, spaces that do not match."""


class RunLockedError(WorldModelsError):
    """Another live process is writing the run folder."""


def os_error_text(err: OSError) -> str:
    """What an ``OSError`` from writing a run folder means and how to fix it, in words."""
    where = f" ({err.filename})" if err.filename else ""
    reasons = {
        getattr(errno, "EDQUOT", errno.ENOSPC): "the disk quota is used up: free some space",
        errno.ENOSPC: "the disk is full: free some space",
        errno.EROFS: "the file system is read-only: choose a folder on a writable disk",
        errno.EACCES: "permission denied: make the folder writable (chmod u+w) or choose another",
        errno.EPERM: "permission denied: make the folder writable (chmod u+w) or choose another",
        errno.EEXIST: "a file of that name is in the way: choose a folder name that is not a file",
        errno.ENOTDIR: "a part of the path is a file, not a folder: choose a path made of folders",
        errno.EISDIR: "a folder is in the way of a file: move it aside",
        errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
    }
    reason = reasons.get(err.errno, err.strerror or str(err))
    return f"{reason}{where}"
