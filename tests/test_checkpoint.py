import errno
import os

import numpy as np
import pytest
import torch

import worldmodels
from tests.conftest import tiny_config
from worldmodels.errors import CheckpointError
from worldmodels.run import checkpoint
from worldmodels.run.runs import load_run
from worldmodels.run.train import Trainer


def acts(agent, obs, n=5):
    torch.manual_seed(123)
    carry, out = None, []
    for t in range(n):
        action, carry = agent.act(obs, torch.tensor([t == 0]), carry, mode=False)
        out.append(action)
    return torch.stack(out)


def test_round_trip_gives_identical_actions(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, env="wmtest/Cue-v0", steps=200), progress=False)
    trainer.train()
    loaded = load_run(trainer.run_dir)
    obs = {"vector": torch.tensor([[1.0, 0.0]])}
    trainer.agent.eval()
    assert torch.equal(acts(trainer.agent, obs), acts(loaded.agent, obs))
    assert loaded.counters["env_steps"] == 200
    ckpt = checkpoint.load(trainer.run_dir / checkpoint.NAME)
    assert {"agent", "optimizers", "counters", "rng", "config", "streams", "logger"} <= set(ckpt)


def test_corrupt_checkpoint_names_the_previous_one(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, env="wmtest/Cue-v0", steps=400, checkpoint_every=200), progress=False)
    trainer.train()
    path = trainer.run_dir / checkpoint.NAME
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated.*checkpoint.prev.pt"):
        load_run(trainer.run_dir)


def test_checkpoint_of_another_model_says_which_weights_do_not_fit(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, env="wmtest/Cue-v0", steps=200, checkpoint_every=200), progress=False)
    trainer.train()
    path = trainer.run_dir / checkpoint.NAME
    ckpt = checkpoint.load(path)
    name = next(iter(ckpt["agent"]))
    ckpt["agent"]["renamed.weight"] = ckpt["agent"].pop(name)
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=f"do not fit.*missing: {name}.*not in this agent: renamed.weight"):
        load_run(trainer.run_dir)


def test_checkpoint_loads_without_executing_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "checkpoint.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(CheckpointError):
        checkpoint.load(path)


