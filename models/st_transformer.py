"""Spatiotemporal (ST) transformer shared by the tokenizer, the latent action model and dynamics.

Activations are shaped (B, T, N, D): batch, frames, tokens per frame, width. An ST block runs
spatial attention over the N tokens of each frame, then causal temporal attention over the T
steps of each spatial position, then one feed-forward (none after the spatial layer), all
pre-norm. Memory grows linearly in T instead of quadratically as with full attention over T*N.

Position encoding: a learned embedding per spatial position (added once at the input) and
rotary embeddings by frame index inside temporal attention. Rotary embeddings are relative,
so cached keys of past frames stay valid when the oldest frames slide out of the window.

Under bf16 autocast the norms run in fp32 (`LayerNormFP32`) and `F.scaled_dot_product_attention`
keeps its softmax statistics in fp32; callers compute losses on `.float()` logits.

`attention="full"` gives the same parameters attending over all T*N tokens with a block-causal
mask (a token sees every token of its own and earlier frames): the baseline for the memory
comparison in `jobs.benchmarks.models`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

AttentionKind = Literal["st", "full"]


class LayerNormFP32(nn.LayerNorm):
    """LayerNorm computed in fp32 whatever the autocast dtype; bf16 norms drift in deep stacks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        out = F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)
        return out.to(x.dtype)


