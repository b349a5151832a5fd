"""Ranges of the numeric settings: generated from the dataclasses' field metadata, checked before a run."""

import dataclasses
import errno
import json
import math
import os
from pathlib import Path

import pytest
import torch

from worldmodels.cli import main
from worldmodels.config import ADDED_LATER, BLOCKS, RANGE_KEYS, Config, check_ranges, flag, validate
from worldmodels.errors import RunConfigError
from worldmodels.run import runs
from worldmodels.run.runs import CONFIG, read_config, write_config

NUMERIC = ("int", "float")


def numeric_fields():
    """``(block, field)`` for every int and float field of Config ('' block) and of its blocks."""
    for block, cls in [("", Config), *BLOCKS.items()]:
        for f in dataclasses.fields(cls):
            if f.type in NUMERIC:
                yield block, f


def with_value(block: str, name: str, value) -> Config:
    cfg = Config()
    if not block:
        return dataclasses.replace(cfg, **{name: value})
    return dataclasses.replace(cfg, **{block: dataclasses.replace(getattr(cfg, block), **{name: value})})


def outside(f: dataclasses.Field) -> list:
    """Values just outside the field's range: below ``ge``/``gt``, above ``le``/``lt``, not a power of 2."""
    meta, step = f.metadata, 1 if f.type == "int" else 1e-6
    values = []
    if "ge" in meta:
        values.append(meta["ge"] - step)
    if "gt" in meta:
        values.append(meta["gt"])
    if "le" in meta:
        values.append(meta["le"] + step)
    if "lt" in meta:
        values.append(meta["lt"])
    if meta.get("pow2"):
        values.append(3 * 2 ** math.ceil(math.log2(meta.get("ge", 1))))  # 24 for ge=8
    return values


CASES = [
    pytest.param(block, f.name, value, id=f"{flag(block, f.name)}={value}")
    for block, f in numeric_fields()
    for value in outside(f)
]


def test_the_defaults_validate():
    validate(Config())
    for size in ("XXS", "S", "L"):
        validate(Config.sized(size))


@pytest.mark.parametrize(("block", "name", "value"), CASES)
def test_a_value_outside_its_range_is_refused_naming_flag_and_value(block, name, value):
    cfg = with_value(block, name, value)
    with pytest.raises(ValueError) as err:
        validate(cfg)
    message = str(err.value)
    assert message.startswith(f"{flag(block, name)} must be "), message
    assert message.endswith(f"got {value}"), message


def test_the_cases_cover_every_field():
    covered = {(block, name) for block, name, _ in (case.values for case in CASES)}
    assert covered == {(block, f.name) for block, f in numeric_fields()}
    assert len(CASES) > 80


def test_every_numeric_field_has_a_range():
    missing = [flag(block, f.name) for block, f in numeric_fields() if not set(RANGE_KEYS) & f.metadata.keys()]
    assert not missing, f"give these fields a range (_f(..., ge=/gt=/le=/lt=)): {missing}"


def test_the_bounds_themselves_fit():
    """Values on an inclusive bound are accepted by the range check."""
    for block, f in numeric_fields():
        for key in ("ge", "le"):
            if key in f.metadata and not f.metadata.get("pow2"):
                check_ranges(with_value(block, f.name, f.metadata[key]))


def test_messages_say_what_fits():
    cases = {
        ("model", "deter", -3): "--model.deter must be >= 1 (GRU (deterministic) state size), got -3",
        ("dreamer", "gamma", 0.0): "--dreamer.gamma must be in (0, 1]",
        ("model", "unimix", 1.0): "--model.unimix must be in [0, 1)",
        ("model", "image_size", 48): "--model.image-size must be a power of 2 >= 8",
        ("", "seq_len", 1): "--seq-len must be >= 2",
        ("", "eval_every", 0): "--eval-every must be >= 1",
    }
    for (block, name, value), text in cases.items():
        with pytest.raises(ValueError, match="^" + text.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            check_ranges(with_value(block, name, value))


def test_nan_and_wrong_types_are_refused():
    with pytest.raises(ValueError, match=r"--model\.lr must be > 0 .*got nan"):
        check_ranges(with_value("model", "lr", float("nan")))
    with pytest.raises(ValueError, match=r"--steps must be an integer .*got 1\.5"):
        check_ranges(with_value("", "steps", 1.5))
    with pytest.raises(ValueError, match=r"--plan\.horizon must be an integer .*got '5'"):
        check_ranges(with_value("plan", "horizon", "5"))
    check_ranges(with_value("", "train_ratio", 32))  # an int where a float goes is fine


def test_the_cross_field_checks_remain():
    with pytest.raises(ValueError, match="--capacity 10 cannot hold"):
        validate(dataclasses.replace(Config(), capacity=10))
    pets = dataclasses.replace(Config(agent="pets"), ensemble=dataclasses.replace(Config().ensemble, value=True))
    validate(pets)
    with pytest.raises(ValueError, match="--plan.discount < 1"):
        validate(dataclasses.replace(pets, plan=dataclasses.replace(pets.plan, discount=1.0)))


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--steps", "-5"], "--steps must be >= 1"),
        (["--model.deter", "-3"], "--model.deter must be >= 1"),
        (["--plan.temperature", "0"], "--plan.temperature must be > 0"),
    ],
)
def test_the_cli_refuses_before_making_a_run_folder(tmp_path, capsys, args, text):
    logdir = tmp_path / "r"
    assert main(["train", *args, "--logdir", str(logdir)]) == 2
    err = capsys.readouterr().err
    assert text in err and f"got {args[1]}" in err
    assert not logdir.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_refused():
    with pytest.raises(ValueError, match="CUDA"):
        validate(dataclasses.replace(Config(), device="cuda"))


