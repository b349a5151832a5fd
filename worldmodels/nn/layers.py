"""Building blocks: LayerNorm + SiLU MLPs, a norm-GRU cell, and the image encoder/decoder CNNs."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .distributed import moments


class SparseFeat:
    """Features ``[x, z]`` with the one-hot tail ``z`` kept as class indices.

    Imagination evaluates several heads on the same ``(N, H+1)`` states; computing the indices
    once and gathering weight rows avoids materialising and re-scanning the wide one-hot.
    Indexing (``feat[:, 1:]``) and ``float()`` act on the leading dims, as on a dense tensor, so
    consumers need not know which kind of features a world model gives.
    """

    __slots__ = ("dense", "index")

    def __init__(self, dense: Tensor, index: Tensor):
        self.dense = dense  # (..., D)
        self.index = index  # (..., S) int64 class of each one-hot group

    def map(self, fn: Callable[[Tensor], Tensor]) -> SparseFeat:
        return SparseFeat(fn(self.dense), fn(self.index))

    def __getitem__(self, key) -> SparseFeat:
        """Index the leading dims: ``feat[:, 1:]`` is ``SparseFeat(dense[:, 1:], index[:, 1:])``."""
        return self.map(lambda x: x[key])

    def float(self) -> SparseFeat:
        return SparseFeat(self.dense.float(), self.index)

    @property
    def lead(self) -> torch.Size:
        return self.dense.shape[:-1]

    def to_dense(self, classes: int) -> Tensor:
        onehot = F.one_hot(self.index, classes).to(self.dense.dtype).flatten(-2)
        return torch.cat([self.dense, onehot], -1)


def time_slice(feat: Tensor | SparseFeat, index: slice) -> Tensor | SparseFeat:
    """``feat[:, index]`` for dense features and :class:`SparseFeat` alike."""
    if isinstance(feat, SparseFeat):
        return feat.map(lambda x: x[:, index])
    return feat[:, index]


class OneHotTailLinear(nn.Module):
    """Linear map of ``[x, z]`` where the trailing ``z`` is ``groups`` one-hots of ``classes``.

    Mathematically a bias-free ``nn.Linear``. Given a :class:`SparseFeat` (imagination, actor
    and critic training) ``W_z z`` is a sum of ``groups`` weight rows gathered with
    ``embedding_bag`` instead of a ``groups*classes``-wide matmul: about 30x less work for a
    32x32 latent. A dense input takes the ordinary product (straight-through gradients flow).
    """

    def __init__(self, head: int, groups: int, classes: int, out: int):
        super().__init__()
        self.head, self.groups, self.classes = head, groups, classes
        self.w_head = nn.Parameter(torch.empty(out, head)) if head else None
        self.w_onehot = nn.Parameter(torch.empty(groups * classes, out))  # rows are gathered
        bound = 1 / math.sqrt(head + groups * classes)
        for w in (self.w_head, self.w_onehot):
            if w is not None:
                nn.init.uniform_(w, -bound, bound)
        self.register_buffer("offsets", torch.arange(groups) * classes, persistent=False)

    def head_part(self, head: Tensor) -> Tensor:
        """``W_x x`` alone, e.g. batched over a whole sequence outside a recurrent loop."""
        if self.w_head is None:
            return head.new_zeros(*head.shape[:-1], self.w_onehot.shape[1])
        return F.linear(head, self.w_head.to(head.dtype))

    def tail_part(self, onehot: Tensor | None = None, index: Tensor | None = None) -> Tensor:
        """``W_z z`` from a dense ``z`` (exact for any values, e.g. the all-zero reset state)
        or from class indices (a gather of ``groups`` weight rows)."""
        if index is None:
            return onehot @ self.w_onehot.to(onehot.dtype)
        flat = index.reshape(-1, self.groups) + self.offsets  # (N, S) rows of w_onehot
        return F.embedding_bag(flat, self.w_onehot, mode="sum").reshape(*index.shape[:-1], -1)

    def forward(self, x: Tensor | SparseFeat) -> Tensor:
        if isinstance(x, SparseFeat):
            out = self.tail_part(index=x.index).to(x.dense.dtype)
            return out + self.head_part(x.dense) if self.head else out
        out = self.tail_part(onehot=x[..., self.head :]).to(x.dtype)
        return out + self.head_part(x[..., : self.head]) if self.head else out


def dense(inp: int, out: int, onehot: tuple[int, int] | None = None) -> nn.Sequential:
    """Linear -> LayerNorm -> SiLU; bias is redundant before LayerNorm.

    ``onehot=(groups, classes)`` says the input ends in one-hot groups (see OneHotTailLinear).
    """
    if onehot is None:
        linear: nn.Module = nn.Linear(inp, out, bias=False)
    else:
        groups, classes = onehot
        linear = OneHotTailLinear(inp - groups * classes, groups, classes, out)
    return nn.Sequential(linear, nn.LayerNorm(out, eps=1e-3), nn.SiLU())


class MLP(nn.Module):
    """``layers`` dense blocks of ``units``, then an optional linear head of size ``out``.

    ``onehot=(groups, classes)``: the input ends in one-hot groups (model features ``[h, z]``).
    """

    def __init__(
        self,
        inp: int,
        out: int | None,
        *,
        units: int,
        layers: int,
        zero_init: bool = False,
        out_scale: float = 1.0,
        onehot: tuple[int, int] | None = None,
    ):
        super().__init__()
        blocks = [dense(inp if i == 0 else units, units, onehot if i == 0 else None) for i in range(layers)]
        self.body = nn.Sequential(*blocks)
        width = units if layers else inp
        self.head = nn.Linear(width, out) if out is not None else None
        if self.head is not None and zero_init:
            # Reward and critic heads start predicting zero (DreamerV3), so early returns are tame.
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        elif self.head is not None and out_scale != 1.0:
            # A small output layer starts the policy near uniform (DreamerV3's outscale 0.01).
            with torch.no_grad():
                self.head.weight.mul_(out_scale)
                self.head.bias.zero_()
        self.out_dim = out if out is not None else width

    def forward(self, x: Tensor | SparseFeat) -> Tensor:
        if isinstance(x, SparseFeat) and len(self.body) == 0:
            raise TypeError("SparseFeat input needs an MLP with layers >= 1 and onehot set")
        x = self.body(x)
        return self.head(x) if self.head is not None else x


class NormGRUCell(nn.Module):
    """DreamerV3's GRU: one linear on [x, h], LayerNorm, and an update gate biased towards keeping h."""

    def __init__(self, inp: int, size: int):
        super().__init__()
        self.linear = nn.Linear(inp + size, 3 * size, bias=False)
        self.norm = nn.LayerNorm(3 * size, eps=1e-3)
        self.size = size

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        parts = self.norm(self.linear(torch.cat([x, h], -1)))
        reset, cand, update = parts.split(self.size, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1)  # -1: start close to keeping the old state
        return update * cand + (1 - update) * h


