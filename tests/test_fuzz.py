"""Fuzzing the inputs a user hands ``wm train``: flags, a hand-edited config.json, damaged
checkpoints and replay chunks. Each must give a clear error (WorldModelsError or ValueError, or
argparse's exit 2) or work, never another exception.

``WM_FUZZ_EXAMPLES=500 pytest -s tests/test_fuzz.py`` tries more cases per strategy; the last test
prints how many cases each strategy tried and their outcomes.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import io
import json
import os
import shutil
import struct
import tempfile
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from worldmodels import cli
from worldmodels.config import BLOCKS, Config, flag, validate
from worldmodels.data.replay import ReplayStore
from worldmodels.errors import CheckpointError, RunConfigError, WorldModelsError
from worldmodels.run import checkpoint
from worldmodels.run.runs import CONFIG, read_config, write_config

EXAMPLES = int(os.environ.get("WM_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# (strategy, outcome) -> cases; printed by the last test.
OUTCOMES: Counter = Counter()

# A scratch folder for the whole module (hypothesis runs each example many times per test call).
SCRATCH = Path(tempfile.mkdtemp(prefix="wm-fuzz-"))
set_hypothesis_home_dir(SCRATCH / "hypothesis")  # its caches too: no .hypothesis/ in the checkout


def teardown_module():
    shutil.rmtree(SCRATCH, ignore_errors=True)


def fresh_dir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=name + "-", dir=SCRATCH))


def outcome(err: BaseException) -> str:
    """A short label for an error: its type and the start of its message."""
    words = " ".join(str(err).split()[:4])
    return f"{type(err).__name__}: {words}"[:60]


# ------------------------------------------------------------------------------------- (a) wm train flags
PARSER = cli.build_parser()
TRAIN = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
# Every option of `wm train` (generated from the parser, which generates them from the config
# dataclasses): (option string, takes a value, its choices).
OPTIONS = [
    (opt, action.nargs != 0, list(action.choices) if action.choices else None, action.type)
    for action in TRAIN._actions
    if action.option_strings and not isinstance(action, argparse._HelpAction)
    for opt in action.option_strings
]
# Every field of the config and of its blocks is one of them (but --model for family, and
# finetune_from, which only `wm finetune` sets).
NOT_FLAGS = {"family", "finetune_from"}
FIELD_FLAGS = {flag("", f.name) for f in dataclasses.fields(Config) if f.name not in BLOCKS and f.name not in NOT_FLAGS}
FIELD_FLAGS |= {flag(block, f.name) for block, cls in BLOCKS.items() for f in dataclasses.fields(cls)}
assert FIELD_FLAGS <= {o[0] for o in OPTIONS}, FIELD_FLAGS - {o[0] for o in OPTIONS}

NASTY = [
    "-1", "0", "-0", "1", "2", "1.5", "0.5", "2.0", "1e12", "1000000000000", "9" * 400, "-1e309", "1e309",
    "nan", "NaN", "inf", "-inf", "1e-320", "abc", "", " ", "x" * 5000, "a/" * 3000, "é☃𝔘", "\u202e", "٣",
    "1_000", "0x10", "true", "false", "null", "{}", "[1]", '{"a": 1}', '"s"', "{bad", "a=1", "=", "a=", "=1",
    "cuda", "cuda:0", "cuda:x", "cpu:1", "auto", "/", "/etc/passwd", "/proc/nope/x", "..", "--steps", "-",
]  # fmt: skip
# Paths for --logdir and --resume: empty, too long, a file, under a file, a NUL, unencodable, ...
PATH_VALUES = [
    "", " ", "x" * 300, "a/" * 3000, "/etc/passwd", "/etc/passwd/run", "/proc/nope/run", "/", ".", "..",
    "\x00", "run\x00x", "\udcff", "\ud800", "é☃𝔘/run", "-1",
]  # fmt: skip
value_text = st.one_of(st.sampled_from(NASTY), st.text(max_size=40), st.floats().map(repr), st.integers().map(str))
# Values argparse takes for a flag of this type, so that resolve_config and validate see them.
TYPED = {
    int: st.one_of(st.integers(-5, 5), st.integers(), st.integers(2**62, 2**70)).map(str),
    float: st.one_of(st.floats(), st.floats(-2, 2), st.sampled_from(["nan", "inf", "-inf", "1e309", "1e-320"])).map(
        str
    ),
}


@st.composite
def train_argv(draw) -> list[str]:
    """``train --logdir NEW`` then 1 to 4 options, each with a nasty value (or one of its choices)."""
    argv = ["train", "--logdir", str(SCRATCH / "no-run-here"), "--quiet"]  # resolve_config writes nothing
    for _ in range(draw(st.integers(1, 4))):
        opt, takes_value, choices, kind = draw(st.sampled_from(OPTIONS))
        if not takes_value:
            argv.append(opt)
            continue
        if choices and draw(st.booleans()):
            value = draw(st.sampled_from(choices))
        elif opt == "--resume" and draw(st.booleans()):
            value = str(STORED_RUN)
        elif opt in ("--logdir", "--resume") and draw(st.booleans()):
            value = draw(st.sampled_from(PATH_VALUES))
        elif kind in TYPED and draw(st.booleans()):
            value = draw(TYPED[kind])
        else:
            value = draw(value_text)
        argv += [f"{opt}={value}"] if draw(st.booleans()) else [opt, value]
    return argv


def stored_run() -> Path:
    """A run folder holding only a config.json, for --resume to read."""
    run = fresh_dir("stored") / "run"
    write_config(run, Config(logdir=str(run)))
    return run


STORED_RUN = stored_run()


def env_kwargs_bug(argv: list[str]) -> bool:
    """--env-kwarg together with an --env-kwargs that is JSON but not an object: cli._given
    assigns into it (a TypeError), see test_env_kwarg_onto_a_non_object_env_kwargs."""
    given = PARSER.parse_args(argv)
    if not given.env_kwarg_list:
        return False
    try:
        return not isinstance(json.loads(getattr(given, "env_kwargs", "{}") or "{}"), dict)
    except json.JSONDecodeError:
        return False


@FUZZ
@given(argv=train_argv())
def test_train_flags_give_a_clear_error_or_a_config(argv):
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            args = PARSER.parse_args(argv)
    except SystemExit as err:
        assert err.code == 2, argv
        OUTCOMES["a: wm train flags", "argparse: exit 2"] += 1
        return
    if env_kwargs_bug(argv):
        OUTCOMES["a: wm train flags", "skipped: --env-kwarg onto a non-object (known, cli._given)"] += 1
        return
    try:
        cfg, _ = cli.resolve_config(args)
        validate(cfg)
    except (WorldModelsError, ValueError) as err:
        assert str(err), argv
        OUTCOMES["a: wm train flags", outcome(err)] += 1
        return
    OUTCOMES["a: wm train flags", "accepted"] += 1


@FUZZ
@given(name=st.one_of(st.sampled_from(PATH_VALUES), st.text(max_size=300)), under=st.booleans())
def test_write_config_makes_the_run_folder_or_raises_run_config_error(name, under):
    """``write_config`` to a fuzzed folder name (under a scratch folder, or as it is for the absolute
    paths it cannot write to: a file, a folder under a file, /proc)."""
    unwritable = name.startswith(("/etc/passwd", "/proc/")) and not under
    base = fresh_dir("write")
    # Anything else stays inside base: no leading /, no .. (this runs as whoever runs the tests).
    inside = "/".join("up" if part == ".." else part for part in name.lstrip("/").split("/"))
    run = Path(name) if unwritable else base / inside
    assert unwritable or base in (run, *run.parents), run
    try:
        try:
            write_config(run, Config(logdir=str(run)))
        except RunConfigError as err:
            assert "--logdir" in str(err) or "cannot" in str(err), err
            assert not list(base.rglob("*.tmp"))
            OUTCOMES["e: write_config folder", outcome(err)] += 1
            return
        assert not unwritable
        assert read_config(run) == Config(logdir=str(run))
        OUTCOMES["e: write_config folder", "written"] += 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_env_kwarg_onto_a_non_object_env_kwargs():
    args = PARSER.parse_args(["train", "--env-kwargs", "[1]", "--env-kwarg", "a=1", "--logdir", str(SCRATCH / "k")])
    with pytest.raises(ValueError, match="--env-kwargs"):
        cli.resolve_config(args)


# ------------------------------------------------------------------------------- (b) damaged checkpoints
def small_checkpoint() -> bytes:
    """The bytes of a real checkpoint (checkpoint.save) of a tiny payload shaped like a run's."""
    run = fresh_dir("ckpt")
    layer = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(layer.parameters())
    layer(torch.ones(1, 3)).sum().backward()
    opt.step()
    payload = {
        "agent": layer.state_dict(),
        "optimizers": {"model": opt.state_dict()},
        "counters": {"env_steps": 10, "train_steps": 2},
        "rng": checkpoint.rng_state(np.random.default_rng(0)),
        "config": Config().to_json(),
    }
    return checkpoint.save(run, payload).read_bytes()


