"""On-disk replay: experience is written in compressed chunks as it is collected, reloaded on start.

Each environment is a *stream* with its own ring buffer of ``capacity // streams`` steps, so a
stream's steps stay contiguous and a sampled sequence never mixes two environments. Sequences
may cross episode boundaries; ``is_first`` tells the model where to reset its state.

Files: ``DIR/chunk-{counter:09d}-s{stream}.npz``, written to a temp name and renamed, in
collection order. A crash loses at most the chunks still being filled.
"""

from __future__ import annotations

import errno
import os
import shutil
import warnings
import zipfile
from collections import deque
from pathlib import Path

import numpy as np

from ..errors import ReplayWriteError

# Keys every step carries besides the observations (see docs/DESIGN.md for their time alignment).
STEP_KEYS = ("action", "reward", "is_first", "is_terminal", "is_last")


def step_bytes(obs_spec, action_spec) -> int:
    """Bytes one stored step takes: uint8 image, float32 vector, action and reward, 3 flags."""
    image = 0 if obs_spec.image is None else int(np.prod(obs_spec.image))
    vector = 0 if obs_spec.vector is None else 4 * obs_spec.vector
    return image + vector + 4 * action_spec.dim + 4 + 3


class _Ring:
    """One stream's steps in preallocated arrays, oldest overwritten first."""

    def __init__(self, capacity: int):
        self.capacity, self.size, self.head = capacity, 0, 0  # head: next write position
        self.data: dict[str, np.ndarray] = {}

    def add(self, step: dict[str, np.ndarray]) -> None:
        if not self.data:
            self.data = {k: np.zeros((self.capacity, *np.shape(v)), np.asarray(v).dtype) for k, v in step.items()}
        for k, v in step.items():
            self.data[k][self.head] = v
        self.head = (self.head + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def extend(self, arrays: dict[str, np.ndarray]) -> None:
        """Add ``n`` steps at once (``(n, ...)`` arrays), as ``n`` calls of :meth:`add` would."""
        n = len(next(iter(arrays.values())))
        if n == 0:
            return
        if not self.data:
            self.add({k: v[0] for k, v in arrays.items()})
            arrays = {k: v[1:] for k, v in arrays.items()}
            n -= 1
        keep = min(n, self.capacity)  # only the newest `capacity` steps survive
        idx = (self.head + (n - keep) + np.arange(keep)) % self.capacity
        for k, v in arrays.items():
            self.data[k][idx] = v[n - keep :]
        self.head = (self.head + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def indices(self, start: int, length: int) -> np.ndarray:
        """Physical indices of logical positions ``start .. start+length`` (0 = oldest)."""
        oldest = (self.head - self.size) % self.capacity
        return (oldest + start + np.arange(length)) % self.capacity


class ReplayStore:
    def __init__(self, directory: str | os.PathLike | None, *, capacity: int, streams: int, chunk: int = 256):
        if capacity < streams:
            raise ValueError(f"capacity {capacity} must hold at least one step per stream ({streams})")
        self.directory = Path(directory) if directory is not None else None
        self.streams, self.chunk = streams, chunk
        self.rings = [_Ring(capacity // streams) for _ in range(streams)]
        self.pending: list[list[dict[str, np.ndarray]]] = [[] for _ in range(streams)]
        self.files: list[deque[tuple[Path, int]]] = [deque() for _ in range(streams)]
        self.counter = 0
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._load()

    # ------------------------------------------------------------------ add
    def add(self, steps: dict[str, np.ndarray]) -> None:
        """Add one step for every stream: each value has a leading ``streams`` axis."""
        for i in range(self.streams):
            step = {k: np.asarray(v[i]) for k, v in steps.items()}
            self.rings[i].add(step)
            if self.directory is None:
                continue
            self.pending[i].append(step)
            if len(self.pending[i]) >= self.chunk or bool(step["is_last"]):
                self.flush(i)

    def flush(self, stream: int | None = None) -> None:
        """Write pending steps to disk (all streams if ``stream`` is None)."""
        if self.directory is None:
            return
        for i in range(self.streams) if stream is None else [stream]:
            if self.pending[i]:
                self._write(i, self.pending[i])
                self.pending[i] = []

    def _write(self, stream: int, steps: list[dict[str, np.ndarray]]) -> None:
        arrays = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
        path = self.directory / f"chunk-{self.counter:09d}-s{stream}.npz"
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            free = shutil.disk_usage(self.directory).free / 2**20
            why = "the disk is full" if err.errno == errno.ENOSPC else str(err)
            raise ReplayWriteError(
                f"could not write replay chunk {path} ({len(steps)} steps): {why}; {free:.0f} MiB free. "
                "Earlier chunks and checkpoints are untouched and these steps are still held in memory. "
                "Free some space, then resume with `wm train --resume RUN`."
            ) from err
        self.counter += 1
        self.files[stream].append((path, len(steps)))
        self._evict_files(stream)

    def _evict_files(self, stream: int) -> None:
        """Delete chunk files whose steps have all left the ring (bounded disk use)."""
        files, cap = self.files[stream], self.rings[stream].capacity
        while files and sum(n for _, n in files) - files[0][1] >= cap:
            files.popleft()[0].unlink(missing_ok=True)

    # ----------------------------------------------------------------- load
    def _load(self) -> None:
        paths = sorted(self.directory.glob("chunk-*.npz"))
        for path in paths:
            try:
                counter = int(path.stem.split("-")[1])
                stream = int(path.stem.split("-s")[-1]) % self.streams
                with np.load(path) as data:
                    arrays = {k: data[k] for k in data.files}
            except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
                bad = path.with_suffix(".corrupt")
                path.rename(bad)
                warnings.warn(
                    f"replay chunk {path.name} is unreadable ({err}); kept as {bad.name} and skipped", stacklevel=2
                )
                continue
            n = len(arrays["reward"])
            self.rings[stream].extend(arrays)
            self.files[stream].append((path, n))
            self._evict_files(stream)
            self.counter = max(self.counter, counter + 1)

    # --------------------------------------------------------------- sample
    def __len__(self) -> int:
        return sum(r.size for r in self.rings)

    def sample(self, batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``batch`` sequences of ``length`` contiguous steps, uniform over valid start positions."""
        starts = np.array([max(0, r.size - length + 1) for r in self.rings], dtype=np.float64)
        if starts.sum() == 0:
            raise ValueError(f"replay holds no sequence of {length} steps yet ({len(self)} steps stored)")
        streams = rng.choice(self.streams, size=batch, p=starts / starts.sum())
        out: dict[str, list[np.ndarray]] = {k: [] for k in self.rings[int(streams[0])].data}
        for s in streams:
            ring = self.rings[int(s)]
            idx = ring.indices(int(rng.integers(0, int(starts[s]))), length)
            for k in out:
                out[k].append(ring.data[k][idx])
        return {k: np.stack(v) for k, v in out.items()}

    def stream_steps(self, keys: tuple[str, ...] | None = None):
        """Each non-empty stream's stored steps in order, oldest first: ``{key: (n, ...)}`` per
        stream (copies; ``keys`` picks which arrays, default all)."""
        for ring in self.rings:
            if ring.size == 0:
                continue
            idx = ring.indices(0, ring.size)
            yield {k: ring.data[k][idx] for k in (keys or ring.data)}

    def bytes_per_step(self) -> int:
        ring = next((r for r in self.rings if r.data), None)
        if ring is None:
            return 0
        return sum(a.itemsize * int(np.prod(a.shape[1:])) for a in ring.data.values())
