"""Runs that survive being stopped: counters from the replay, no episode collected twice,
time-based checkpoints, one writer per run folder, and stop-and-resume equal to never stopping."""

import json
import warnings

import numpy as np
import pytest
import torch

from tests.conftest import tiny_config
from worldmodels.data.replay import ReplayStore
from worldmodels.errors import RunConfigError, RunLockedError
from worldmodels.run import checkpoint
from worldmodels.run.lock import RunLock
from worldmodels.run.logger import read_metrics
from worldmodels.run.train import Trainer


class Killed(BaseException):
    """Stands in for SIGKILL: nothing in the trainer catches it, so nothing is saved on the way out."""


def kill_after(trainer: Trainer, collects: int) -> None:
    """Make ``trainer`` die after ``collects`` more env steps, without flushing or saving."""
    collect, left = trainer._collect, [collects]

    def dying(*args):
        collect(*args)
        left[0] -= 1
        if left[0] <= 0:
            raise Killed

    trainer._collect = dying


def episodes_in(run_dir, streams=1) -> list[bytes]:
    """Every complete episode in the replay, as bytes of its observations and actions."""
    store = ReplayStore(run_dir / "replay", capacity=10**6, streams=streams)
    out = []
    for steps in store.stream_steps():
        starts = np.flatnonzero(steps["is_first"])
        for a, b in zip(starts, list(starts[1:]) + [len(steps["reward"])]):
            if steps["is_last"][b - 1]:
                out.append(steps["vector"][a:b].tobytes() + steps["action"][a:b].tobytes())
    return out


def stored_steps(run_dir, streams=1) -> int:
    return sum(p.steps for p in ReplayStore(run_dir / "replay", capacity=10**6, streams=streams).positions)


def test_resume_without_a_checkpoint_counts_the_replay_and_plays_new_episodes(tmp_path):
    cfg = tiny_config(
        tmp_path, env="wmtest/Cue-v0", steps=10_000, prefill=1000, checkpoint_every=10_000, checkpoint_minutes=0
    )
    for _ in range(3):  # killed three times before any checkpoint
        trainer = Trainer(cfg, resume=True, progress=False)
        before = trainer.counters["env_steps"]
        assert before == stored_steps(trainer.run_dir)  # the counter is what is on disk
        kill_after(trainer, 57)
        with pytest.raises(Killed):
            trainer.train()
        assert not (trainer.run_dir / checkpoint.NAME).exists()  # prefill (1,000 steps) never ended
        assert stored_steps(trainer.run_dir) > before  # the finished episodes survived the kill
    episodes = episodes_in(trainer.run_dir)
    assert len(episodes) >= 12  # 10-step episodes: ~5 per attempt
    assert len(set(episodes)) == len(episodes), "a resumed run collected an episode it already had"
    resumed = Trainer(cfg, resume=True, progress=False)
    assert resumed.counters["episodes"] == len(episodes)
    assert resumed.counters["agent_steps"] == stored_steps(trainer.run_dir) > 100
    resumed.close()


