"""Residual block with a temporal convolution (the only place frame order is visible to the model)."""
from __future__ import annotations

from typing import Any

import torch
from einops import rearrange
from torch import nn

from .layers import run_norm


class TemporalConvBlock(nn.Module):
    """Four GroupNorm -> SiLU -> Conv3d((3,1,1)) stages with a residual.

    Keys (official, typo kept): ``conv1.{0,2}``, ``conv{2,3,4}.{0,3}``. The GroupNorms see 5-D
    tensors, so their statistics span all frames of a sample (docs/official_behaviour.md#ref-frame).

    Shapes: (B, C, F, h, w) -> (B, C, F, h, w).
    """

    def __init__(self, channels: int, ops: Any, device: Any = None, dtype: Any = None) -> None:
        super().__init__()

        def stage(with_dropout: bool) -> nn.Sequential:
            layers: list[nn.Module] = [ops.GroupNorm(32, channels, device=device, dtype=dtype), nn.SiLU()]
            if with_dropout:
                layers.append(nn.Dropout(0.0))
            layers.append(
                ops.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0), device=device, dtype=dtype)
            )
            return nn.Sequential(*layers)

        self.conv1 = stage(False)
        self.conv2 = stage(True)
        self.conv3 = stage(True)
        self.conv4 = stage(True)

    @staticmethod
    def _stage(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        x = run_norm(seq[0], x)
        for layer in list(seq)[1:]:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for seq in (self.conv1, self.conv2, self.conv3, self.conv4):
            h = self._stage(seq, h)
        return x + h


class ResBlock(nn.Module):
    """GN-SiLU-Conv, + timestep embedding, GN-SiLU-Conv, skip, then a temporal conv block.

    Shapes: x (B*F, C_in, h, w), emb (B*F, E) -> (B*F, C_out, h, w); ``num_frames`` = F regroups the
    batch for the temporal convolution.
    """

    def __init__(
        self,
        in_channels: int,
        emb_channels: int,
        out_channels: int,
        ops: Any,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.in_layers = nn.Sequential(
            ops.GroupNorm(32, in_channels, **kw), nn.SiLU(), ops.Conv2d(in_channels, out_channels, 3, padding=1, **kw)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), ops.Linear(emb_channels, out_channels, **kw))
        self.out_layers = nn.Sequential(
            ops.GroupNorm(32, out_channels, **kw),
            nn.SiLU(),
            nn.Dropout(0.0),
            ops.Conv2d(out_channels, out_channels, 3, padding=1, **kw),
        )
        self.skip_connection: nn.Module = (
            nn.Identity() if in_channels == out_channels else ops.Conv2d(in_channels, out_channels, 1, **kw)
        )
        self.temopral_conv = TemporalConvBlock(out_channels, ops, **kw)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, num_frames: int) -> torch.Tensor:
        h = self.in_layers[2](self.in_layers[1](run_norm(self.in_layers[0], x)))
        h = h + self.emb_layers(emb).to(h.dtype)[..., None, None]
        h = self.out_layers[3](self.out_layers[1](run_norm(self.out_layers[0], h)))
        h = self.skip_connection(x) + h
        h = rearrange(h, "(b f) c h w -> b c f h w", f=num_frames)
        h = self.temopral_conv(h)
        return rearrange(h, "b c f h w -> (b f) c h w")