class ChannelNorm(nn.Module):
    """LayerNorm over channels of a ``[N, C, H, W]`` map."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _stages(image_size: int) -> int:
    # Halve the image down to 4x4 (64 -> 4 is four stages).
    stages = int(math.log2(image_size // 4))
    if 4 * 2**stages != image_size:
        raise ValueError(f"image_size must be 4 * 2^k (e.g. 32, 64, 128), got {image_size}")
    return stages


class ConvEncoder(nn.Module):
    """``uint8 [N, H, W, C]`` images -> flat features, by stride-2 convolutions to 4x4."""

    def __init__(self, channels: int, *, depth: int, image_size: int):
        super().__init__()
        layers: list[nn.Module] = []
        inp = channels
        for i in range(_stages(image_size)):
            out = depth * 2**i
            layers += [nn.Conv2d(inp, out, 4, 2, 1, bias=False), ChannelNorm(out), nn.SiLU()]
            inp = out
        self.net = nn.Sequential(*layers)
        self.out_dim = inp * 4 * 4

    def forward(self, image: Tensor) -> Tensor:
        x = image.permute(0, 3, 1, 2).float() / 255.0 - 0.5  # (N, C, H, W) in [-0.5, 0.5]
        return self.net(x).flatten(1)


class ConvDecoder(nn.Module):
    """Features -> image in [-0.5, 0.5] as ``[N, H, W, C]``, by transposed convolutions from 4x4."""

    def __init__(self, inp: int, channels: int, *, depth: int, image_size: int):
        super().__init__()
        stages = _stages(image_size)
        self.top = depth * 2 ** (stages - 1)
        self.linear = nn.Linear(inp, self.top * 16)
        layers: list[nn.Module] = []
        width = self.top
        for i in reversed(range(stages)):
            last = i == 0
            out = channels if last else depth * 2 ** (i - 1)
            layers.append(nn.ConvTranspose2d(width, out, 4, 2, 1, bias=last))
            if not last:
                layers += [ChannelNorm(out), nn.SiLU()]
            width = out
        self.net = nn.Sequential(*layers)

    def forward(self, feat: Tensor) -> Tensor:
        x = self.linear(feat).reshape(-1, self.top, 4, 4)
        return self.net(x).permute(0, 2, 3, 1)  # (N, H, W, C)


class RunningScale(nn.Module):
    """Per-dimension mean and spread of everything passed to :meth:`update` (exact, all data
    counted alike), to standardise state vectors: ``normalize(x) = (x - mean) / max(std, floor)``.

    Why: a squared error summed over dimensions weighs each by its spread in the data, so a
    dimension that varies little (CartPole's cart position, ~0.1 against velocities of ~1) is fit
    loosely and a small input barely moves the encoder. Standardised, every dimension's error counts
    in units of its own spread. Until the first update it is the identity.
    """

    def __init__(self, dim: int, floor: float = 1e-2):
        super().__init__()
        self.floor = floor
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(dim, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Merge the statistics of ``x (..., dim)`` (Chan et al.'s parallel variance)."""
        flat = x.detach().reshape(-1, x.shape[-1]).double()
        n, mean, m2 = moments(flat)  # in a distributed run, of every rank's rows together
        if n == 0:
            return
        total = self.count + n
        delta = mean - self.mean
        self.m2.add_(m2 + delta**2 * self.count * n / total)
        self.mean.add_(delta * n / total)
        self.count.copy_(total)

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        if self.count == 0:
            return torch.zeros((), dtype=like.dtype, device=like.device), torch.ones(
                (), dtype=like.dtype, device=like.device
            )
        std = (self.m2 / self.count).sqrt().clamp_min(self.floor)
        return self.mean.to(like.dtype), std.to(like.dtype)

    def normalize(self, x: Tensor) -> Tensor:
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x: Tensor) -> Tensor:
        mean, std = self._stats(x)
        return x * std + mean
