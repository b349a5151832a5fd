"""wm finetune: a new run from a trained run's weights, on a changed system; the source run is
never touched, and --freeze freezes exactly the parts it names."""

import hashlib
import json

import pytest
import torch

from tests.conftest import tiny_config
from worldmodels.cli import main
from worldmodels.errors import RunConfigError
from worldmodels.run import checkpoint
from worldmodels.run.finetune import finetune_config
from worldmodels.run.train import Trainer


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A short Dreamer run on the rule task, at its nominal rule (+1)."""
    folder = tmp_path_factory.mktemp("source")
    cfg = tiny_config(folder, env="wmtest/Rule-v0", steps=300)
    Trainer(cfg, progress=False).train()
    return folder / "run"


def fingerprint(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def weights(path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["agent"]


def test_finetune_starts_from_the_source_freezes_what_it_says_and_leaves_the_source_alone(source, tmp_path):
    before = fingerprint(source)
    cfg = finetune_config(source, tmp_path / "ft", given={"episodes": 4, "freeze": "encoder,dynamics", "mix": 0.5},
                          set_="rule==-1", lr_scale=0.5)  # fmt: skip
    assert cfg.randomize == "rule==-1" and cfg.prefill == 0 and cfg.finetune_from == str(source)
    assert cfg.model.lr == pytest.approx(0.5 * tiny_config(tmp_path).model.lr)
    counters = Trainer(cfg, progress=False).train()
    assert counters["episodes"] == 4 and counters["env_steps"] == 44  # 10 transitions, 11 recorded steps each
    old, new = weights(source / checkpoint.NAME), weights(tmp_path / "ft" / checkpoint.NAME)
    frozen = ("world_model.vector_enc.", "world_model.rssm.")
    moved = [k for k in old if not torch.equal(old[k], new[k])]
    assert moved, "fine-tuning changed nothing"
    assert not [k for k in moved if k.startswith(frozen)], "a frozen part moved"
    assert any(k.startswith("world_model.reward_head.") for k in moved)  # the heads learned
    assert any(k.startswith("actor.") for k in moved)
    episodes = [json.loads(line) for line in (tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()]
    assert episodes and all(r["env_steps"] <= 44 for r in episodes)
    assert fingerprint(source) == before  # byte for byte


def test_finetune_refuses_what_would_touch_or_cannot_use_the_source(source, tmp_path):
    with pytest.raises(RunConfigError, match="is the source run"):
        finetune_config(source, source)
    with pytest.raises(RunConfigError, match="inside the source run"):
        finetune_config(source, source / "ft")
    empty = tiny_config(tmp_path / "empty", env="wmtest/Rule-v0")
    from worldmodels.run.runs import write_config

    write_config(tmp_path / "empty" / "run", empty)
    with pytest.raises(RunConfigError, match="has no checkpoint yet"):
        finetune_config(tmp_path / "empty" / "run", tmp_path / "ft")
    with pytest.raises(RunConfigError, match="no such part"):
        from worldmodels.agents.base import freeze_parts
        from worldmodels.models.ensemble import GaussianEnsemble

        freeze_parts(GaussianEnsemble(3, 1, members=2, units=8, layers=1), ["heads"])
    with pytest.raises(ValueError, match="is not a part"):
        from worldmodels.config import validate

        validate(finetune_config(source, tmp_path / "ft", given={"freeze": "brain"}))


def test_finetune_from_the_command_line_then_resume(source, tmp_path, capsys):
    out = tmp_path / "ft"
    args = ["finetune", str(source), "--logdir", str(out), "--set", "rule==-1", "--episodes", "2", "--quiet"]
    assert main([*args, "--no-finish", "--freeze", "heads"]) == 0
    stored = json.loads((out / "config.json").read_text())
    assert stored["finetune_from"] == str(source) and stored["freeze"] == "heads" and stored["episodes"] == 2
    assert main(["train", "--resume", str(out), "--quiet", "--no-finish"]) == 0  # done already: nothing to do
    assert main([*args]) == 2 and "already holds a run" in capsys.readouterr().err
    assert main(["finetune", str(source), "--episodes", "1"]) == 2 and "needs --logdir" in capsys.readouterr().err


def test_prediction_error_on_recorded_episodes(source):
    from worldmodels.report.dream import prediction_error
    from worldmodels.run.record import Recording, record_dataset
    from worldmodels.run.runs import load_run

    episodes = record_dataset(Recording(env="wmtest/Rule-v0", episodes=3, seed=5)).episodes
    with torch.no_grad():
        error = prediction_error(load_run(source).world_model, episodes, context=2, horizons=[1, 5, 30])
    assert error["observation"] == "vector" and error["episodes"] == {1: 3, 5: 3, 30: 0}
    assert 0 <= error["mse"][1] < 10 and error["mse"][30] is None  # 11-step episodes end before 30


def test_freezing_the_whole_model_is_refused():
    from worldmodels.agents.base import freeze_parts
    from worldmodels.models.ensemble import GaussianEnsemble

    with pytest.raises(RunConfigError, match="leaves nothing"):
        freeze_parts(GaussianEnsemble(3, 1, members=2, units=8, layers=1), ["dynamics"])
