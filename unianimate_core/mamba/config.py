"""Hyper-parameters of the temporal Mamba option.

The paper names no Mamba hyper-parameters; the authors' environment pins ``mamba-ssm`` and
nothing overrides its defaults, so the defaults here are ``mamba_ssm.Mamba``'s (d_state 16,
d_conv 4, expand 2, dt_rank ceil(C/16), same dt initialisation). Keeping them identical means a
mixer trained with ``mamba_ssm.Mamba`` (or ``mambapy.MambaBlock``) loads with ``strict=True``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Union

from .errors import MambaConfigError

Backend = Literal["auto", "torch", "mamba_ssm"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "mamba_ssm")


@dataclass(frozen=True)
class MambaConfig:
    """Settings of every ``TemporalMamba`` layer in a UNet.

    Shape-relevant fields (change the state-dict shapes): ``d_state``, ``d_conv``, ``expand``,
    ``dt_rank``, ``conv_bias``, ``bias``. Initialisation-only fields: ``dt_*``. Runtime-only
    fields (never affect weights): ``backend``, ``scan_chunk``.

    * ``backend``: ``"auto"`` uses mamba-ssm's fused CUDA kernels when the input is on a CUDA
      device and ``mamba_ssm`` imports, else the pure-PyTorch scan; ``"torch"`` always uses the
      pure-PyTorch scan; ``"mamba_ssm"`` requires the kernels (error when unavailable).
    * ``scan_chunk``: frames between stored scan states when the pure-PyTorch scan runs under
      autograd (the backward pass recomputes the states inside each chunk). ``0`` picks
      ``ceil(sqrt(L))``, which minimises stored + recomputed state memory.
    """

    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: Union[int, Literal["auto"]] = "auto"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_init: Literal["random", "constant"] = "random"
    dt_scale: float = 1.0
    dt_init_floor: float = 1e-4
    conv_bias: bool = True
    bias: bool = False
    backend: Backend = "auto"
    scan_chunk: int = 0

    def __post_init__(self) -> None:
        for name in ("d_state", "d_conv", "expand"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise MambaConfigError(
                    f"MambaConfig.{name} must be a positive integer, got {value!r}; "
                    f"use the mamba-ssm default ({getattr(MambaConfig, name)}) unless you "
                    "load weights trained with another value.")
        if self.dt_rank != "auto" and (
                not isinstance(self.dt_rank, int) or isinstance(self.dt_rank, bool)
                or self.dt_rank < 1):
            raise MambaConfigError(
                f"MambaConfig.dt_rank must be 'auto' or a positive integer, got {self.dt_rank!r}.")
        if not (0.0 < self.dt_min <= self.dt_max):
            raise MambaConfigError(
                f"MambaConfig needs 0 < dt_min <= dt_max, got dt_min={self.dt_min}, "
                f"dt_max={self.dt_max}.")
        if self.dt_init not in ("random", "constant"):
            raise MambaConfigError(
                f"MambaConfig.dt_init must be 'random' or 'constant', got {self.dt_init!r}.")
        if self.backend not in BACKENDS:
            raise MambaConfigError(
                f"MambaConfig.backend must be one of {BACKENDS}, got {self.backend!r}.")
        if not isinstance(self.scan_chunk, int) or self.scan_chunk < 0:
            raise MambaConfigError(
                f"MambaConfig.scan_chunk must be an integer >= 0 (0 = automatic), "
                f"got {self.scan_chunk!r}.")

    def inner_dim(self, d_model: int) -> int:
        """Width of the mixer's inner stream, ``expand * d_model``."""
        return self.expand * d_model

    def resolved_dt_rank(self, d_model: int) -> int:
        """mamba-ssm's rule: ``ceil(d_model / 16)`` when ``dt_rank == "auto"``."""
        return math.ceil(d_model / 16) if self.dt_rank == "auto" else int(self.dt_rank)
