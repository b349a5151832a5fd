"""Windows of consecutive steps from whole streams held in memory (e.g. encoded latents)."""

from __future__ import annotations

import numpy as np

from ..errors import RunConfigError


def sample_windows(
    streams: list[dict[str, np.ndarray]], batch: int, length: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``batch`` windows of ``length`` consecutive steps, uniform over start positions; each
    stream is a dict of ``(n, ...)`` arrays of equal length ``n``."""
    first = next(iter(streams[0])) if streams else None
    sizes = np.array([max(0, len(s[first]) - length + 1) for s in streams], np.float64)
    if sizes.sum() == 0:
        raise RunConfigError(f"no stored stream holds {length} steps; collect more episodes or lower --vmc.rnn-seq")
    which = rng.choice(len(streams), size=batch, p=sizes / sizes.sum())
    out: dict[str, list[np.ndarray]] = {k: [] for k in streams[0]}
    for s in which:
        start = int(rng.integers(0, int(sizes[s])))
        for k in out:
            out[k].append(streams[s][k][start : start + length])
    return {k: np.stack(x) for k, x in out.items()}
