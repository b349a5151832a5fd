"""Scores over several seeds: interquartile mean, mean and median with stratified bootstrap
confidence intervals, as Agarwal et al. (2021, "Deep RL at the Edge of the Statistical
Precipice") define them and their ``rliable`` package computes them.

Why a copy of a few formulas instead of the package: ``rliable`` pulls in pandas, seaborn,
statsmodels and ``arch``, and ``arch`` fails to import under pandas 3. These functions follow
rliable's definitions exactly (tests/test_aggregate.py checks them against hand-computed values
and, where rliable imports, against it):

- scores are a matrix ``(runs, tasks)``: ``scores[n, m]`` is run (seed) ``n`` on task ``m``;
- IQM: the 25%-trimmed mean of all entries (``scipy.stats.trim_mean(x, 0.25, axis=None)``);
- mean and median: of the per-task mean scores;
- stratified bootstrap: every replicate resamples runs with replacement within each task
  (never mixing tasks); the interval is the replicates' 2.5 and 97.5 percentiles.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Aggregate = Callable[[np.ndarray], float]


def _matrix(scores) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]  # one task
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"expected scores as a (runs, tasks) matrix with at least one run; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("scores must be finite; a run with no evaluation has no score")
    return x


def iqm(scores) -> float:
    """Interquartile mean: the mean of the middle 50% of all scores (trimming ``int(0.25 n)`` at
    each end, as ``scipy.stats.trim_mean`` does)."""
    x = np.sort(_matrix(scores), axis=None)
    cut = int(0.25 * x.size)
    return float(x[cut : x.size - cut].mean())


def mean(scores) -> float:
    """Mean over tasks of the per-task mean score."""
    return float(_matrix(scores).mean(axis=0).mean())


def median(scores) -> float:
    """Median over tasks of the per-task mean score (rliable's ``aggregate_median``)."""
    return float(np.median(_matrix(scores).mean(axis=0)))


AGGREGATES: dict[str, Aggregate] = {"iqm": iqm, "mean": mean, "median": median}


def stratified_bootstrap(
    scores, aggregate: Aggregate, *, reps: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile confidence interval of ``aggregate(scores)``: resample the runs of each task
    with replacement ``reps`` times."""
    x = _matrix(scores)
    if reps < 1 or not 0 < confidence < 1:
        raise ValueError(f"need reps >= 1 and 0 < confidence < 1; got {reps} and {confidence}")
    rng = np.random.default_rng(seed)
    runs, tasks = x.shape
    idx = rng.integers(0, runs, size=(reps, runs, tasks))
    resampled = np.take_along_axis(np.broadcast_to(x, (reps, runs, tasks)), idx, axis=1)
    fast = _VECTORISED.get(aggregate)
    values = fast(resampled) if fast is not None else np.array([aggregate(r) for r in resampled])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _iqm_many(x: np.ndarray) -> np.ndarray:
    flat = np.sort(x.reshape(x.shape[0], -1), axis=1)
    cut = int(0.25 * flat.shape[1])
    return flat[:, cut : flat.shape[1] - cut].mean(axis=1)


# The same statistics over a stack of replicates (reps, runs, tasks), for speed.
_VECTORISED = {
    iqm: _iqm_many,
    mean: lambda x: x.mean(axis=1).mean(axis=1),
    median: lambda x: np.median(x.mean(axis=1), axis=1),
}


def summarize(scores, *, reps: int = 10_000, confidence: float = 0.95, seed: int = 0) -> dict[str, dict]:
    """``{"iqm"|"mean"|"median": {"value", "ci_low", "ci_high"}}`` plus the run and task counts."""
    x = _matrix(scores)
    out: dict[str, dict] = {}
    for name, fn in AGGREGATES.items():
        low, high = stratified_bootstrap(x, fn, reps=reps, confidence=confidence, seed=seed)
        out[name] = {"value": fn(x), "ci_low": low, "ci_high": high}
    out["runs"], out["tasks"] = {"value": x.shape[0]}, {"value": x.shape[1]}
    return out
