"""Atomic checkpoints that load without executing code (``torch.load(weights_only=True)``).

A checkpoint holds the agent's parameters and buffers, its optimisers, the run counters, every
RNG state and the resolved config. It is written to a temp file, fsynced and renamed over the
old one; the previous checkpoint is kept beside it as ``checkpoint.prev.pt``.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError

NAME, PREV = "checkpoint.pt", "checkpoint.prev.pt"


def rng_state(np_rng: np.random.Generator) -> dict[str, Any]:
    cuda = {"torch_cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_initialized() else {}
    return {
        **cuda,
        "torch": torch.get_rng_state(),
        "numpy": np_rng.bit_generator.state,
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
    }


def set_rng_state(state: dict[str, Any], np_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"].cpu())  # loaded with map_location, it may sit on a GPU
    cuda = state.get("torch_cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    np_rng.bit_generator.state = state["numpy"]
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))


def save(run_dir: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically as ``run_dir/checkpoint.pt``; keep the previous one."""
    path, tmp = run_dir / NAME, run_dir / (NAME + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        os.replace(path, run_dir / PREV)
    os.replace(tmp, path)
    return path


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file onto ``map_location`` (tensors saved on any device), or raise
    :class:`CheckpointError` saying what to do."""
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; train first (`wm train --logdir {path.parent}`)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        prev = path.parent / PREV
        hint = (
            f" The previous checkpoint {prev} exists: `mv {prev} {path}` to go back to it."
            if prev.exists() and prev != path
            else " Delete it to start the run over (its replay is kept and reloaded)."
        )
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {err}).{hint}"
        ) from err


def load_agent_state(agent: torch.nn.Module, ckpt: dict[str, Any], path: Path) -> None:
    """``agent.load_state_dict`` that says which weights do not fit, instead of a traceback: a
    checkpoint written by another version of the library, or with other model sizes."""
    own, saved = agent.state_dict(), ckpt["agent"]

    def names(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    problems = {
        "missing": [k for k in own if k not in saved],
        "not in this agent": [k for k in saved if k not in own],
        "other shapes": [k for k in own if k in saved and own[k].shape != saved[k].shape],
    }
    found = "; ".join(f"{what}: {names(keys)}" for what, keys in problems.items() if keys)
    if found:
        raise CheckpointError(
            f"the weights in {path} do not fit the agent its config.json describes ({found}). It was "
            "written by another version of worldmodels, or its config.json was edited: use the version "
            "that trained it, or train the run again."
        )
    agent.load_state_dict(saved)