def test_infinite_and_too_large_numbers_are_refused():
    with pytest.raises(ValueError, match=r"--train-ratio must be a finite number > 0 .*got inf"):
        check_ranges(with_value("", "train_ratio", math.inf))
    with pytest.raises(ValueError, match=r"--model\.lr must be a finite number > 0 .*got 1000"):
        check_ranges(with_value("model", "lr", 10**400))  # an int too large for a float
    with pytest.raises(ValueError, match=r"--steps must be >= 1 and below 2\*\*63"):
        check_ranges(with_value("", "steps", 2**63))
    check_ranges(with_value("", "steps", 2**63 - 1))


def test_text_and_switches_of_another_type_are_refused():
    with pytest.raises(ValueError, match=r"--env-kwargs must be text .*got \{\}"):
        validate(dataclasses.replace(Config(), env_kwargs={}))
    with pytest.raises(ValueError, match=r"--agent must be text .*got \['pets'\]"):
        validate(dataclasses.replace(Config(), agent=["pets"]))
    with pytest.raises(ValueError, match=r"--model\.bf16 must be true or false .*got 'yes'"):
        validate(with_value("model", "bf16", "yes"))


# ---------------------------------------------------------------------------------------------- --logdir
@pytest.mark.parametrize(
    ("logdir", "text"),
    [
        ("", "--logdir must name the run folder"),
        ("  ", "--logdir must name the run folder"),
        ("x" * 300, "is too long"),
        ("a/" * 3000, "is too long"),
        ("\ud800", "cannot write in a file name"),
        ("run\x00x", "NUL character"),
    ],
)
def test_a_logdir_no_file_system_takes_is_refused_before_anything(tmp_path, capsys, logdir, text):
    assert main(["train", "--logdir", logdir, "--steps", "10"]) == 2
    assert text in capsys.readouterr().err


