"""Ranges of the numeric settings: generated from the dataclasses' field metadata, checked before a run."""

import dataclasses
import math

import pytest
import torch

from worldmodels.cli import main
from worldmodels.config import BLOCKS, RANGE_KEYS, Config, check_ranges, flag, validate

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
