"""Data-parallel training (run/distributed.py, nn/distributed.py) on gloo, two processes.

The ranks must train one model: the one a single process trains with the whole batch. PETS's
update is deterministic given its batch, so two ranks with half a batch each are compared with
one process and the whole batch; Dreamer's draws noise per rank, so its ranks are checked to
hold identical parameters and statistics after updating on different batches. The CLI runs are
launched with torchrun, as a user launches them."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import TINY_MODEL
from worldmodels.config import Config, EnsembleConfig, ModelConfig
from worldmodels.errors import NonFiniteLossError, RunConfigError
from worldmodels.run.distributed import Ranks, check_distributable
from worldmodels.run.runs import build_agent
from worldmodels.specs import VECTOR, ActionSpec, ObsSpec

OBS, PETS_ACTION, DREAMER_ACTION = ObsSpec(vector=3), ActionSpec(dim=1, discrete=False), ActionSpec(2, discrete=True)
PETS_CFG = Config(agent="pets", ensemble=EnsembleConfig(members=2, units=16, layers=2, batch=8))
DREAMER_CFG = Config(agent="dreamer", model=ModelConfig(**TINY_MODEL), batch=4, seq_len=6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch(rows: int, length: int, action: ActionSpec, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if action.discrete:
        act = torch.nn.functional.one_hot(torch.randint(0, action.dim, (rows, length), generator=g), action.dim)
    else:
        act = torch.rand(rows, length, action.dim, generator=g) * 2 - 1
    no = torch.zeros(rows, length, dtype=torch.bool)
    return {
        VECTOR: torch.randn(rows, length, OBS.vector, generator=g),
        "action": act.float(),
        "reward": torch.randn(rows, length, generator=g),
        "is_first": no.clone().index_fill_(1, torch.tensor([0]), True),
        "is_terminal": no,
        "is_last": no,
    }


def _pets_batches(world: int, steps: int) -> list[dict[str, torch.Tensor]]:
    """Whole batches laid out so that rank r's contiguous share gives each member its rows of r."""
    rows, length = build_agent(PETS_CFG, OBS, PETS_ACTION).replay_shape
    return [_batch(rows, length, PETS_ACTION, seed=100 + i) for i in range(steps)]


def _share(batch: dict[str, torch.Tensor], members: int, world: int, rank: int) -> dict[str, torch.Tensor]:
    """Rank ``rank``'s rows: each member's rows cut into ``world`` parts, part ``rank`` of each."""
    return {k: v.reshape(members, world, -1, *v.shape[1:])[:, rank].flatten(0, 1) for k, v in batch.items()}


def _flat_state(agent: torch.nn.Module) -> torch.Tensor:
    return torch.cat([t.detach().double().flatten() for t in agent.state_dict().values() if t.is_floating_point()])