def test_resume_keeps_steps_collected_after_the_checkpoint(tmp_path):
    cfg = tiny_config(
        tmp_path, env="wmtest/Cue-v0", steps=10_000, checkpoint_every=150, checkpoint_minutes=0, train_ratio=4
    )
    trainer = Trainer(cfg, progress=False)
    kill_after(trainer, 290)
    with pytest.raises(Killed):
        trainer.train()
    saved = checkpoint.load(trainer.run_dir / checkpoint.NAME)["counters"]
    assert saved["env_steps"] == 150
    on_disk = stored_steps(trainer.run_dir)
    assert on_disk == 286  # 26 episodes of 11 steps (10 actions and the last observation), all flushed
    assert any(row["env_steps"] > 150 for row in read_metrics(trainer.run_dir))
    resumed = Trainer(cfg, resume=True, progress=False)
    c = resumed.counters
    assert (c["env_steps"], c["agent_steps"], c["episodes"]) == (on_disk, on_disk, on_disk // 11)
    assert c["train_steps"] == saved["train_steps"]  # training after the checkpoint is lost, and redone
    assert all(row["env_steps"] <= 150 for row in read_metrics(trainer.run_dir))  # no rows from a lost future
    assert (trainer.run_dir / "metrics.discarded.jsonl").exists()
    resumed.cfg.steps = 400
    resumed.train()
    assert len(set(episodes_in(trainer.run_dir))) == len(episodes_in(trainer.run_dir)) == 400 // 11


def test_checkpoints_by_time_and_at_the_end_of_prefill(tmp_path, monkeypatch):
    cfg = tiny_config(
        tmp_path, env="wmtest/Cue-v0", steps=10_000, checkpoint_every=10_000, checkpoint_minutes=0, train_ratio=4
    )
    trainer = Trainer(cfg, progress=False)
    kill_after(trainer, 150)
    with pytest.raises(Killed):
        trainer.train()
    assert checkpoint.load(trainer.run_dir / checkpoint.NAME)["counters"]["env_steps"] == cfg.prefill

    clock = [0.0]
    monkeypatch.setattr("worldmodels.run.train.time.monotonic", lambda: clock[0])
    cfg = tiny_config(
        tmp_path / "timed", env="wmtest/Cue-v0", steps=250, checkpoint_every=10_000, prefill=0, train_ratio=4
    )
    cfg.checkpoint_minutes = 1.0
    trainer = Trainer(cfg, progress=False)
    saves, save = [], trainer.save

    def counting_save():
        saves.append(trainer.counters["env_steps"])
        return save()

    collect = trainer._collect

    def ticking(*args):
        collect(*args)
        clock[0] += 1.0  # a second per env step

    trainer.save, trainer._collect = counting_save, ticking
    trainer.train()
    assert saves == [60, 120, 180, 240, 250]  # every minute of the clock, whatever the step count, and at the end


def test_one_writer_per_run_folder(tmp_path):
    cfg = tiny_config(tmp_path, env="wmtest/Cue-v0", steps=100)
    first = Trainer(cfg, progress=False)
    with pytest.raises(RunLockedError, match=r"another process \(process \d+ on .*--resume"):
        Trainer(cfg, resume=True, progress=False)
    first.train()  # releases the lock when it ends
    Trainer(cfg, resume=True, progress=False).close()
    (tmp_path / "run" / "lock").write_text(json.dumps({"pid": 999999, "host": "gone", "since": "then"}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        RunLock(tmp_path / "run").acquire().release()
    assert any("took over the lock" in str(w.message) and "999999" in str(w.message) for w in caught)


def test_a_replay_that_cannot_fit_in_memory_is_refused_before_allocating(tmp_path):
    with pytest.raises(RunConfigError, match="more than this machine's .* --capacity"):
        Trainer(tiny_config(tmp_path, env="wmtest/Cue-v0", steps=10**13, capacity=10**13), progress=False)
    # A generous capacity costs only what is stored: the replay's arrays grow with it.
    trainer = Trainer(tiny_config(tmp_path / "big", env="wmtest/Cue-v0", steps=100, capacity=10**11), progress=False)
    trainer.train()
    assert trainer.store.rings[0].rows < 10_000


def _params(agent) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in agent.state_dict().items()}


def _rows(run_dir) -> list[dict]:
    noisy = ("time", "fps/env", "fps/train")
    return [{k: v for k, v in row.items() if k not in noisy} for row in read_metrics(run_dir)]


@pytest.mark.parametrize(
    "overrides",
    [
        dict(env="wmtest/Cue-v0", steps=420, train_ratio=8),
        dict(
            agent="pets",
            env="wmtest/PointMass-v0",
            steps=240,
            prefill=60,
            train_ratio=8,
            log_every=40,
            checkpoint_every=80,
            eval_every=120,
        ),
    ],
    ids=["dreamer", "pets"],
)
def test_stopped_and_resumed_equals_never_stopped(tmp_path, overrides):
    """--deterministic: kill a run some steps after a checkpoint, resume it, and it ends with the
    same weights and metrics, bit for bit, as the same run left alone."""
    if overrides.get("agent") == "pets":
        from worldmodels.config import EnsembleConfig, PlanConfig

        overrides.update(
            plan=PlanConfig(horizon=3, population=16, elites=4, iterations=2),
            ensemble=EnsembleConfig(members=2, units=16, layers=1, batch=16),
        )
    make = lambda name: tiny_config(tmp_path / name, deterministic=True, checkpoint_minutes=0, **overrides)  # noqa: E731
    straight = Trainer(make("straight"), progress=False)
    straight.train()

    stopped = Trainer(make("stopped"), progress=False)
    kill_after(stopped, overrides["steps"] // 2 + 30)  # past a checkpoint, mid-episode, chunks written since
    with pytest.raises(Killed):
        stopped.train()
    resumed = Trainer(make("stopped"), resume=True, progress=False)
    assert 0 < resumed.counters["env_steps"] < overrides["steps"]
    assert any((resumed.run_dir / "replay" / "set-aside").iterdir())  # what came after the checkpoint
    resumed.train()

    a, b = _params(straight.agent), _params(resumed.agent)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    assert _rows(straight.run_dir) == _rows(resumed.run_dir)
    assert episodes_in(straight.run_dir) == episodes_in(resumed.run_dir)


def test_a_run_folder_copied_mid_write_resumes(tmp_path):
    """A copy taken while a run was writing holds a lock file (of a process elsewhere), temp files of
    half-done writes and a chunk cut short: the copy resumes, setting aside only what is damaged."""
    cfg = tiny_config(tmp_path, env="wmtest/Cue-v0", steps=250, train_ratio=4)
    Trainer(cfg, progress=False).train()
    run = tmp_path / "run"
    (run / "lock").write_text(json.dumps({"pid": 4242, "host": "elsewhere", "since": "earlier"}))
    (run / "checkpoint.pt.tmp").write_bytes(b"half a checkpoint")
    (run / "replay" / "chunk-000000999-s0.tmp").write_bytes(b"half a chunk")
    last = sorted((run / "replay").glob("chunk-*.npz"))[-1]
    last.write_bytes(last.read_bytes()[:50])
    cfg.steps = 300
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(cfg, resume=True, progress=False)
    messages = " ".join(str(w.message) for w in caught)
    assert "took over the lock" in messages and "unreadable" in messages
    assert trainer.counters["env_steps"] == stored_steps(run) < 250  # the cut chunk's steps are not counted
    trainer.train()
    assert trainer.counters["env_steps"] == stored_steps(run) == 300
    assert not list(run.glob("**/*.tmp"))
    assert len(set(episodes_in(run))) == len(episodes_in(run))
