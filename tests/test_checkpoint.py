import numpy as np
import pytest
import torch

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
    assert set(ckpt) == {"agent", "optimizers", "counters", "rng", "config"}


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
