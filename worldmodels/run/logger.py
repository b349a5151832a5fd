"""Metrics to ``RUN/metrics.jsonl`` and TensorBoard, and a live progress bar."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class MetricsLogger:
    """Averages scalars between writes; each write is one JSON line and TensorBoard scalars."""

    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.path = run_dir / "metrics.jsonl"
        _end_cut_line(self.path)
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tb"))
            except ImportError:  # tensorboard is optional at run time
                self.writer = None

    def add(self, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self.sums[k] += float(v)
            self.counts[k] += 1

    def write(self, step: int, extra: dict[str, float] | None = None, key: str = "env_steps") -> dict[str, float]:
        """One row at ``step`` of the counter ``key`` (env steps, or a V/M/C stage's own steps)."""
        row = {k: self.sums[k] / self.counts[k] for k in self.sums}
        row.update(extra or {})
        row = {key: step, "time": time.time(), **row}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for k, v in row.items():
                if k not in (key, "time"):
                    self.writer.add_scalar(k, v, step)
            self.writer.flush()
        self.sums.clear()
        self.counts.clear()
        return row

    def state(self) -> dict[str, dict[str, float]]:
        """The averages being gathered for the next row (a checkpoint keeps them)."""
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def restore(self, state: dict | None) -> None:
        self.sums.clear()
        self.counts.clear()
        if state:
            self.sums.update({k: float(v) for k, v in state["sums"].items()})
            self.counts.update({k: int(v) for k, v in state["counts"].items()})

    def set_aside(self, keys: tuple[str, ...]) -> int:
        """Moves the rows counted by any of ``keys`` (e.g. a retrained stage's ``generation``) from
        metrics.jsonl to metrics.discarded.jsonl, so curves show only what the run now holds and the
        old history is still on disk. Returns how many rows moved."""
        return self._set_aside(lambda row: any(k in row for k in keys))

    def set_aside_after(self, step: int, key: str = "env_steps") -> int:
        """Moves the rows past ``step`` of ``key`` (written after the checkpoint a run resumed from:
        a future it no longer has) to metrics.discarded.jsonl. Returns how many rows moved."""
        return self._set_aside(lambda row: row.get(key, -1) > step)

    def _set_aside(self, moves) -> int:
        moved, kept = [], []
        for row in read_metrics(self.path.parent):
            (moved if moves(row) else kept).append(json.dumps(row) + "\n")
        if not moved:
            return 0
        with open(self.path.with_name("metrics.discarded.jsonl"), "a") as f:
            f.writelines(moved)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(kept))
        tmp.replace(self.path)  # atomic: a kill leaves the old file or the new one
        return len(moved)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class DiscardingLogger(MetricsLogger):
    """The logger of a distributed run's other ranks: it averages like rank 0's and writes nothing
    (rank 0 writes the run's metrics)."""

    def __init__(self):
        self.sums, self.counts, self.writer = defaultdict(float), defaultdict(int), None

    def write(self, step: int, extra: dict[str, float] | None = None, key: str = "env_steps") -> dict[str, float]:
        row = {key: step, **{k: self.sums[k] / self.counts[k] for k in self.sums}, **(extra or {})}
        self.sums.clear()
        self.counts.clear()
        return row

    def _set_aside(self, moves) -> int:
        return 0


def _end_cut_line(path: Path) -> None:
    """A kill mid-write leaves a last line without its newline; end it, so the next row starts a line."""
    if path.exists() and path.stat().st_size:
        with open(path, "rb+") as f:
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                f.write(b"\n")


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
    return rows


class ProgressBar:
    """env steps, env steps/s, train steps/s, last return and ETA; silent when ``enabled`` is False."""

    def __init__(self, total: int, start: int, enabled: bool = True, unit: str = "env steps"):
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("{task.completed:>8.0f}/{task.total:.0f} " + unit),
            TextColumn("{task.fields[env_fps]:>6.0f} env/s"),
            TextColumn("{task.fields[train_fps]:>5.1f} train/s"),
            TextColumn("return {task.fields[ret]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            refresh_per_second=2,
            disable=not enabled,
        )
        self.task = self.progress.add_task("train", total=total, completed=start, env_fps=0, train_fps=0, ret="-")

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def update(self, env_steps: int, env_fps: float, train_fps: float, last_return: float | None) -> None:
        ret = "-" if last_return is None else f"{last_return:.1f}"
        self.progress.update(self.task, completed=env_steps, env_fps=env_fps, train_fps=train_fps, ret=ret)
