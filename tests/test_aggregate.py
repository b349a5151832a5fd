"""Aggregate scores over seeds against hand-computed values and the rliable package."""

import numpy as np
import pytest

from worldmodels.report import aggregate as agg

# Seven runs of three tasks (numpy RandomState(3).normal(100, 30, (7, 3))) and what rliable 1.2.0
# reports for them with 50,000 stratified-bootstrap replicates (RandomState(0)): IQM, mean, median
# and their 95% percentile intervals. Kept here so the check runs where rliable does not import.
FIXED = np.random.RandomState(3).normal(100, 30, size=(7, 3))
RLIABLE_POINT = {"iqm": 93.91839471, "mean": 95.72376932, "median": 92.63457873}
RLIABLE_CI = {
    "iqm": (81.03558685, 108.07704186),
    "mean": (83.54682146, 108.13217561),
    "median": (80.6793756, 109.89970424),
}


def test_point_estimates_by_hand():
    scores = np.array([[1.0], [2.0], [3.0], [4.0], [100.0], [6.0], [7.0], [8.0]])  # 8 runs, one task
    # IQM: drop the 2 lowest (1, 2) and the 2 highest (8, 100); mean of 3, 4, 6, 7.
    assert agg.iqm(scores) == pytest.approx(5.0)
    assert agg.mean(scores) == pytest.approx(131 / 8)
    two_tasks = np.array([[0.0, 10.0], [2.0, 30.0]])  # task means 1 and 20
    assert agg.mean(two_tasks) == pytest.approx(10.5)
    assert agg.median(np.array([[1.0, 5.0, 9.0]])) == pytest.approx(5.0)  # the median of task means
    assert agg.iqm([5.0, 1.0, 9.0]) == pytest.approx(5.0)  # int(0.75) = 0 trimmed: the mean


def test_against_rliable_on_fixed_data():
    summary = agg.summarize(FIXED, reps=50_000, seed=0)
    for name, value in RLIABLE_POINT.items():
        assert summary[name]["value"] == pytest.approx(value, abs=1e-6)
        low, high = RLIABLE_CI[name]
        # Another random stream: the interval ends agree to Monte Carlo error (about 0.1 here).
        assert summary[name]["ci_low"] == pytest.approx(low, abs=0.6)
        assert summary[name]["ci_high"] == pytest.approx(high, abs=0.6)


def test_against_rliable_itself():
    metrics = pytest.importorskip("rliable.metrics", exc_type=ImportError)
    for name, fn in (
        ("iqm", metrics.aggregate_iqm),
        ("mean", metrics.aggregate_mean),
        ("median", metrics.aggregate_median),
    ):
        x = np.random.default_rng(1).gamma(2.0, 50.0, size=(5, 4))
        assert agg.AGGREGATES[name](x) == pytest.approx(float(fn(x)), rel=1e-12)


def test_bootstrap_resamples_within_tasks():
    # Task 0 always scores 0 and task 1 always 10: any resample has per-task means 0 and 10, so
    # mean's interval collapses to 5. Resampling across tasks would spread it.
    x = np.array([[0.0, 10.0]] * 4)
    assert agg.stratified_bootstrap(x, agg.mean, reps=500) == pytest.approx((5.0, 5.0))
    assert agg.stratified_bootstrap(x, lambda s: float(s.mean()), reps=200) == pytest.approx((5.0, 5.0))


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="at least one run"):
        agg.iqm(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="finite"):
        agg.summarize([1.0, float("nan")])
