"""What one gradient step needs to agree on across the ranks of a data-parallel run.

A run launched by ``torchrun`` has one process per rank, each with its own envs, replay shard and
share of the batch (run/distributed.py). For the ranks to train one model, every quantity an
update computes from the batch must be the one a single process would compute from the whole
batch: the gradients (averaged, before they are clipped, so clipping sees the global gradient),
the statistics modules keep (normalisers, return percentiles), and whether a loss is finite.
Each helper here does that through ``torch.distributed`` and is the identity in a process that
is not part of a group of two or more, so agents call them unconditionally.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    """Ranks training together (1 outside a distributed run)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 outside a distributed run)."""
    return dist.get_rank() if world_size() > 1 else 0


def average_gradients(parameters: Iterable[Tensor]) -> None:
    """Replace each gradient by its mean over the ranks, in one all-reduce of a flat buffer.

    A parameter that has a gradient on some ranks and none on others (a branch one rank's batch
    did not reach) counts as a zero gradient there; one with no gradient anywhere keeps none, as
    in a single process, so its optimiser does not move it."""
    if world_size() == 1:
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    device = params[0].device
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=device)
    dist.all_reduce(present, op=dist.ReduceOp.MAX)
    chosen = [p for p, any_rank in zip(params, present.tolist()) if any_rank]
    for p in chosen:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if not chosen:
        return
    flat = torch.cat([p.grad.reshape(-1).to(torch.float32) for p in chosen])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p in chosen:
        n = p.grad.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def gather_rows(x: Tensor) -> Tensor:
    """``x (N, ...)`` of every rank concatenated along the first axis (rank order). The ranks'
    ``N`` may differ."""
    if world_size() == 1:
        return x
    count = torch.tensor([x.shape[0]], device=x.device)
    counts = [torch.zeros_like(count) for _ in range(world_size())]
    dist.all_gather(counts, count)
    most = int(max(int(c) for c in counts))
    padded = torch.zeros((most, *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[: int(c)] for part, c in zip(parts, counts)])


def sum_over_ranks(x: Tensor) -> Tensor:
    """``x`` summed over the ranks (a new tensor)."""
    if world_size() == 1:
        return x
    out = x.clone()
    dist.all_reduce(out)
    return out


def moments(x: Tensor) -> tuple[int, Tensor, Tensor]:
    """Rows, mean and sum of squared deviations per column of ``x (N, D)`` over every rank's rows
    (two passes, so as exact as one process's ``mean`` and ``var`` of them all)."""
    count_and_sum = sum_over_ranks(torch.cat([x.new_tensor([x.shape[0]]), x.sum(0)]))  # one reduction
    n = int(count_and_sum[0])
    if n == 0:
        return 0, x.new_zeros(x.shape[-1]), x.new_zeros(x.shape[-1])
    mean = count_and_sum[1:] / n
    return n, mean, sum_over_ranks(((x - mean) ** 2).sum(0))


def any_rank(flag: bool, device: torch.device | str = "cpu") -> int:
    """The lowest rank for which ``flag`` holds, or -1 where it holds on none (one all-reduce)."""
    if world_size() == 1:
        return 0 if flag else -1
    mark = torch.tensor([world_size() - rank() if flag else 0], device=device)
    dist.all_reduce(mark, op=dist.ReduceOp.MAX)
    return -1 if int(mark) == 0 else world_size() - int(mark)
