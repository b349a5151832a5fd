"""A causal transformer over time steps with a sliding window and a key/value cache.

Each step attends to itself and the ``context - 1`` steps before it, never across an episode's
start. Order comes from a learned bias per head and distance (T5's relative positions, one table
shared by every layer): it depends only on how far back a key lies, so a window of cached keys
means the same at any absolute step and the cached step equals the full pass exactly. Keys and
values are kept per layer for the last ``context`` steps (oldest first): the state of an
imagined rollout, so each imagined step costs one token's pass and attention over a window of
fixed size, whatever the length of the rollout.

Written here rather than taken from ``nn.TransformerEncoder``: that module has no cache, no
relative positions and no way to hand per-layer keys to the next call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Block(nn.Module):
    """Pre-norm attention and MLP, each with a residual (GPT-2's ordering)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"the transformer's width ({dim}) must be a multiple of its heads ({heads})")
        self.heads, self.dropout = heads, dropout
        self.norm_attn = nn.LayerNorm(dim, eps=1e-3)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.norm_mlp = nn.LayerNorm(dim, eps=1e-3)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, dim))

    def qkv_of(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values ``(B, T, D)`` of tokens ``x (B, T, D)``."""
        q, k, v = self.qkv(self.norm_attn(x)).chunk(3, -1)
        return q, k, v

    def attend(self, x: Tensor, q: Tensor, keys: Tensor, values: Tensor, bias: Tensor) -> Tensor:
        """``x`` after attending with queries ``q (B, Tq, D)`` over ``keys, values (B, Tk, D)``
        under an additive ``bias (B, heads, Tq, Tk)`` (``-inf`` where a key is hidden), then the MLP."""
        B, Tq, D = q.shape

        def split(t: Tensor) -> Tensor:
            return t.reshape(B, t.shape[1], self.heads, D // self.heads).transpose(1, 2)

        drop = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(
            split(q), split(keys), split(values), attn_mask=bias.to(q.dtype), dropout_p=drop
        )
        x = x + F.dropout(self.proj(out.transpose(1, 2).reshape(B, Tq, D)), drop, self.training)
        return x + F.dropout(self.mlp(self.norm_mlp(x)), drop, self.training)


class StepTransformer(nn.Module):
    """``layers`` blocks of width ``dim`` attending over a window of ``context`` steps."""

    def __init__(self, dim: int, layers: int, heads: int, context: int, dropout: float):
        super().__init__()
        self.dim, self.context, self.heads = dim, context, heads
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(layers))
        self.rel_bias = nn.Parameter(torch.zeros(heads, context))  # (heads, distance 0 .. context-1)
        self.norm = nn.LayerNorm(dim, eps=1e-3)

    @property
    def layers(self) -> int:
        return len(self.blocks)

    def visibility(self, past_mask: Tensor, is_first: Tensor) -> tuple[Tensor, Tensor]:
        """Which keys each step of a chunk sees, and how far back each lies.

        Keys are the ``W`` cached steps before the chunk (``past_mask (B, W)``: 1 where one
        belongs to the episode the chunk continues), then the chunk's ``T`` steps. Returns
        ``allowed (B, T, W+T)`` (inside the window, not in the future, same episode) and
        ``distance (T, W+T)``."""
        W, (B, T) = self.context, is_first.shape
        device = is_first.device
        segment = is_first.long().cumsum(1)  # (B, T): 0 while the cached steps' episode goes on
        position = torch.cat([torch.arange(-W, 0, device=device), torch.arange(T, device=device)])
        distance = torch.arange(T, device=device)[:, None] - position[None, :]
        in_window = (distance >= 0) & (distance < W)
        key_segment = torch.cat([segment.new_zeros(B, W), segment], 1)
        key_valid = torch.cat([past_mask > 0.5, torch.ones_like(is_first, dtype=torch.bool)], 1)
        allowed = in_window[None] & (key_segment[:, None, :] == segment[:, :, None]) & key_valid[:, None, :]
        return allowed, distance

    def _bias(self, allowed: Tensor, distance: Tensor) -> Tensor:
        table = self.rel_bias[:, distance.clamp(0, self.context - 1)]  # (heads, Tq, Tk)
        return table.unsqueeze(0).masked_fill(~allowed.unsqueeze(1), float("-inf"))

    def forward(
        self, x: Tensor, past_keys: Tensor, past_values: Tensor, allowed: Tensor, distance: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """A chunk of tokens ``x (B, T, D)`` after the cached ``past_keys, past_values (B, L, W, D)``.
        Returns the outputs ``(B, T, D)`` and the chunk's keys and values ``(B, L, T, D)``."""
        bias = self._bias(allowed, distance)
        keys, values = [], []
        for layer, block in enumerate(self.blocks):
            q, k, v = block.qkv_of(x)
            keys.append(k)
            values.append(v)
            all_k = torch.cat([past_keys[:, layer].to(k.dtype), k], 1)
            all_v = torch.cat([past_values[:, layer].to(v.dtype), v], 1)
            x = block.attend(x, q, all_k, all_v, bias)
        return self.norm(x), torch.stack(keys, 1), torch.stack(values, 1)

    def step(
        self, x: Tensor, keys: list[Tensor], values: list[Tensor], mask: Tensor
    ) -> tuple[Tensor, list[Tensor], list[Tensor], Tensor]:
        """One token ``x (N, D)`` after a window of cached ``keys, values`` (per layer ``(N, W, D)``,
        oldest first) with ``mask (N, W)``. Returns its output ``(N, D)`` and the window moved
        on by one step (the oldest dropped, this token's appended), per layer, and its mask."""
        W = self.context
        mask = torch.cat([mask[:, 1:], torch.ones_like(mask[:, :1])], 1)
        distance = torch.arange(W - 1, -1, -1, device=x.device)  # slot j lies W-1-j steps back
        bias = self.rel_bias[:, distance][None, :, None, :].masked_fill(~(mask > 0.5)[:, None, None, :], float("-inf"))
        h = x[:, None]
        new_keys, new_values = [], []
        for layer, block in enumerate(self.blocks):
            q, k, v = block.qkv_of(h)
            all_k = torch.cat([keys[layer][:, 1:].to(k.dtype), k], 1)
            all_v = torch.cat([values[layer][:, 1:].to(v.dtype), v], 1)
            h = block.attend(h, q, all_k, all_v, bias)
            new_keys.append(all_k)
            new_values.append(all_v)
        return self.norm(h[:, 0]), new_keys, new_values, mask

    @staticmethod
    def windows(past: Tensor, chunk: Tensor, context: int) -> Tensor:
        """The window of the last ``context`` steps at each step of a chunk: ``past (B, L, W, D)``
        and ``chunk (B, L, T, D)`` -> ``(B, T, L, W, D)`` (a view)."""
        full = torch.cat([past.to(chunk.dtype), chunk], 2)  # (B, L, W+T, D)
        return full.unfold(2, context, 1)[:, :, 1:].permute(0, 2, 1, 4, 3)
