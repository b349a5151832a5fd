"""On-disk replay: experience is written in compressed chunks as it is collected, reloaded on start.

Each environment is a *stream* with its own ring buffer of ``capacity // streams`` steps, so a
stream's steps stay contiguous and a sampled sequence never mixes two environments. Sequences
may cross episode boundaries; ``is_first`` tells the model where to reset its state.

Files: ``DIR/chunk-{counter:09d}-s{stream}.npz``, written to a temp name and renamed, in
collection order. A crash loses at most the chunks still being filled. Each chunk also records
where it starts in its stream (``_position``: steps, episodes begun and episodes ended before its
first step), so the stored replay alone says how far every stream got, evicted chunks included:
a resumed run counts from it, and continues each stream's episodes past it.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ReplayWriteError, os_error_text
from ..specs import COST

# Keys every step carries besides the observations (see docs/DESIGN.md for their time alignment).
STEP_KEYS = ("action", "reward", "is_first", "is_terminal", "is_last")
POSITION = "_position"  # a chunk's place in its stream; not a step key
SET_ASIDE = "set-aside"  # chunks a deterministic resume took out of the replay


@dataclass(frozen=True)
class Position:
    """How far a stream got: steps written (evicted ones included), episodes begun and ended, and
    the cost paid on the way (where the env charges one: the real cost of learning)."""

    steps: int = 0
    started: int = 0
    ended: int = 0
    cost: float = 0.0

    def __add__(self, other: Position) -> Position:
        return Position(
            self.steps + other.steps, self.started + other.started, self.ended + other.ended, self.cost + other.cost
        )

    def after(self, arrays: dict[str, np.ndarray]) -> Position:
        """The position after appending ``arrays`` (``(n, ...)`` per key)."""
        return Position(
            self.steps + len(arrays["reward"]),
            self.started + int(np.sum(arrays["is_first"])),
            self.ended + int(np.sum(arrays["is_last"])),
            self.cost + (float(np.sum(arrays[COST], dtype=np.float64)) if COST in arrays else 0.0),
        )

    def record(self) -> np.ndarray:
        """What a chunk stores as its ``_position``; counts are exact in float64 below 2**53."""
        return np.array([self.steps, self.started, self.ended, self.cost], np.float64)


def step_bytes(obs_spec, action_spec) -> int:
    """Bytes one stored step takes: uint8 image, float32 vector, action and reward, 3 flags."""
    image = 0 if obs_spec.image is None else int(np.prod(obs_spec.image))
    vector = 0 if obs_spec.vector is None else 4 * obs_spec.vector
    return image + vector + 4 * action_spec.dim + 4 + 3


def _chunk_name(path: Path) -> tuple[int, int]:
    """``chunk-{counter}-s{stream}.npz`` -> (counter, stream)."""
    return int(path.stem.split("-")[1]), int(path.stem.split("-s")[-1])


def _position(meta: np.ndarray | None, running: Position) -> Position:
    """Where a chunk starts: its recorded ``_position``, or (chunks written before positions were
    recorded) where the stream's previous chunk ended. Chunks written before costs were recorded
    hold three counts (the cost then starts from 0)."""
    if meta is None:
        return running
    values = np.asarray(meta).reshape(-1)
    steps, started, ended = (int(x) for x in values[:3])
    return Position(steps, started, ended, float(values[3]) if len(values) > 3 else 0.0)


def physical_memory() -> int:
    """Bytes of RAM this machine has."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class _Ring:
    """One stream's steps in arrays, oldest overwritten first once ``capacity`` steps are held.

    Arrays of ``capacity`` rows are allocated at once where they fit in physical memory: their
    pages are zero-filled on first touch, so memory grows with what is stored and never holds two
    copies. A ``capacity`` beyond memory (which the OS would refuse to reserve) starts small and
    doubles as steps arrive (the arrays are linear until full, so growing is one copy)."""

    FIRST_ROWS = 1024

    def __init__(self, capacity: int):
        self.capacity, self.size, self.head = capacity, 0, 0  # head: next write position
        self.data: dict[str, np.ndarray] = {}

    @property
    def rows(self) -> int:
        """Rows allocated (``capacity`` once the ring is full)."""
        return len(next(iter(self.data.values()))) if self.data else 0

    def _reserve(self, needed: int, example: dict[str, np.ndarray]) -> None:
        """Make room for ``needed`` steps in total (at most ``capacity``), keeping what is held."""
        needed = min(needed, self.capacity)
        if self.data and needed <= self.rows:
            return
        rows = min(self.capacity, max(needed, 2 * self.rows, self.FIRST_ROWS))
        if not self.data:
            row_bytes = sum(np.asarray(v).nbytes for v in example.values())
            if self.capacity * row_bytes <= physical_memory():
                rows = self.capacity
        shapes = {k: (v.shape[1:], v.dtype) for k, v in self.data.items()} or {
            k: (np.shape(v), np.asarray(v).dtype) for k, v in example.items()
        }
        grown = {k: np.zeros((rows, *shape), dtype) for k, (shape, dtype) in shapes.items()}
        if self.data:  # not full yet, so the held steps sit at 0 .. size-1 in order
            for k in grown:
                grown[k][: self.size] = self.data[k][: self.size]
        self.data = grown
        self.head = self.size % rows

    def add(self, step: dict[str, np.ndarray]) -> None:
        self._reserve(self.size + 1, step)
        for k, v in step.items():
            self.data[k][self.head] = v
        self.head = (self.head + 1) % self.rows
        self.size = min(self.size + 1, self.capacity)

    def extend(self, arrays: dict[str, np.ndarray]) -> None:
        """Add ``n`` steps at once (``(n, ...)`` arrays), as ``n`` calls of :meth:`add` would."""
        n = len(next(iter(arrays.values())))
        if n == 0:
            return
        self._reserve(self.size + n, {k: v[0] for k, v in arrays.items()})
        rows = self.rows
        keep = min(n, rows)  # only the newest `rows` steps survive
        idx = (self.head + (n - keep) + np.arange(keep)) % rows
        for k, v in arrays.items():
            self.data[k][idx] = v[n - keep :]
        self.head = (self.head + n) % rows
        self.size = min(self.size + n, self.capacity)

    def indices(self, start: int, length: int) -> np.ndarray:
        """Physical indices of logical positions ``start .. start+length`` (0 = oldest)."""
        rows = self.rows
        oldest = (self.head - self.size) % rows
        return (oldest + start + np.arange(length)) % rows


