"""Condition embedders: pose / first-frame pixels, the reference latent, and their frame adapters."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..config import EMBEDDER_HIDDEN
from .layers import HalfResolutionPool, run_norm


class AdapterAttention(nn.Module):
    """Plain softmax attention with a fused ``to_qkv`` (no bias). Keys: ``to_qkv``, ``to_out.0``."""

    def __init__(self, dim: int, heads: int, head_dim: int, ops: Any, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.heads = heads
        self.head_dim = head_dim
        self.to_qkv = ops.Linear(dim, 3 * heads * head_dim, bias=False, **kw)
        self.to_out = nn.Sequential(ops.Linear(heads * head_dim, dim, **kw), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (
            rearrange(t, "n s (h d) -> n h s d", h=self.heads) for t in self.to_qkv(x).chunk(3, dim=-1)
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(rearrange(out, "n h s d -> n s (h d)"))


class PreNorm(nn.Module):
    """LayerNorm then ``fn``. Keys: ``norm``, ``fn``."""

    def __init__(self, dim: int, fn: nn.Module, ops: Any, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.norm = ops.LayerNorm(dim, device=device, dtype=dtype)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(run_norm(self.norm, x))


class AdapterFeedForward(nn.Module):
    """Linear(d, 4d) + exact GELU, Linear(4d, d). Keys: ``net.0.0``, ``net.2``."""

    def __init__(self, dim: int, ops: Any, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.net = nn.Sequential(
            nn.Sequential(ops.Linear(dim, 4 * dim, **kw), nn.GELU()), nn.Dropout(0.0), ops.Linear(4 * dim, dim, **kw)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FrameAdapter(nn.Module):
    """The small transformer after each embedder (official ``Transformer_v2``), attending over frames.

    Per layer: ``x += attn(LN(x))`` then ``x += ff(x)`` — the feed-forward has **no** pre-norm
    (docs/official_behaviour.md#adapter-transformer).
    Keys: ``layers.{i}.0.{norm,fn.*}``, ``layers.{i}.1.net.*``.
    Shapes: (N, S, dim) -> (N, S, dim) with N = B*h*w sequences of S frames.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, ops: Any, depth: int = 1, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [PreNorm(dim, AdapterAttention(dim, heads, head_dim, ops, **kw), ops, **kw), AdapterFeedForward(dim, ops, **kw)]
            )
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = x + attn(x)
            x = x + ff(x)
        return x


def pixel_embedder(out_channels: int, ops: Any, device: Any = None, dtype: Any = None) -> nn.Sequential:
    """RGB pixels in [0, 1] at H x W -> ``out_channels`` at H/8 x W/8.

    Conv3x3(3->32), SiLU, pool to half size, Conv3x3 s2 (32->32), SiLU, Conv3x3 s2 (32->out).
    Keys: ``0``, ``3``, ``5`` (index 2 is the parameter-free pool).
    """
    kw = dict(device=device, dtype=dtype)
    c = EMBEDDER_HIDDEN
    return nn.Sequential(
        ops.Conv2d(3, c, 3, padding=1, **kw),
        nn.SiLU(),
        HalfResolutionPool(),
        ops.Conv2d(c, c, 3, stride=2, padding=1, **kw),
        nn.SiLU(),
        ops.Conv2d(c, out_channels, 3, stride=2, padding=1, **kw),
    )


def latent_embedder(in_channels: int, out_channels: int, ops: Any, device: Any = None, dtype: Any = None) -> nn.Sequential:
    """Reference latent -> ``out_channels`` at the same size. Keys: ``0``, ``2``, ``4``."""
    kw = dict(device=device, dtype=dtype)
    c = EMBEDDER_HIDDEN
    return nn.Sequential(
        ops.Conv2d(in_channels, c, 3, padding=1, **kw),
        nn.SiLU(),
        ops.Conv2d(c, c, 3, padding=1, **kw),
        nn.SiLU(),
        ops.Conv2d(c, out_channels, 3, padding=1, **kw),
    )


def embed_frames(embedder: nn.Module, adapter: FrameAdapter, frames: torch.Tensor) -> torch.Tensor:
    """Embed every frame, then let the adapter mix information across frames per position.

    Shapes: frames (B, C_in, F, H, W) -> (B, C_out, F, h, w).
    """
    b, _, f = frames.shape[:3]
    e = embedder(rearrange(frames, "b c f h w -> (b f) c h w"))
    h, w = e.shape[-2:]
    e = adapter(rearrange(e, "(b f) c h w -> (b h w) f c", b=b, f=f))
    return rearrange(e, "(b h w) f c -> b c f h w", b=b, h=h, w=w)