def test_a_logdir_that_is_a_file_is_refused_and_the_file_left_alone(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    with pytest.raises(RunConfigError, match="is a file, not a folder: choose another --logdir"):
        write_config(path, Config(logdir=str(path)))
    with pytest.raises(RunConfigError, match="a part of the path is a file.*Choose another --logdir"):
        write_config(path / "run", Config())
    assert path.read_text() == "keep me"
    assert main(["train", "--logdir", str(path), "--steps", "10", "--quiet"]) == 2  # no traceback
    err = capsys.readouterr().err  # from write_config, or from whatever makes the folder before it
    assert err.startswith("error: ") and (
        "is a file, not a folder" in err or "a file of that name is in the way" in err
    )
    assert path.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(RunConfigError, match="permission denied.*Choose another --logdir"):
            write_config(parent / "run", Config())
    finally:
        parent.chmod(0o700)


@pytest.mark.parametrize(
    ("code", "text"),
    [(errno.EROFS, "the file system is read-only"), (errno.EACCES, "permission denied")],
)
def test_a_folder_that_cannot_be_made_is_refused(tmp_path, monkeypatch, code, text):
    def refuse(self, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(RunConfigError, match=f"cannot make the run folder .*{text}.*Choose another --logdir"):
        write_config(tmp_path / "run", Config())


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EROFS, "the file system is read-only"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_a_config_that_cannot_be_written_leaves_no_temp_file_and_the_old_one(tmp_path, monkeypatch, code, text):
    run = tmp_path / "run"
    write_config(run, Config(steps=5))
    before = (run / CONFIG).read_text()

    def fail(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(runs.os, "fsync", fail)
    with pytest.raises(RunConfigError, match=f"cannot write .*{CONFIG}: {text}.*The run did not start"):
        write_config(run, Config(steps=6))
    monkeypatch.undo()
    assert (run / CONFIG).read_text() == before
    assert sorted(p.name for p in run.iterdir()) == [CONFIG]


# ------------------------------------------------------------------------------------ a hand-edited config
def edited(tmp_path, edit) -> Path:
    run = tmp_path / "run"
    write_config(run, Config(logdir=str(run)))
    data = json.loads((run / CONFIG).read_text())
    result = edit(data)
    (run / CONFIG).write_text(result if isinstance(result, str) else json.dumps(data))
    return run


def _set(block, key, value):
    def edit(data):
        (data[block] if block else data)[key] = value

    return edit


def _delete(block, key):
    def edit(data):
        (data[block] if block else data).pop(key)

    return edit


@pytest.mark.parametrize(
    ("edit", "text"),
    [
        (_set("", "steps", "100"), r'"steps" must be an integer .*got string \'100\'; write it without quotes: 100'),
        (_set("model", "lr", "3e-4"), r'"model.lr" must be a number .*write it without quotes: 0.0003'),
        (_set("", "steps", 100.0), r'"steps" must be an integer .*write it as 100'),
        (_set("model", "bf16", "false"), r'"model.bf16" must be true or false .*write it without quotes: false'),
        (_set("", "env_kwargs", {"g": 3}), r'"env_kwargs" must be a string'),
        (_set("", "env", 5), r'"env" must be a string .*write it in quotes'),
        (_set("", "plan", [1, 2]), r'"plan" must be a JSON object of PlanConfig settings'),
        (_set("", "stepz", 5), r'unknown key "stepz" \(did you mean "steps"\?\): remove it'),
        (_set("model", "detr", 5), r'unknown key "model.detr" \(did you mean "model.deter"\?\)'),
        (_delete("", "seed"), r'missing key "seed": add it back \(the default: "seed": 0\)'),
        (_delete("model", "deter"), r'missing key "model.deter": add it back \(the default: "deter": 128\)'),
        (_delete("", "vmc"), r'missing key "vmc": add it back \(the default: "vmc": \{"rollouts": 500'),
        (_set("model", "deter", -3), r"--model.deter must be >= 1 .*got -3"),
        (_set("", "obs", "pixel"), r"--obs must be one of state, pixels, both, got 'pixel'"),
        (_set("", "agent", "dremer"), r"unknown agent 'dremer'"),
        (lambda data: "[1, 2]", r"it holds a JSON array, not an object of settings"),
        (lambda data: "", r"it is empty"),
        (lambda data: '{"steps": 10,', r"it is not valid JSON \(Expecting"),
        (lambda data: "[" * 100_000, r"nested too deep|not valid JSON"),
    ],
)
def test_a_hand_edited_config_json_names_the_key_and_the_fix(tmp_path, edit, text):
    run = edited(tmp_path, edit)
    with pytest.raises(RunConfigError, match=text) as err:
        read_config(run)
    assert str(err.value).startswith(f"{run / CONFIG} is not a valid run config: ")
    assert f"Fix it in {run / CONFIG}" in str(err.value)


def test_config_json_that_is_not_text_or_not_readable(tmp_path):
    run = edited(tmp_path, lambda data: "{}")
    (run / CONFIG).write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RunConfigError, match="it is not UTF-8 text"):
        read_config(run)
    (run / CONFIG).unlink()
    (run / CONFIG).mkdir()
    with pytest.raises(RunConfigError, match="cannot read .*config.json"):
        read_config(run)
    for nothing in (tmp_path / "nothing", tmp_path / ("x" * 300), Path("/etc/passwd"), Path("a\x00b")):
        with pytest.raises(RunConfigError, match="holds no run"):
            read_config(nothing)


def test_a_stored_config_of_a_gpu_run_still_reads_on_a_cpu(tmp_path):
    run = edited(tmp_path, _set("", "device", "cuda"))
    assert read_config(run).device == "cuda"  # wm eval falls back to the CPU; wm train --resume says why not


def test_the_cli_prints_a_bad_config_json_without_a_traceback(tmp_path, capsys):
    run = edited(tmp_path, _set("model", "deter", "128"))
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and '"model.deter" must be an integer' in err and "Traceback" not in err


def test_a_run_stored_before_the_current_dreamer_update_keeps_its_recipe(tmp_path):
    def older(data):
        for key in ADDED_LATER:
            block, _, name = key.rpartition(".")
            (data[block] if block else data).pop(name)

    cfg = read_config(edited(tmp_path, older))
    assert cfg.dreamer.optimizer == "adam" and cfg.dreamer.agc == 0 and cfg.dreamer.slow_targets
    assert cfg.dreamer.replay_value == 0 and cfg.eval_policy == "greedy"
