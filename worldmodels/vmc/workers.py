"""A process pool that survives its workers: a crashed worker is replaced and its tasks rerun.

Used by CMA-ES, whose generation must not be lost when one evaluation process dies (a segfault
in an emulator, the OOM killer). Each worker builds its own state once (``initializer``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any


class ResilientPool:
    def __init__(self, workers: int, initializer: Callable, initargs: tuple, *, retries: int = 3, echo=print):
        self.workers, self.initializer, self.initargs = workers, initializer, initargs
        self.retries, self.echo = retries, echo
        self.restarts = 0
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers, mp_context=get_context("spawn"), initializer=self.initializer, initargs=self.initargs
        )

    def map(self, fn: Callable, tasks: list) -> list[Any]:
        """``[fn(t) for t in tasks]`` across the workers, rerunning tasks a crashed worker held."""
        results: dict[int, Any] = {}
        for attempt in range(self.retries + 1):
            futures = {i: self._pool.submit(fn, t) for i, t in enumerate(tasks) if i not in results}
            try:
                for i, fut in futures.items():
                    results[i] = fut.result()
                return [results[i] for i in range(len(tasks))]
            except BrokenProcessPool as err:
                for i, fut in futures.items():  # keep what finished before the crash
                    if fut.done() and not fut.cancelled() and fut.exception() is None:
                        results[i] = fut.result()
                if attempt == self.retries:
                    raise RuntimeError(
                        f"evaluation workers crashed {self.retries + 1} times in a row ({err}); "
                        "the last checkpoint is kept. Try --vmc.workers 1 to see the error in this process."
                    ) from err
                self.restarts += 1
                self.echo(f"an evaluation worker died ({err}); restarting the pool and rerunning its tasks")
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start()
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
