"""Atomic checkpoints that load without executing code (``torch.load(weights_only=True)``).

A checkpoint holds the agent's parameters and buffers, its optimisers, the run counters, every
RNG state and the resolved config, stamped with the checkpoint :data:`FORMAT` and the package
version that wrote it. It is written to a temp file, fsynced and renamed over the old one; the
previous checkpoint is kept beside it as ``checkpoint.prev.pt``.

After torch's zip archive comes a 20-byte trailer: a CRC-32 of the archive and its length. Why:
the archive's own structure catches truncation and most damage, but a flipped bit inside a
tensor's bytes loads without complaint as a silently wrong weight; the CRC refuses it. (The zip
reader ignores bytes after the archive, so ``torch.load`` reads the file as it is.)
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..errors import CheckpointError, os_error_text

NAME, PREV = "checkpoint.pt", "checkpoint.prev.pt"
TMP = NAME + ".tmp"  # written, fsynced, then renamed over NAME
# The checkpoint layout's version: bump it when what `save` writes can no longer be read the old way.
# 1: checkpoints without a "format" key (before it was recorded); 2: "format" and "version" added.
FORMAT = 2
TRAILER = b"WMCKSUM1"  # then <I crc32 <Q archive length
TRAILER_SIZE = len(TRAILER) + 12
# What every checkpoint holds (agents add their own keys beside these).
KEYS = ("agent", "optimizers", "counters", "rng", "config")


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
    """Write ``payload`` atomically as ``run_dir/checkpoint.pt``, stamped with the checkpoint
    :data:`FORMAT` and the package version; keep the previous one as ``checkpoint.prev.pt``.

    A failed write (a full or read-only disk) removes its temp file, leaves the existing checkpoint
    as it was and raises :class:`CheckpointError` saying how to resume.
    """
    path, tmp, prev = run_dir / NAME, run_dir / TMP, run_dir / PREV
    payload = {**payload, "format": FORMAT, "version": __version__}
    try:
        tmp.unlink(missing_ok=True)  # a stale one, from a save a kill cut short
        with open(tmp, "w+b") as f:
            torch.save(payload, f)
            f.flush()
            length = f.tell()
            f.seek(0)
            crc = _crc(f, length)
            f.seek(length)
            f.write(TRAILER + struct.pack("<IQ", crc, length))
            f.flush()
            os.fsync(f.fileno())
    except BaseException as err:
        _remove(tmp)
        if isinstance(err, OSError):
            raise _write_error(path, err) from err
        raise
    try:
        if path.exists():
            # The old checkpoint becomes the previous one by a second name, not a move, so that
            # checkpoint.pt exists at every instant: a kill between two renames leaves a run
            # that resumes from its newest checkpoint, never from none.
            prev_tmp = run_dir / (PREV + ".tmp")
            _remove(prev_tmp)
            try:
                os.link(path, prev_tmp)
            except OSError:  # a file system without hard links
                shutil.copyfile(path, prev_tmp)
            os.replace(prev_tmp, prev)
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        _remove(run_dir / (PREV + ".tmp"))
        raise _write_error(path, err) from err
    _fsync_dir(run_dir)
    return path


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _fsync_dir(directory: Path) -> None:
    """Make the renames durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_error(path: Path, err: OSError) -> CheckpointError:
    kept = (
        f"the last checkpoint {path} is kept as it was"
        if path.exists()
        else f"no checkpoint was written (a previous one, if any, is {path.parent / PREV})"
    )
    return CheckpointError(
        f"could not write the checkpoint {path}: {os_error_text(err)}. Nothing was half-written: {kept}. "
        f"Fix that, then continue with `wm train --resume {path.parent}`."
    )


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file onto ``map_location`` (tensors saved on any device), or raise
    :class:`CheckpointError` saying what to do: for a missing, unreadable, corrupt or truncated
    file, one that is not a checkpoint, or one in another :data:`FORMAT`."""
    path = Path(path)
    prev = path.parent / PREV
    if not path.exists():
        if prev.exists() and prev != path:
            raise CheckpointError(
                f"no checkpoint at {path}, but the previous one {prev} is there (a save was cut short): "
                f"`mv {prev} {path}` to continue from it."
            )
        raise CheckpointError(f"no checkpoint at {path}; train first (`wm train --logdir {path.parent}`)")
    hint = (
        f" The previous checkpoint {prev} exists: `mv {prev} {path}` to go back to it."
        if prev.exists() and prev != path
        else " Delete it to start the run over (its replay is kept and reloaded)."
    )
    try:
        f = open(path, "rb")
    except OSError as err:
        raise CheckpointError(f"cannot read the checkpoint {path}: {os_error_text(err)}.") from err
    try:
        with f:
            _verify_checksum(f, path, hint)
            ckpt = torch.load(f, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except Exception as err:  # garbage makes the unpickler raise almost anything; all mean the same
        text = str(err).splitlines()[0][:300] if str(err) else ""
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(err).__name__}: {text}).{hint}"
        ) from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a checkpoint: it holds a {type(ckpt).__name__}, not the dict "
            f"`wm train` writes.{hint}"
        )
    check_format(ckpt, path)
    missing = [k for k in KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a checkpoint: it lacks {', '.join(map(repr, missing))} "
            f"(a checkpoint holds {', '.join(KEYS)}).{hint}"
        )
    return ckpt


def _crc(f, length: int) -> int:
    crc, left = 0, length
    while left:
        block = f.read(min(left, 1 << 22))
        if not block:
            break
        crc, left = zlib.crc32(block, crc), left - len(block)
    return crc


def _verify_checksum(f, path: Path, hint: str) -> None:
    """Check the trailer's CRC where there is one (a file written by ``torch.save`` alone has none),
    then rewind ``f`` for ``torch.load``."""
    size = f.seek(0, os.SEEK_END)
    if size >= TRAILER_SIZE:
        f.seek(size - TRAILER_SIZE)
        tail = f.read(TRAILER_SIZE)
        if tail.startswith(TRAILER):
            crc, length = struct.unpack("<IQ", tail[len(TRAILER) :])
            f.seek(0)
            if length != size - TRAILER_SIZE or _crc(f, length) != crc:
                raise CheckpointError(
                    f"checkpoint {path} is damaged: its checksum does not match its contents (a disk or copy "
                    f"error changed some bytes).{hint}"
                )
    f.seek(0)


def check_format(ckpt: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint of another :data:`FORMAT`, naming the version that wrote it and this one."""
    fmt = ckpt.get("format", 1)  # checkpoints written before formats were recorded are format 1
    if type(fmt) is int and fmt == FORMAT:
        return
    version = ckpt.get("version")
    written = f"worldmodels {version}" if isinstance(version, str) and version else None
    if written is None:
        written = "a worldmodels version from before checkpoint formats were recorded (it has no version stamp)"
        use = "the worldmodels version (or checkout) that trained it"
    else:
        use = f"that version (`pip install worldmodels=={version}`)"
    shown = fmt if type(fmt) is int else repr(fmt)[:40]
    raise CheckpointError(
        f"checkpoint {path} is in format {shown}, written by {written}; this is worldmodels {__version__}, "
        f"which reads format {FORMAT}. Load or resume it with {use}, or train the run again with this one "
        f"(`wm train --logdir NEW_FOLDER` with the settings in {path.parent / 'config.json'})."
    )


def load_agent_state(
    agent: torch.nn.Module,
    ckpt: dict[str, Any],
    path: Path,
    optional: tuple[str, ...] = (),
    advice: str = "It was written by another version of worldmodels, or its config.json was edited: use the "
    "version that trained it, or train the run again.",
) -> None:
    """``agent.load_state_dict`` that says which weights do not fit, and ``advice``, instead of a
    traceback. Weights whose names start with one of ``optional`` need not be in the checkpoint,
    nor fit: where they do not, the agent keeps its own (fine-tuning adds or drops the prior heads
    of the offline penalty)."""
    own, saved = agent.state_dict(), ckpt["agent"]
    if optional:
        kept = {k: v for k, v in saved.items() if not k.startswith(optional)}
        for k, v in own.items():
            if k.startswith(optional):
                kept[k] = saved[k] if k in saved and saved[k].shape == v.shape else v
        saved = kept

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
            f"the weights in {path} do not fit the agent its config.json describes ({found}). {advice}"
        )
    agent.load_state_dict(saved)
