"""Data-parallel training across processes, GPUs and machines, launched by ``torchrun``.

``torchrun --nproc_per_node N -m worldmodels train ...`` starts N copies of ``wm train``; each
reads its rank from the environment torchrun sets and joins one process group (gloo on CPUs,
NCCL on GPUs). Every rank builds the same model from the run's seed, steps ``--envs`` envs of
its own (streams ``rank * envs ..``; their episodes are seeded apart), writes them into its own
shard of the run's replay folder, and trains on ``rows / N`` rows of every batch; gradients
and batch statistics are averaged across ranks before each optimiser step (nn/distributed.py),
so the ranks hold one model, the one a single process with the whole batch would train. Rank 0
alone writes config, metrics, checkpoints and evaluations. A resumed run may have another number
of ranks: the checkpoint holds one model, and the replay's streams are folded onto the new ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import RunConfigError
from ..nn.distributed import sum_over_ranks, world_size


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in its run: ``rank`` of ``world``, ``local`` on its machine."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes."""
        return self.rank == 0


def launched() -> Ranks:
    """This process's place as ``torchrun`` (or any launcher setting its variables) gave it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Ranks(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def check_distributable(cfg, rows: int, world: int) -> None:
    """Refuse settings a run on ``world`` ranks cannot train, saying what fits."""
    if world == 1:
        return
    if cfg.deterministic:
        raise RunConfigError(
            f"--deterministic replays a run bit for bit, which {world} processes stepping and reducing in parallel "
            "cannot promise; launch one process (without torchrun) or drop --deterministic"
        )
    if rows % world:
        fits = [n for n in range(2, rows + 1) if rows % n == 0]
        raise RunConfigError(
            f"{world} ranks cannot share a batch of {rows} rows evenly; launch with --nproc_per_node "
            f"in {fits[:8]} (or change --batch so that the ranks divide it)"
        )


def start(cfg) -> tuple[Ranks, torch.device | None]:
    """Join the process group of a ``torchrun`` launch; returns this process's ranks and the device
    it trains on (its own GPU under NCCL; None: ``cfg.device`` as it resolves)."""
    ranks = launched()
    if ranks.world == 1:
        return ranks, None
    from ..config import resolve_device

    device = resolve_device(cfg.device)
    if device.type == "cuda":
        if torch.cuda.device_count() <= ranks.local:
            raise RunConfigError(
                f"rank {ranks.rank} is local rank {ranks.local}, and this machine has {torch.cuda.device_count()} "
                "GPU(s): launch at most that many processes per node (--nproc_per_node)"
            )
        device = torch.device("cuda", ranks.local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    return ranks, device


def stop() -> None:
    """Leave the process group (safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_module(module: torch.nn.Module) -> None:
    """Every rank takes rank 0's parameters and buffers (the same seed builds the same model on
    every rank; this makes it so whatever the initialisers draw, and after a resume)."""
    if world_size() == 1:
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def total(value: int | float, device: torch.device | None = None) -> int | float:
    """``value`` summed over the ranks (a count stays an int, a float in float64)."""
    if world_size() == 1:
        return value
    exact = isinstance(value, int)
    summed = sum_over_ranks(
        torch.tensor([value], dtype=torch.int64 if exact else torch.float64, device=device or "cpu")
    )
    return int(summed) if exact else float(summed)


def gather_lists(values: list[int]) -> list[int]:
    """Every rank's ``values`` concatenated in rank order."""
    if world_size() == 1:
        return list(values)
    out: list[list[int] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(out, list(values))
    return [v for part in out for v in part]


def peer_lost(err: BaseException) -> bool:
    """Whether ``err`` is a collective failing because another rank went away."""
    return isinstance(err, (dist.DistBackendError, dist.DistNetworkError)) or (
        isinstance(err, RuntimeError) and any(w in str(err) for w in ("Connection closed", "Connection reset", "gloo"))
    )


def lost_rank_error(ranks: Ranks, at: int, unit: str, run_dir) -> Exception:
    """What a rank raises when another went away mid-run (after saving what it could)."""
    from ..errors import WorldModelsError

    saved = "rank 0 saved a checkpoint" if ranks.main else "rank 0 saves the checkpoint"
    return WorldModelsError(
        f"rank {ranks.rank}: another of the {ranks.world} ranks stopped at about {at:,} {unit} steps; {saved} "
        "and the ranks still running flushed their replay shards. Continue with the same torchrun command and "
        f"`wm train --resume {run_dir}` (any number of ranks)"
    )