class ReplayStore:
    """The replay of ``streams`` envs, written to and reloaded from ``directory``.

    A rank of a distributed run holds a shard: its streams are ``first_stream ..
    first_stream + streams - 1`` of the run's ``total_streams`` (default: ``streams``), named so
    in the chunk files, which all ranks write into one folder. On load a chunk of stream ``g``
    belongs to stream ``g % total_streams``, so a run resumed with fewer envs or ranks folds the
    old streams onto its own and loses none of them; chunks of other ranks' streams are left alone.
    """

    def __init__(
        self,
        directory: str | os.PathLike | None,
        *,
        capacity: int,
        streams: int,
        chunk: int = 256,
        first_stream: int = 0,
        total_streams: int | None = None,
    ):
        if capacity < streams:
            raise ValueError(f"capacity {capacity} must hold at least one step per stream ({streams})")
        self.directory = Path(directory) if directory is not None else None
        self.streams, self.chunk = streams, chunk
        self.first_stream, self.total_streams = first_stream, total_streams or streams
        self.rings = [_Ring(capacity // streams) for _ in range(streams)]
        self.pending: list[list[dict[str, np.ndarray]]] = [[] for _ in range(streams)]
        self.files: list[deque[tuple[Path, int]]] = [deque() for _ in range(streams)]
        # What is on disk per stream: all of it (with the streams folded onto it), and its own
        # global stream's alone (what its chunks record, so that a later fold counts it once).
        self.positions = [Position() for _ in range(streams)]
        self.own = [Position() for _ in range(streams)]
        self.counter = 0
        self.recorded: list[tuple[_Ring, float]] = []  # recorded episodes (add_recorded) and their shares
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

    @property
    def started(self) -> list[int]:
        """Episodes begun per stream, written or pending: the index a stream's next episode takes."""
        return [p.started + sum(bool(s["is_first"]) for s in q) for p, q in zip(self.positions, self.pending)]

    def _write(self, stream: int, steps: list[dict[str, np.ndarray]]) -> None:
        arrays = {k: np.stack([s[k] for s in steps]) for k in steps[0]}
        path = self.directory / f"chunk-{self.counter:09d}-s{self.first_stream + stream}.npz"
        tmp = path.with_suffix(".tmp")
        before = self.own[stream]
        meta = {POSITION: before.record()}
        try:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays, **meta)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            free = shutil.disk_usage(self.directory).free / 2**20
            raise ReplayWriteError(
                f"could not write replay chunk {path} ({len(steps)} steps): {os_error_text(err)}; {free:.0f} MiB free. "
                "Earlier chunks and checkpoints are untouched and these steps are still held in memory. "
                "Free some space, then resume with `wm train --resume RUN`."
            ) from err
        self.counter += 1
        self.own[stream] = before.after(arrays)
        self.positions[stream] = self.positions[stream].after(arrays)
        self.files[stream].append((path, len(steps)))
        self._evict_files(stream)

    def _evict_files(self, stream: int) -> None:
        """Delete chunk files whose steps have all left the ring (bounded disk use)."""
        files, cap = self.files[stream], self.rings[stream].capacity
        while files and sum(n for _, n in files) - files[0][1] >= cap:
            files.popleft()[0].unlink(missing_ok=True)

    # ----------------------------------------------------------------- load
    def _load(self) -> None:
        for tmp in self.directory.glob("chunk-*.tmp"):  # a write a kill cut short; its steps were never counted
            tmp.unlink(missing_ok=True)
        ends: dict[int, Position] = {}  # per global stream, where its last chunk ends
        for path in sorted(self.directory.glob("chunk-*.npz")):
            try:
                counter, written = _chunk_name(path)
                stream = written % self.total_streams - self.first_stream
                if not 0 <= stream < self.streams:
                    continue  # another rank's
                with np.load(path) as data:
                    arrays = {k: data[k] for k in data.files}
                at = _position(arrays.pop(POSITION, None), ends.get(written, Position()))
                if len(arrays["reward"]) == 0:
                    raise ValueError("the chunk holds no steps")
                end = at.after(arrays)
            # Any failure to read it (a damaged zip or deflate stream, a missing key, a zip feature
            # numpy cannot read) means the same: the chunk is unusable and the rest of the replay is not.
            except Exception as err:
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
            ends[written] = end
            self.counter = max(self.counter, counter + 1)
        for written, end in ends.items():
            stream = written % self.total_streams - self.first_stream
            self.positions[stream] += end
            if written == self.first_stream + stream:
                self.own[stream] = end

    @staticmethod
    def set_aside(directory: str | os.PathLike, keep: list[int]) -> int:
        """Move every chunk of stream ``i`` that starts at or after step ``keep[i]`` into
        ``DIR/set-aside/`` (kept, not deleted): the replay then holds what it held when a checkpoint
        recorded ``keep``. Returns how many chunks moved."""
        directory = Path(directory)
        aside, moved = directory / SET_ASIDE, 0
        positions: dict[int, Position] = {}
        for path in sorted(directory.glob("chunk-*.npz")):
            try:
                _, stream = _chunk_name(path)
                with np.load(path) as data:
                    meta = data[POSITION] if POSITION in data.files else None
                    steps = {k: data[k] for k in ("reward", "is_first", "is_last")}
                at = _position(meta, positions.get(stream, Position()))
                end = at.after(steps)
            except Exception:
                continue  # unreadable: the store sets it aside as *.corrupt when it loads
            positions[stream] = end
            if stream < len(keep) and at.steps >= keep[stream]:
                aside.mkdir(exist_ok=True)
                target = aside / path.name
                while target.exists():
                    target = target.with_name(target.stem + "-again.npz")
                os.replace(path, target)
                moved += 1
        return moved

    # ----------------------------------------------------------- recorded
    def add_recorded(self, episodes: list[dict[str, np.ndarray]], share: float = 0.0) -> int:
        """Hold recorded episodes (a dataset, or an earlier run's replay) beside the collected
        steps, as one more stream that sampling draws from: never written to disk, never counted
        as collected (``positions``, ``started``), so the run's counters stay those of its own env.
        ``share`` is the fraction of sampled sequences taken from them (0: in proportion to their
        steps, like a stream). Returns the steps held."""
        if not episodes:
            raise ValueError("no recorded episodes to add")
        taken = sum(s for _, s in self.recorded)
        if not 0.0 <= share < 1.0 or taken + share >= 1.0:
            raise ValueError(
                f"the recorded data's shares of each batch must sum below 1 (collected steps need room); "
                f"{taken} is taken, {share} asked"
            )
        arrays = {k: np.concatenate([np.asarray(ep[k]) for ep in episodes]) for k in episodes[0]}
        ring = _Ring(len(arrays["reward"]))
        ring.extend(arrays)
        self.recorded.append((ring, share))
        return ring.size

    # --------------------------------------------------------------- sample
    def __len__(self) -> int:
        """Steps held: collected, and recorded ones where datasets were added."""
        return self.collected + sum(ring.size for ring, _ in self.recorded)

    @property
    def collected(self) -> int:
        """Steps held that this run collected itself."""
        return sum(r.size for r in self.rings)

    def sample(self, batch: int, length: int, rng: np.random.Generator, recent: int = 0) -> dict[str, np.ndarray]:
        """``batch`` sequences of ``length`` contiguous steps, uniform over valid start positions
        (``recent`` > 0: over those within each stream's newest ``recent`` steps; recorded
        episodes then only where nothing was collected). Recorded data with a share takes that
        fraction of the batch; everything else shares the rest in proportion to its steps."""
        rings = list(self.rings)
        spans = np.array([max(0, r.size - length + 1) for r in rings], dtype=np.int64)  # valid starts
        first = np.zeros(len(rings), dtype=np.int64)
        if recent > 0:  # the newest window of each stream, at least one sequence long
            first = np.array([max(0, r.size - max(recent, length)) for r in rings], dtype=np.int64)
            spans = np.maximum(spans - first, 0)
        shares = np.zeros(len(rings))
        if self.recorded and (recent <= 0 or spans.sum() == 0):
            for ring, share in self.recorded:
                rings.append(ring)
                spans = np.append(spans, max(0, ring.size - length + 1))
                first, shares = np.append(first, 0), np.append(shares, share)
        weights = spans.astype(np.float64)
        fixed = (shares > 0) & (spans > 0)
        if fixed.any():  # fixed shares; the rest (if any) in proportion to their steps
            if weights[~fixed].sum() > 0:
                weights[~fixed] *= (1.0 - shares[fixed].sum()) / weights[~fixed].sum()
            weights[fixed] = shares[fixed]
        if weights.sum() == 0:
            raise ValueError(f"replay holds no sequence of {length} steps yet ({len(self)} steps stored)")
        streams = rng.choice(len(rings), size=batch, p=weights / weights.sum())
        out: dict[str, list[np.ndarray]] = {k: [] for k in rings[int(streams[0])].data}
        for s in streams:
            ring = rings[int(s)]
            idx = ring.indices(int(first[s]) + int(rng.integers(0, int(spans[s]))), length)
            for k in out:
                out[k].append(ring.data[k][idx])
        return {k: np.stack(v) for k, v in out.items()}

    def stream_steps(self, keys: tuple[str, ...] | None = None):
        """Each non-empty stream's stored steps in order, oldest first: ``{key: (n, ...)}`` per
        stream (copies; ``keys`` picks which arrays, default all); the collected streams first,
        then the recorded ones (add_recorded)."""
        for ring in [*self.rings, *(ring for ring, _ in self.recorded)]:
            if ring.size == 0:
                continue
            idx = ring.indices(0, ring.size)
            yield {k: ring.data[k][idx] for k in (keys or ring.data)}

    def bytes_per_step(self) -> int:
        ring = next((r for r in self.rings if r.data), None)
        if ring is None:
            return 0
        return sum(a.itemsize * int(np.prod(a.shape[1:])) for a in ring.data.values())
