"""One writer per run folder: ``RUN/lock`` held with ``flock`` while a process trains the run.

Why flock: the kernel drops the lock when its process dies, however it dies (``kill -9``, OOM,
power), so a lock is never stale in the sense of still blocking; the file's contents (process
id, host, start time) only name the holder in the error, and a file left by a dead process is
taken over with a warning.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import warnings
from pathlib import Path

from ..errors import RunConfigError, RunLockedError, os_error_text

NAME = "lock"


class RunLock:
    """``with RunLock(run_dir):`` or ``acquire()`` / ``release()``; refuses while another live process holds it."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / NAME
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        if self.fd is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise RunConfigError(f"cannot write the run folder {self.path.parent}: {os_error_text(err)}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _describe(_read(fd))
            os.close(fd)
            raise RunLockedError(
                f"{self.path.parent} is being written by another process ({holder}). Wait for it to finish or "
                f"stop it (Ctrl-C saves it), then `wm train --resume {self.path.parent}`; to train a copy, "
                "use another --logdir."
            ) from None
        before = _read(fd)
        if before:
            warnings.warn(
                f"took over the lock of {self.path.parent} from {_describe(before)}, which is no longer running "
                "(it stopped without releasing it)",
                stacklevel=2,
            )
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(mine).encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)  # an empty file: nobody holds it; the next writer takes it silently
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {"pid": "?", "host": "?", "since": "?"}


def _describe(holder: dict) -> str:
    if not holder:
        return "a process that has not written its name yet"
    return f"process {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')}"