CKPT = small_checkpoint()


def wrong_zip(names: list[str], data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in names:
            z.writestr(name, data)
    return buf.getvalue()


@st.composite
def damaged(draw, good: bytes) -> tuple[str, bytes]:
    """``good`` damaged one way: random bytes, truncated, bit flips, a slice overwritten, or (for a
    zip) a zip with other contents."""
    how = draw(st.sampled_from(["random", "truncate", "flips", "overwrite", "wrong zip", "append"]))
    if how == "random":
        return how, draw(st.binary(max_size=len(good)))
    if how == "truncate":
        return how, good[: draw(st.integers(0, len(good) - 1))]
    if how == "append":
        return how, good + draw(st.binary(min_size=1, max_size=64))
    data = bytearray(good)
    if how == "flips":
        for _ in range(draw(st.integers(1, 16))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        return how, bytes(data)
    if how == "overwrite":
        start = draw(st.integers(0, len(data) - 1))
        junk = draw(st.binary(min_size=1, max_size=256))
        data[start : start + len(junk)] = junk
        return how, bytes(data[: len(good)])
    prefix = draw(st.sampled_from(["archive/", "checkpoint/", ""]))
    names = draw(
        st.lists(st.sampled_from(["data.pkl", "byteorder", "version", "data/0", ".format_version"]), min_size=1)
    )
    payload = draw(st.one_of(st.binary(max_size=64), st.just(CKPT[:200])))
    return how, wrong_zip([prefix + n for n in dict.fromkeys(names)], payload)


def check_failed(message: str) -> str:
    """Which of checkpoint.load's own checks refused a file torch.load read."""
    for words, what in (("in format", "another format"), ("it lacks", "keys missing"), ("it holds a", "not a dict")):
        if words in message:
            return what
    return message[:40]


@FUZZ
@given(case=damaged(CKPT))
def test_damaged_checkpoints_load_or_raise_checkpoint_error(case):
    how, data = case
    run = fresh_dir("bad-ckpt")
    path = run / checkpoint.NAME
    path.write_bytes(data)
    try:
        try:
            ckpt = checkpoint.load(path)
        except CheckpointError as err:
            assert str(path) in str(err)
            why = type(err.__cause__).__name__ if err.__cause__ else "loaded, but " + check_failed(str(err))
            OUTCOMES["b: checkpoint bytes", f"{how}: CheckpointError ({why})"] += 1
            return
        assert isinstance(ckpt, dict) and set(checkpoint.KEYS) <= set(ckpt)
        OUTCOMES["b: checkpoint bytes", f"{how}: loaded"] += 1
    finally:
        shutil.rmtree(run, ignore_errors=True)


# --------------------------------------------------------------------------- (c) a hand-edited config.json
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["100", "1e3", "true", "cpu", "dreamer", "pixels", "S", "{}", "cuda"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
GOOD_CONFIG = json.loads(Config(logdir="runs/fuzz").to_json())
PATHS = [(k,) for k in GOOD_CONFIG] + [(k, f) for k, v in GOOD_CONFIG.items() if isinstance(v, dict) for f in v]
# A value of the same JSON type as the one it replaces (a number for a number, ...).
SAME_TYPE = {
    bool: st.booleans(),
    int: st.one_of(st.integers(-3, 3), st.integers()),
    float: st.one_of(st.floats(), st.floats(0, 1), st.integers(-3, 3)),
    str: st.one_of(st.text(max_size=12), st.sampled_from(["cpu", "cuda", "pixels", "S", "pets", "mcts", "{}", "[1]"])),
}


@st.composite
def edited_config(draw) -> tuple[list[str], object]:
    """A valid config.json with 1 to 3 edits: a value replaced (by any JSON value, or one of the same
    type), a key deleted or a key added; now and then, not an object at all."""
    if draw(st.integers(0, 19)) == 0:
        return ["not an object"], draw(json_values)
    data, edits = copy.deepcopy(GOOD_CONFIG), []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = data
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        how = draw(st.sampled_from(["replace", "same type", "delete", "add"]))
        if how == "same type" and type(parent.get(path[-1])) in SAME_TYPE:
            parent[path[-1]] = draw(SAME_TYPE[type(parent[path[-1]])])
        elif how in ("replace", "same type"):
            how = "replace"
            parent[path[-1]] = draw(json_values)
        elif how == "delete":
            parent.pop(path[-1], None)
        else:
            parent[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
        edits.append(how)
    return edits, data


@FUZZ
@given(case=edited_config(), raw=st.integers(0, 19))
def test_edited_config_json_reads_or_raises_run_config_error(case, raw):
    edits, data = case
    run = fresh_dir("config")
    text = json.dumps(data, indent=2)
    if raw == 13 and len(text) > 2:  # now and then, damage the text itself
        text = text[: len(text) // 2]
        edits = ["cut in half"]
    (run / CONFIG).write_text(text)
    label = "+".join(sorted(set(edits))) or "none"
    try:
        try:
            cfg = read_config(run)
            validate(cfg)
        except RunConfigError as err:
            assert str(run / CONFIG) in str(err)
            OUTCOMES["c: config.json", f"{label}: RunConfigError"] += 1
            return
        except ValueError as err:  # validate: settings that read fine but cannot work here (--device cuda)
            OUTCOMES["c: config.json", f"{label}: {outcome(err)}"] += 1
            return
        OUTCOMES["c: config.json", f"{label}: accepted"] += 1
    finally:
        shutil.rmtree(run, ignore_errors=True)


# ------------------------------------------------------------------------------- (d) damaged replay chunks
def replay_folder() -> tuple[Path, list[Path]]:
    """A replay folder written by ReplayStore: two episodes, in chunks of up to 8 steps."""
    folder = fresh_dir("replay") / "replay"
    store = ReplayStore(folder, capacity=200, streams=1, chunk=8)
    rng = np.random.default_rng(0)
    for t in range(30):
        first, last = t in (0, 12), t in (11, 29)
        store.add(
            {
                "vector": rng.normal(size=(1, 3)).astype(np.float32),
                "action": rng.normal(size=(1, 2)).astype(np.float32),
                "reward": np.array([rng.normal()], np.float32),
                "is_first": np.array([first]),
                "is_terminal": np.array([last and t == 11]),
                "is_last": np.array([last]),
            }
        )
    store.flush()
    chunks = sorted(folder.glob("chunk-*.npz"))
    assert len(chunks) >= 3
    return folder, chunks


REPLAY, CHUNKS = replay_folder()
CHUNK_BYTES = {path.name: path.read_bytes() for path in CHUNKS}


def load_replay(folder: Path) -> tuple[ReplayStore, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = ReplayStore(folder, capacity=200, streams=1, chunk=8)
    return store, [str(w.message) for w in caught]


@FUZZ
@given(name=st.sampled_from(sorted(CHUNK_BYTES)), data=st.data())
def test_damaged_replay_chunk_is_set_aside_not_raised(name, data):
    how, bad = data.draw(damaged(CHUNK_BYTES[name]))
    folder = fresh_dir("bad-replay") / "replay"
    shutil.copytree(REPLAY, folder)
    (folder / name).write_bytes(bad)
    try:
        store, messages = load_replay(folder)
        corrupt = (folder / name).with_suffix(".corrupt").exists()
        if corrupt:
            assert any("unreadable" in m for m in messages), messages
            assert len(store) < 30
        OUTCOMES["d: replay chunk", f"{how}: {'set aside' if corrupt else 'loaded'}"] += 1
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


def damaged_replay(edit) -> Path:
    """A copy of the replay folder whose first chunk's bytes ``edit`` changed."""
    folder = fresh_dir("known") / "replay"
    shutil.copytree(REPLAY, folder)
    first = sorted(folder.glob("chunk-*.npz"))[0]
    data = bytearray(first.read_bytes())
    edit(data)
    first.write_bytes(bytes(data))
    return folder


def _damage_deflate(data: bytearray) -> None:
    """Overwrite the start of the first member's compressed data (its CRC is checked only later)."""
    name_len, extra_len = struct.unpack("<HH", data[26:30])
    start = 30 + name_len + extra_len
    data[start : start + 4] = b"\xff\xff\xff\xff"


def _newer_zip_version(data: bytearray) -> None:
    """The central directory's first entry asks for zip version 10.9 to extract."""
    directory = struct.unpack("<I", data[data.rfind(b"PK\x05\x06") + 16 :][:4])[0]
    data[directory + 6 : directory + 8] = struct.pack("<H", 109)


@pytest.mark.parametrize(
    "edit", [_damage_deflate, _newer_zip_version], ids=["damaged deflate data", "a newer zip version"]
)
def test_damaged_chunk_the_fuzzing_found_is_set_aside(edit):
    """Cases the fuzz test found (zlib.error and NotImplementedError escaped the loader): set aside too."""
    folder = damaged_replay(edit)
    first = sorted(folder.glob("chunk-*.npz"))[0]
    try:
        _, messages = load_replay(folder)
        assert first.with_suffix(".corrupt").exists() and messages
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


def test_chunk_without_is_last_is_set_aside():
    folder = fresh_dir("known") / "replay"
    shutil.copytree(REPLAY, folder)
    first = sorted(folder.glob("chunk-*.npz"))[0]
    with np.load(first) as data:
        arrays = {k: data[k] for k in data.files if k != "is_last"}
    with open(first, "wb") as f:
        np.savez_compressed(f, **arrays)
    try:
        _, messages = load_replay(folder)
        assert first.with_suffix(".corrupt").exists() and messages
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ summary
def test_zz_print_the_outcome_counts():
    """How many cases each strategy tried, and what came of them (``pytest -s`` shows it)."""
    if not OUTCOMES:
        pytest.skip("no fuzz test ran before this one")
    lines = []
    for strategy in sorted({s for s, _ in OUTCOMES}):
        rows = {o: n for (s, o), n in OUTCOMES.items() if s == strategy}
        lines.append(f"{strategy}: {sum(rows.values())} cases")
        lines += [f"    {n:6d}  {o}" for o, n in sorted(rows.items(), key=lambda r: -r[1])]
    print(f"\nfuzz outcomes (WM_FUZZ_EXAMPLES={EXAMPLES} per strategy)\n" + "\n".join(lines))
    report = os.environ.get("WM_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps({f"{s} | {o}": n for (s, o), n in sorted(OUTCOMES.items())}, indent=2))
