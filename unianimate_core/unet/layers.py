"""Small building blocks shared by the UNet modules: normalisation, timestep embedding, resampling."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..precision import casts_own_weights, norm_needs_fp32_input


def run_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a GroupNorm/LayerNorm to ``x`` with float32 statistics; returns ``x``'s dtype.

    Works with every layer factory the model can be built with (see docs/precision.md):

    * layers that cast their own weights (ComfyUI ``manual_cast``, fp8 storage, any ``comfy.ops``
      layer with a LoRA/low-VRAM weight function): called as they are, they cast to the input;
    * layers that run their stored weights as they are (``torch.nn``, ComfyUI ``disable_weight_init``
      as used on GPUs without manual casting): called as they are when their parameters already have
      ``x``'s dtype, else the same normalisation runs functionally with the parameters cast to it
      (a C-sized cast; the device is never changed, a misplaced weight must fail loudly).

    Statistics: CUDA and CPU kernels accumulate fp16/bf16 in float32 themselves, so there the norm
    runs in the activation dtype; on other devices (MPS, XPU, ...) a half-precision input is
    normalised as an fp32 copy and rounded back (``precision.norm_needs_fp32_input``).
    """
    if norm_needs_fp32_input(x):
        return _apply_norm(norm, x.float()).to(x.dtype)
    return _apply_norm(norm, x)


def _apply_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if casts_own_weights(norm) or all(p.dtype == x.dtype for p in norm.parameters(recurse=False)):
        return norm(x)
    weight = None if norm.weight is None else norm.weight.to(x.dtype)
    bias = None if norm.bias is None else norm.bias.to(x.dtype)
    if isinstance(norm, nn.GroupNorm):
        return F.group_norm(x, norm.num_groups, weight, bias, norm.eps)
    if isinstance(norm, nn.LayerNorm):
        return F.layer_norm(x, norm.normalized_shape, weight, bias, norm.eps)
    raise TypeError(f"run_norm supports GroupNorm and LayerNorm layers, got {type(norm).__name__} with "
                    f"parameters of another dtype than its input ({x.dtype}).")


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