def _worker(rank: int, world: int, port: int, task: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        result = {}
        if task == "pets":
            agent = build_agent(PETS_CFG, OBS, PETS_ACTION)
            for batch in _pets_batches(world, 3):
                agent.train_step(_share(batch, PETS_CFG.ensemble.members, world, rank))
            result["state"] = _flat_state(agent)
        elif task == "dreamer":
            agent = build_agent(DREAMER_CFG, OBS, DREAMER_ACTION)
            before = _flat_state(agent)
            rows, length = agent.replay_shape
            for step in range(2):  # each rank its own batch and its own noise
                torch.manual_seed(1000 * rank + step)
                agent.train_step(_batch(rows // world, length, DREAMER_ACTION, seed=10 * rank + step))
            result["state"], result["before"] = _flat_state(agent), before
        elif task == "nan":
            from worldmodels.agents.base import check_finite

            try:
                check_finite({"loss": torch.tensor(float("nan") if rank == 1 else 1.0)})
                result["raised"] = ""
            except NonFiniteLossError as err:
                result["raised"] = str(err)
        torch.save(result, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _spawn(task: str, tmp_path, world: int = 2) -> list[dict]:
    mp.spawn(_worker, args=(world, _free_port(), task, str(tmp_path)), nprocs=world, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]


def test_two_ranks_with_half_batches_train_what_one_process_trains_with_the_whole_batch(tmp_path):
    ranks = _spawn("pets", tmp_path)
    torch.manual_seed(0)
    agent = build_agent(PETS_CFG, OBS, PETS_ACTION)
    initial = _flat_state(agent)
    for batch in _pets_batches(1, 3):
        agent.train_step(batch)
    alone = _flat_state(agent)
    assert not torch.allclose(alone, initial)  # the steps moved the weights
    for result in ranks:  # the optimiser state and the normalisers' statistics included
        torch.testing.assert_close(result["state"], alone, rtol=1e-5, atol=1e-6)


def test_dreamer_ranks_hold_one_model_after_updating_on_different_batches(tmp_path):
    first, second = _spawn("dreamer", tmp_path)
    assert not torch.allclose(first["state"], first["before"])
    # Weights, optimiser moments, the slow critic and the return percentiles: all averaged or
    # computed from the whole batch, so nothing drifts apart between the ranks.
    torch.testing.assert_close(first["state"], second["state"], rtol=0, atol=0)


def test_a_nan_loss_on_one_rank_stops_every_rank(tmp_path):
    first, second = _spawn("nan", tmp_path)
    assert "rank 1" in first["raised"]  # the rank whose loss was finite says where it was not
    assert "'loss' is nan" in second["raised"]


def test_a_world_size_that_does_not_divide_the_batch_says_what_fits():
    check_distributable(DREAMER_CFG, rows=16, world=4)
    with pytest.raises(RunConfigError, match=r"3 ranks cannot share a batch of 16 rows evenly.*\[2, 4, 8, 16\]"):
        check_distributable(DREAMER_CFG, rows=16, world=3)
    with pytest.raises(RunConfigError, match="--deterministic"):
        check_distributable(dataclasses.replace(DREAMER_CFG, deterministic=True), rows=16, world=2)
    assert Ranks().main and not Ranks(rank=1, world=2).main


def test_vmc_refuses_a_torchrun_launch(tmp_path, monkeypatch):
    from worldmodels.run.train import TrainOptions
    from worldmodels.vmc.stages import train_vmc

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RunConfigError, match="without torchrun"):
        train_vmc(Config(agent="vmc", logdir=str(tmp_path / "run")), False, TrainOptions())


def _torchrun(nproc: int, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    command = [*launch, "-m", "worldmodels", *args] if nproc > 1 else [sys.executable, "-m", "worldmodels", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_torchrun_trains_one_run_that_rank_zero_writes_and_another_world_size_resumes(tmp_path):
    run = tmp_path / "run"
    flags = ["--steps", "400", "--prefill", "200", "--train-ratio", "8", "--batch", "4", "--seq-len", "8"]
    tiny = [f"--model.{k.replace('_', '-')}={v}" for k, v in TINY_MODEL.items() if not isinstance(v, bool)]
    common = ["--env", "CartPole-v1", "--eval-every", "400", "--eval-episodes", "1", "--threads", "1", "--no-finish"]
    done = _torchrun(2, "train", *flags, *tiny, *common, "--logdir", str(run))
    assert done.stdout.count("run folder:") == 1 and "done on 2 ranks: 400 env steps" in done.stdout
    # Both ranks' envs wrote into the one replay, each under its own stream; rank 0 wrote the rest.
    streams = {p.stem.split("-s")[-1] for p in (run / "replay").glob("chunk-*.npz")}
    assert streams == {"0", "1"}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in rows if "eval/return" in r] == [400]  # one evaluation, not one per rank
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["world_size"] == 2 and sum(ckpt["streams"]) == 400
    assert ckpt["counters"]["train_steps"] == (400 - 200) * 8 // (4 * 8)

    # One process goes on from the two ranks' replay: it counts both shards and collects the rest.
    done = _torchrun(1, "train", "--resume", str(run), "--steps", "600", "--no-finish")
    assert "shared out among its ranks" in done.stdout and "done: 600 env steps" in done.stdout
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["world_size"] == 1 and ckpt["streams"] == [600]
    assert ckpt["counters"]["train_steps"] == (600 - 200) * 8 // (4 * 8)


def _rank_process(rank: int, marker: str) -> int | None:
    """The pid of the torchrun worker of ``rank`` whose command line names ``marker``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if marker in cmdline and f"RANK={rank}" in environ and "worldmodels" in cmdline:
            return int(entry)
    return None


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the rank's process through /proc")
def test_a_rank_killed_mid_run_stops_the_others_cleanly_and_the_run_resumes(tmp_path):
    import signal
    import time

    run = tmp_path / "killed-run"
    tiny = [f"--model.{k.replace('_', '-')}={v}" for k, v in TINY_MODEL.items() if not isinstance(v, bool)]
    args = ["train", "--env", "CartPole-v1", "--steps", "100000", "--prefill", "100", "--batch", "4", "--seq-len", "8"]
    args += [*tiny, "--train-ratio", "8", "--log-every", "100", "--eval-every", "100000", "--threads", "1"]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "worldmodels"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [*launch, *args, "--no-finish", "--logdir", str(run)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    try:
        deadline = time.monotonic() + 180
        metrics = run / "metrics.jsonl"
        while time.monotonic() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
            time.sleep(0.5)
        victim = _rank_process(1, str(run))
        assert victim is not None, "rank 1 not found"
        os.kill(victim, signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    text = out.decode(errors="replace")
    assert proc.returncode != 0  # torchrun reports the lost rank
    assert "rank 0" in text and "--resume" in text  # rank 0 said what happened and how to go on
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    reached = ckpt["counters"]["env_steps"]
    assert reached >= 300
    done = _torchrun(1, "train", "--resume", str(run), "--steps", str(reached + 100), "--no-finish")
    assert f"done: {reached + 100} env steps" in done.stdout
