"""``TemporalMamba``: drop-in replacement for the UNet's temporal transformer.

The paper's Fig. 2 shows a temporal Mamba block (Mamba mixer with an outer skip, no
feed-forward) in place of every temporal transformer, run over the F+1 frames of each spatial
position with the reference slot first. What the paper does not show, and is assumed here
(see docs/mamba.md): the same wrapper as the official temporal transformer, i.e.

    x (B, C, F', h, w)
    -> GroupNorm(32, eps 1e-6) over the whole 5-D sample
    -> (B*h*w, F', C) -> proj_in Linear(C, C)
    -> h + mixer(LayerNorm(h))            (pre-norm residual Mamba block, unidirectional)
    -> proj_out Linear(C, C), zero-initialised
    -> (B, C, F', h, w) + x

Because ``proj_out`` starts at zero, a freshly built layer returns its input exactly: adding
Mamba layers to (or swapping them into) a trained UNet does not change its output until the new
layers are trained.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from ..unet.layers import run_norm
from .config import MambaConfig
from .errors import MambaConfigError, MambaInputError
from .mixer import MambaMixer

GROUPS = 32


class MambaBlock(nn.Module):
    """Pre-norm residual Mamba block on (b, L, C): ``x + mixer(norm(x))``.

    Named like mamba-ssm's ``Block`` (``norm``, ``mixer``) so its keys read familiarly.
    """

    def __init__(self, channels: int, config: MambaConfig, operations: Any = None,
                 device: Any = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        ops = operations if operations is not None else nn
        self.norm = ops.LayerNorm(channels, device=device, dtype=dtype)
        self.mixer = MambaMixer(channels, config, operations=ops, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mixer(run_norm(self.norm, x))


class TemporalMamba(nn.Module):
    """Temporal state-space layer on video features (B, C, F', h, w) -> same shape.

    One causal scan per spatial position over the F' frames (index 0 = reference slot, so
    every frame sees the reference). ``operations`` (default ``torch.nn``) provides ``Linear``,
    ``Conv1d``, ``GroupNorm`` and ``LayerNorm``; ComfyUI passes its casting ops.
    """

    def __init__(self, channels: int, config: Optional[MambaConfig] = None,
                 operations: Any = None, device: Any = None,
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < GROUPS or channels % GROUPS:
            raise MambaConfigError(
                f"TemporalMamba needs a channel count that is a positive multiple of {GROUPS} "
                f"(GroupNorm with {GROUPS} groups), got {channels!r}; use a UNet width that is "
                f"a multiple of {GROUPS}.")
        config = config if config is not None else MambaConfig()
        ops = operations if operations is not None else nn
        factory = {"device": device, "dtype": dtype}
        self.channels = channels
        self.config = config
        self.norm = ops.GroupNorm(GROUPS, channels, eps=1e-6, affine=True, **factory)
        self.proj_in = ops.Linear(channels, channels, **factory)
        self.mamba = MambaBlock(channels, config, operations=ops, **factory)
        self.proj_out = ops.Linear(channels, channels, **factory)
        self.zero_output()

    def zero_output(self) -> None:
        """Zero ``proj_out`` so the layer is the identity (fresh layer / conversion)."""
        with torch.no_grad():
            self.proj_out.weight.zero_()
            if self.proj_out.bias is not None:
                self.proj_out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, F', h, w) -> (B, C, F', h, w)."""
        if x.dim() != 5 or x.shape[1] != self.channels:
            raise MambaInputError(
                f"TemporalMamba({self.channels}) expects (batch, {self.channels}, frames, "
                f"height, width), got {tuple(x.shape)}.")
        b, c, f, hh, ww = x.shape
        h = run_norm(self.norm, x)                                   # fp32 statistics
        h = h.permute(0, 3, 4, 2, 1).reshape(b * hh * ww, f, c)      # one sequence per pixel
        h = self.proj_in(h)
        h = self.mamba(h)
        h = self.proj_out(h)
        h = h.reshape(b, hh, ww, f, c).permute(0, 4, 3, 1, 2)
        return x + h