def test_rng_state_round_trip():
    rng = np.random.default_rng(3)
    state = checkpoint.rng_state(rng)
    a = (torch.rand(3), rng.random(3))
    checkpoint.set_rng_state(state, rng)
    b = (torch.rand(3), rng.random(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def tiny_payload() -> dict:
    return {
        "agent": {"w": torch.arange(3.0)},
        "optimizers": {},
        "counters": {"env_steps": 7},
        "rng": checkpoint.rng_state(np.random.default_rng(0)),
        "config": "{}",
    }


def test_save_stamps_format_and_version_and_keeps_the_previous(tmp_path):
    payload = tiny_payload()
    checkpoint.save(tmp_path, payload)
    assert "format" not in payload  # the caller's dict is left as it was
    payload["counters"] = {"env_steps": 8}
    checkpoint.save(tmp_path, payload)
    assert checkpoint.load(tmp_path / checkpoint.NAME)["counters"] == {"env_steps": 8}
    assert checkpoint.load(tmp_path / checkpoint.PREV)["counters"] == {"env_steps": 7}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([checkpoint.NAME, checkpoint.PREV])


def test_a_checkpoint_from_before_formats_is_refused_naming_both_versions(tmp_path):
    path = tmp_path / checkpoint.NAME
    torch.save(tiny_payload(), path)  # no "format": written before formats were recorded
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(path)
    message = str(err.value)
    assert "format 1" in message and "before checkpoint formats" in message
    assert f"this is worldmodels {worldmodels.__version__}, which reads format {checkpoint.FORMAT}" in message
    assert "train the run again" in message


def test_a_checkpoint_of_another_format_names_the_version_to_install(tmp_path):
    path = tmp_path / checkpoint.NAME
    torch.save({**tiny_payload(), "format": checkpoint.FORMAT + 1, "version": "9.9.9"}, path)
    with pytest.raises(
        CheckpointError, match=r"format 3, written by worldmodels 9\.9\.9.*pip install worldmodels==9\.9\.9"
    ):
        checkpoint.load(path)


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ([1, 2, 3], "holds a list, not the dict"),
        ({"format": checkpoint.FORMAT, "agent": {}}, "lacks 'optimizers', 'counters', 'rng', 'config'"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_says_what_it_lacks(tmp_path, content, text):
    path = tmp_path / checkpoint.NAME
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=text):
        checkpoint.load(path)


@pytest.mark.parametrize("error", [IndexError, KeyError, AttributeError, TypeError, MemoryError, RecursionError])
def test_any_failure_of_torch_load_is_a_checkpoint_error(tmp_path, monkeypatch, error):
    path = checkpoint.save(tmp_path, tiny_payload())

    def broken(*args, **kwargs):
        raise error("from deep inside the unpickler")

    monkeypatch.setattr(checkpoint.torch, "load", broken)
    with pytest.raises(CheckpointError, match=f"corrupt or truncated \\({error.__name__}"):
        checkpoint.load(path)


def test_ctrl_c_while_loading_is_not_swallowed(tmp_path, monkeypatch):
    path = checkpoint.save(tmp_path, tiny_payload())

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.torch, "load", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.load(path)


def test_garbage_and_a_zip_of_other_things_are_checkpoint_errors(tmp_path):
    import zipfile

    path = tmp_path / checkpoint.NAME
    for data in (os.urandom(4096), b"", b"PK\x03\x04" + os.urandom(100)):
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            checkpoint.load(path)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"not a pickle")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        checkpoint.load(path)


@pytest.mark.parametrize(("code", "text"), [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only")])
def test_a_failed_write_keeps_the_last_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch, code, text):
    checkpoint.save(tmp_path, tiny_payload())
    before = (tmp_path / checkpoint.NAME).read_bytes()
    real_fsync = os.fsync

    def full(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    with pytest.raises(CheckpointError, match=f"{text}.*kept as it was.*wm train --resume {tmp_path}"):
        checkpoint.save(tmp_path, {**tiny_payload(), "counters": {"env_steps": 99}})
    monkeypatch.setattr(checkpoint.os, "fsync", real_fsync)
    assert (tmp_path / checkpoint.NAME).read_bytes() == before
    assert not (tmp_path / checkpoint.TMP).exists() and not (tmp_path / checkpoint.PREV).exists()


def test_a_failed_rename_puts_the_checkpoint_back(tmp_path, monkeypatch):
    checkpoint.save(tmp_path, tiny_payload())
    before = (tmp_path / checkpoint.NAME).read_bytes()
    real_replace = os.replace

    def replace(src, dst):
        if str(src).endswith(checkpoint.TMP):
            raise OSError(errno.EIO, "I/O error")
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", replace)
    with pytest.raises(CheckpointError, match="could not write the checkpoint"):
        checkpoint.save(tmp_path, tiny_payload())
    monkeypatch.setattr(checkpoint.os, "replace", real_replace)
    assert (tmp_path / checkpoint.NAME).read_bytes() == before
    assert not (tmp_path / checkpoint.TMP).exists()


def test_a_stale_temp_file_from_a_kill_is_ignored_and_replaced(tmp_path):
    (tmp_path / checkpoint.TMP).write_bytes(b"half a checkpoint, then kill -9")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        checkpoint.load(tmp_path / checkpoint.NAME)
    checkpoint.save(tmp_path, tiny_payload())
    assert not (tmp_path / checkpoint.TMP).exists()
    assert checkpoint.load(tmp_path / checkpoint.NAME)["counters"] == {"env_steps": 7}


def test_a_missing_checkpoint_beside_a_previous_one_says_how_to_go_back(tmp_path):
    checkpoint.save(tmp_path, tiny_payload())
    os.replace(tmp_path / checkpoint.NAME, tmp_path / checkpoint.PREV)  # a kill between the two renames
    with pytest.raises(CheckpointError, match="previous one .*checkpoint.prev.pt is there.*`mv "):
        checkpoint.load(tmp_path / checkpoint.NAME)