def rotary_tables(
    positions: torch.Tensor, head_dim: int, base: float = 10_000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (len(positions), head_dim) for rotary embeddings at integer `positions`."""
    inv_freq = 1.0 / base ** (
        torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim
    )
    angles = positions.float()[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def grid_rotary_tables(
    grid_height: int, grid_width: int, head_dim: int, base: float = 100.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (grid_height * grid_width, head_dim) for 2D rotary embeddings of a frame's
    tokens, row-major: half of the rotated pairs turn with the row, half with the column.

    The base is 100, not 10 000: a frame is tens of tokens across, and slower frequencies
    would barely turn over it.
    """
    quarter = head_dim // 4
    inv_freq = 1.0 / base ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid_height), torch.arange(grid_width), indexing="ij")
    angles = torch.cat(
        [rows.reshape(-1, 1) * inv_freq, cols.reshape(-1, 1) * inv_freq], dim=-1
    )  # (N, head_dim / 2)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the (..., L, head_dim) queries or keys by their positions' angles."""
    first, second = x.float().chunk(2, dim=-1)
    rotated = torch.cat([-second, first], dim=-1)
    return (x.float() * cos + rotated * sin).to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention over (S, L, D) sequences through `F.scaled_dot_product_attention`."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        *,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
        causal: bool = False,
        mask: torch.Tensor | None = None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Returns the output and the full (past + new) keys/values, for a cache to keep.

        With `past`, `x` holds the newest L positions after the cached ones; `causal` then
        lets each new position see every cached one and the new ones up to itself.
        """
        seqs, length, dim = x.shape
        q, k, v = self.qkv(x).view(seqs, length, 3, self.num_heads, dim // self.num_heads).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        is_causal = causal and past is None
        if causal and past is not None and length > 1:
            offset = k.shape[2] - length
            mask = torch.ones(length, k.shape[2], dtype=torch.bool, device=x.device).tril(offset)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
        out = out.transpose(1, 2).reshape(seqs, length, dim)
        return self.out(out), (k, v)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class TemporalKVCache:
    """Per-layer temporal keys/values of frames already seen, so a new frame costs O(1) frames.

    Under the causal temporal mask past frames never change, so their keys/values can be kept.
    `num_frames` counts frames ever committed; it is the rotary position of the next frame.
    """

    def __init__(self, num_layers: int) -> None:
        self.layers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * num_layers
        self.num_frames = 0

    @property
    def cached_frames(self) -> int:
        first = self.layers[0]
        return 0 if first is None else first[0].shape[2]

    def keep_last(self, frames: int) -> None:
        """Drop all but the newest `frames` cached frames (a sliding context window)."""
        self.layers = [
            None if kv is None or frames == 0 else (kv[0][:, :, -frames:], kv[1][:, :, -frames:])
            for kv in self.layers
        ]


class FrameAfterCache:
    """One new frame after the cached ones, run through the stack again and again without
    committing it: what MaskGIT's rounds do at play time. Each call gives exactly what
    `STTransformer.forward(x, cache)` gives for a one-frame `x` (tests/models/test_maskgit.py).

    `forward` concatenates the cached keys/values with the new frame's at every call, a copy of
    the whole cache per layer and round; here they are copied once into buffers with one more
    slot, which each call overwrites with the new frame's keys/values. `commit()` then makes
    the last call's frame part of the cache, as `forward(x, cache, commit=True)` would.
    """

    def __init__(self, transformer: STTransformer, cache: TemporalKVCache) -> None:
        if transformer.attention != "st":
            raise ValueError("a temporal key/value cache needs attention='st'")
        self.transformer, self.cache = transformer, cache
        self.buffers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(cache.layers)
        self.rotary: tuple[torch.Tensor, torch.Tensor] | None = None
        self.committed = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The stack's output (B, 1, N, D) for the new frame `x` (B, 1, N, D)."""
        b, t, n, d = x.shape
        if t != 1:
            raise ValueError(f"x must hold one frame, (B, 1, N, D), got {tuple(x.shape)}")
        if self.committed:
            raise RuntimeError(
                "this frame is committed: the next frame needs a new FrameAfterCache"
            )
        stack = self.transformer
        if self.rotary is None:
            position = torch.arange(
                self.cache.num_frames, self.cache.num_frames + 1, device=x.device
            )
            self.rotary = rotary_tables(position, stack.head_dim)
        spatial_rotary = (
            None if stack.spatial_cos is None else (stack.spatial_cos, stack.spatial_sin)
        )
        x = x + stack.spatial_position.to(x.dtype)
        for index, block in enumerate(stack.blocks):
            h = block.spatial_norm(x).reshape(b, n, d)
            x = x + block.spatial_attn(h, rotary=spatial_rotary)[0].view(b, 1, n, d)
            h = block.temporal_norm(x).transpose(1, 2).reshape(b * n, 1, d)
            h = self._temporal(index, block.temporal_attn, h)
            x = x + h.view(b, n, 1, d).transpose(1, 2)
            x = x + block.ffn(block.ffn_norm(x))
        return stack.norm(x)

    def _temporal(self, index: int, attention: Attention, h: torch.Tensor) -> torch.Tensor:
        """`attention(h, rotary=..., causal=True, past=cached)` for one new position."""
        seqs, _, dim = h.shape
        heads = attention.num_heads
        q, k, v = attention.qkv(h).view(seqs, 1, 3, heads, dim // heads).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = apply_rotary(q, *self.rotary), apply_rotary(k, *self.rotary)
        if self.buffers[index] is None:
            past = self.cache.layers[index]
            cached = 0 if past is None else past[0].shape[2]
            keys = k.new_empty(seqs, heads, cached + 1, k.shape[-1])
            values = v.new_empty(seqs, heads, cached + 1, v.shape[-1])
            if past is not None:
                keys[:, :, :-1], values[:, :, :-1] = past
            self.buffers[index] = keys, values
        keys, values = self.buffers[index]
        keys[:, :, -1:], values[:, :, -1:] = k, v
        out = F.scaled_dot_product_attention(q, keys, values)
        return attention.out(out.transpose(1, 2).reshape(seqs, 1, dim))

    def commit(self) -> None:
        """Add the frame of the last call to the cache (call it with the frame's final tokens)."""
        if any(kv is None for kv in self.buffers):
            raise RuntimeError("commit() before any call: there is no frame to add")
        self.cache.layers = list(self.buffers)
        self.cache.num_frames += 1
        self.committed = True


class STBlock(nn.Module):
    """Spatial attention, causal temporal attention, one feed-forward; each pre-norm residual."""

    def __init__(self, dim: int, num_heads: int, ffn_mult: int, attention: AttentionKind) -> None:
        super().__init__()
        self.attention = attention
        self.spatial_norm = LayerNormFP32(dim)
        self.spatial_attn = Attention(dim, num_heads)
        self.temporal_norm = LayerNormFP32(dim)
        self.temporal_attn = Attention(dim, num_heads)
        self.ffn_norm = LayerNormFP32(dim)
        self.ffn = FeedForward(dim, ffn_mult * dim)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        spatial_rotary: tuple[torch.Tensor, torch.Tensor] | None,
        past: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if self.attention == "full":
            x, kv = self._full_attention(x, rotary, spatial_rotary)
        else:
            x, kv = self._st_attention(x, rotary, spatial_rotary, past)
        return x + self.ffn(self.ffn_norm(x)), kv

    def _st_attention(self, x, rotary, spatial_rotary, past):
        b, t, n, d = x.shape
        h = self.spatial_norm(x).reshape(b * t, n, d)
        x = x + self.spatial_attn(h, rotary=spatial_rotary)[0].view(b, t, n, d)
        h = self.temporal_norm(x).transpose(1, 2).reshape(b * n, t, d)
        h, kv = self.temporal_attn(h, rotary=rotary, causal=True, past=past)
        return x + h.view(b, n, t, d).transpose(1, 2), kv

    def _full_attention(self, x, rotary, spatial_rotary):
        b, t, n, d = x.shape
        frame_of_token = torch.arange(t, device=x.device).repeat_interleave(n)
        block_causal = frame_of_token[:, None] >= frame_of_token[None, :]
        token_rotary = (rotary[0].repeat_interleave(n, 0), rotary[1].repeat_interleave(n, 0))
        if spatial_rotary is not None:
            spatial_rotary = (spatial_rotary[0].repeat(t, 1), spatial_rotary[1].repeat(t, 1))
        h = self.spatial_norm(x).reshape(b, t * n, d)
        x = x + self.spatial_attn(h, rotary=spatial_rotary, mask=block_causal)[0].view(b, t, n, d)
        h = self.temporal_norm(x).reshape(b, t * n, d)
        h, kv = self.temporal_attn(h, rotary=token_rotary, mask=block_causal)
        return x + h.view(b, t, n, d), kv


class STTransformer(nn.Module):
    """A stack of ST blocks over (B, T, N, D) with a learned spatial position embedding."""

    def __init__(
        self,
        dim: int,
        num_layers: int,
        num_heads: int,
        tokens_per_frame: int,
        ffn_mult: int = 4,
        attention: AttentionKind = "st",
        position_scale: float = 1.0,
        grid: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads or (dim // num_heads) % 2:
            raise ValueError(f"dim {dim} must split into {num_heads} heads of even size")
        self.head_dim = dim // num_heads
        self.attention = attention
        # With `grid` (rows, columns of a frame's tokens), spatial attention also gets 2D rotary
        # embeddings, so "the token one to the right" is one learned direction for every
        # position: what a world model needs to move a scene (see models.dynamics).
        # Buffers, not state: they follow the module to its device and stay out of checkpoints.
        spatial_cos = spatial_sin = None
        if grid is not None:
            if grid[0] * grid[1] != tokens_per_frame or self.head_dim % 4:
                raise ValueError(
                    f"grid {grid} must hold {tokens_per_frame} tokens and head size "
                    f"{self.head_dim} must be a multiple of 4"
                )
            spatial_cos, spatial_sin = grid_rotary_tables(*grid, self.head_dim)
        self.register_buffer("spatial_cos", spatial_cos, persistent=False)
        self.register_buffer("spatial_sin", spatial_sin, persistent=False)
        # Unit scale by default, like the token embeddings: at 0.02 (the ViT habit) the small
        # LAM stayed blind to where a token is for hundreds of steps and could not learn
        # motion. The tokenizer passes 0: it needs content, not place, and a unit-scale
        # position drowned its patches (see models.tokenizer).
        self.spatial_position = nn.Parameter(torch.randn(tokens_per_frame, dim) * position_scale)
        self.blocks = nn.ModuleList(
            STBlock(dim, num_heads, ffn_mult, attention) for _ in range(num_layers)
        )
        self.norm = LayerNormFP32(dim)

    def forward(
        self, x: torch.Tensor, cache: TemporalKVCache | None = None, commit: bool = False
    ) -> torch.Tensor:
        """Run the stack over frames `x` (B, T, N, D).

        With `cache`, `x` holds frames that follow the cached ones; `commit=True` appends their
        keys/values to the cache (do it once a frame is final, e.g. after MaskGIT filled it).
        """
        if cache is not None and self.attention != "st":
            raise ValueError("a temporal key/value cache needs attention='st'")
        start = cache.num_frames if cache is not None else 0
        positions = torch.arange(start, start + x.shape[1], device=x.device)
        rotary = rotary_tables(positions, self.head_dim)
        spatial_rotary = None if self.spatial_cos is None else (self.spatial_cos, self.spatial_sin)
        x = x + self.spatial_position.to(x.dtype)
        for index, block in enumerate(self.blocks):
            past = cache.layers[index] if cache is not None else None
            x, kv = block(x, rotary, spatial_rotary, past)
            if cache is not None and commit:
                cache.layers[index] = kv
        if cache is not None and commit:
            cache.num_frames += x.shape[1]
        return self.norm(x)
