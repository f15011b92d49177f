"""Small building blocks shared by the UNet modules: normalisation, timestep embedding, resampling."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def run_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a GroupNorm/LayerNorm with float32 statistics.

    Why: the official model runs fp16 weights under CUDA autocast, which computes normalisations in
    fp32. Without autocast a half-precision GroupNorm over 33 frames x 6144 pixels loses precision,
    so half/bfloat16 activations are normalised in fp32 and cast back. ComfyUI's ``comfy.ops`` layers
    cast their own weights to the input dtype (they carry ``comfy_cast_weights``); plain torch layers
    get their weights upcast here.
    """
    if x.dtype == torch.float32:
        return norm(x)
    dtype = x.dtype
    if hasattr(norm, "comfy_cast_weights"):
        return norm(x.float()).to(dtype)
    w = None if norm.weight is None else norm.weight.float()
    b = None if norm.bias is None else norm.bias.float()
    if isinstance(norm, nn.GroupNorm):
        return F.group_norm(x.float(), norm.num_groups, w, b, norm.eps).to(dtype)
    if isinstance(norm, nn.LayerNorm):
        return F.layer_norm(x.float(), norm.normalized_shape, w, b, norm.eps).to(dtype)
    return norm(x)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of raw integer timesteps, **cos first** (docs/official_behaviour.md#timestep-embedding).

    Shapes: t (B,) -> (B, dim). ``t`` is not rescaled (0..999).
    """
    half = dim // 2
    exponent = -torch.arange(half, dtype=torch.float32, device=t.device) / half
    freqs = torch.pow(10000.0, exponent)
    args = torch.outer(t.float(), freqs)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


class HalfResolutionPool(nn.Module):
    """Average-pool to half the input's height and width.

    The official embedders bake ``AdaptiveAvgPool2d((H//2, W//2))`` of the *configured* resolution
    into the module (docs/official_behaviour.md#pixel-embedder-pool), so any other input size was silently
    resampled. Pooling to half the
    actual input size is identical for the configured size and correct for every other size.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 2 == 0 and w % 2 == 0:
            return F.avg_pool2d(x, 2)
        return F.adaptive_avg_pool2d(x, (h // 2, w // 2))


class Downsample(nn.Module):
    """Stride-2 3x3 convolution with symmetric padding. Keys: ``op.*``."""

    def __init__(self, channels: int, ops: Any, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.op = ops.Conv2d(channels, channels, 3, stride=2, padding=1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 followed by a 3x3 convolution. Keys: ``conv.*``."""

    def __init__(self, channels: int, ops: Any, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.conv = ops.Conv2d(channels, channels, 3, padding=1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
