import errno

import numpy as np
import pytest

from worldmodels.data.replay import ReplayStore
from worldmodels.errors import ReplayWriteError


def step(values, last=None):
    """One step for len(values) streams; the observation equals the running value."""
    n = len(values)
    return {
        "vector": np.asarray(values, np.float32)[:, None],
        "action": np.zeros((n, 1), np.float32),
        "reward": np.asarray(values, np.float32),
        "is_first": np.zeros(n, bool),
        "is_terminal": np.zeros(n, bool),
        "is_last": np.zeros(n, bool) if last is None else np.asarray(last),
    }


def test_sequences_are_contiguous_within_one_stream():
    store = ReplayStore(None, capacity=200, streams=2)
    for t in range(100):
        store.add(step([t, 1000 + t]))
    batch = store.sample(64, 10, np.random.default_rng(0))
    seqs = batch["vector"][..., 0]
    assert seqs.shape == (64, 10)
    assert (np.diff(seqs, axis=1) == 1).all()  # consecutive steps, never two streams mixed
    assert set(np.unique(seqs[:, 0] >= 1000)) == {False, True}  # both streams sampled


def test_capacity_evicts_oldest_first():
    store = ReplayStore(None, capacity=50, streams=1)
    for t in range(120):
        store.add(step([t]))
    assert len(store) == 50
    batch = store.sample(256, 5, np.random.default_rng(0))
    assert batch["vector"].min() == 70 and batch["vector"].max() == 119


def test_reload_after_restart_keeps_written_chunks(tmp_path):
    store = ReplayStore(tmp_path, capacity=1000, streams=1, chunk=16)
    for t in range(40):
        store.add(step([t]))
    # 40 steps: two full chunks of 16 on disk, 8 pending (lost in a crash).
    again = ReplayStore(tmp_path, capacity=1000, streams=1, chunk=16)
    assert len(again) == 32
    seqs = again.sample(32, 32, np.random.default_rng(0))["vector"][..., 0]
    assert (seqs == np.arange(32)).all()
    store.flush()
    assert len(ReplayStore(tmp_path, capacity=1000, streams=1, chunk=16)) == 40


def test_episode_end_flushes_and_old_files_are_deleted(tmp_path):
    store = ReplayStore(tmp_path, capacity=40, streams=1, chunk=10)
    for t in range(95):
        store.add(step([t], last=[t % 25 == 24]))
    files = sorted(tmp_path.glob("chunk-*.npz"))
    on_disk = sum(len(np.load(f)["reward"]) for f in files)
    assert 40 <= on_disk < 40 + 10 + 10  # bounded: only what the ring can still hold, plus a chunk
    assert len(ReplayStore(tmp_path, capacity=40, streams=1, chunk=10)) == 40


def test_corrupt_chunk_is_kept_aside_and_skipped(tmp_path):
    store = ReplayStore(tmp_path, capacity=100, streams=1, chunk=5)
    for t in range(10):
        store.add(step([t]))
    first = sorted(tmp_path.glob("chunk-*.npz"))[0]
    first.write_bytes(first.read_bytes()[:20])
    with pytest.warns(UserWarning, match="unreadable"):
        again = ReplayStore(tmp_path, capacity=100, streams=1, chunk=5)
    assert len(again) == 5
    assert first.with_suffix(".corrupt").exists()


def test_disk_full_raises_clear_error_and_loses_nothing(tmp_path, monkeypatch):
    store = ReplayStore(tmp_path, capacity=100, streams=1, chunk=5)
    for t in range(5):
        store.add(step([t]))
    before = sorted(p.name for p in tmp_path.iterdir())

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full)
    with pytest.raises(ReplayWriteError, match="disk is full") as err:
        for t in range(5, 10):
            store.add(step([t]))
    assert "wm train --resume" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no partial file, old chunk intact
    assert len(store.pending[0]) == 5  # the steps are still held, and written once space is back
    monkeypatch.undo()
    store.flush()
    assert len(ReplayStore(tmp_path, capacity=100, streams=1, chunk=5)) == 10


def test_bytes_per_step():
    store = ReplayStore(None, capacity=10, streams=1)
    store.add(step([0]))
    assert store.bytes_per_step() == 4 + 4 + 4 + 1 + 1 + 1


def test_extend_matches_adding_one_by_one():
    rng = np.random.default_rng(0)
    for n0, n1, cap in [(0, 5, 8), (3, 20, 8), (7, 1, 8), (0, 30, 30)]:
        a, b = ReplayStore(None, capacity=cap, streams=1), ReplayStore(None, capacity=cap, streams=1)
        first, second = rng.normal(size=n0), rng.normal(size=n1)
        for v in np.concatenate([first, second]):
            a.add(step([v]))
        for v in first:
            b.add(step([v]))
        b.rings[0].extend({k: np.concatenate([x[k] for x in (step([v]) for v in second)]) for k in step([0])})
        ra, rb = a.rings[0], b.rings[0]
        assert (ra.size, ra.head) == (rb.size, rb.head)
        np.testing.assert_array_equal(ra.data["vector"], rb.data["vector"])


@pytest.mark.parametrize("fits", [True, False], ids=["allocated at once", "grown by doubling"])
def test_ring_holds_the_newest_capacity_steps_in_order(monkeypatch, fits):
    """Random mixes of add and extend against a plain list, whether the ring's arrays are allocated
    at full capacity (they fit in memory) or grow by doubling (a capacity beyond memory)."""
    from worldmodels.data import replay

    if not fits:
        monkeypatch.setattr(replay, "physical_memory", lambda: 1)
    rng = np.random.default_rng(0)
    for capacity in (1, 3, 1000, 1025, 3000):
        ring, expected, t = replay._Ring(capacity), [], 0
        for _ in range(40):
            n = int(rng.integers(0, 400))
            if rng.random() < 0.5:
                for i in range(n):
                    ring.add({"x": np.array(t + i)})
            else:
                ring.extend({"x": np.arange(t, t + n)})
            t += n
            expected = (expected + list(range(t - n, t)))[-capacity:]
            held = ring.data["x"][ring.indices(0, ring.size)] if ring.size else []
            assert list(held) == expected
        assert ring.rows == capacity or (not fits and ring.rows < capacity)


def test_recent_sampling_draws_from_the_newest_steps_only():
    store = ReplayStore(None, capacity=1000, streams=2)
    for t in range(300):
        store.add(step([t, 1000 + t]))
    rng = np.random.default_rng(0)
    seqs = store.sample(256, 8, rng, recent=50)["vector"][..., 0]
    assert (seqs % 1000).min() >= 250 and (seqs % 1000).min() <= 252  # the last 50 steps of each stream
    assert (np.diff(seqs, axis=1) == 1).all()
    assert (store.sample(16, 8, rng, recent=3)["vector"][..., 0] % 1000).min() == 292  # one sequence's worth
