"""Mamba-1 mixer with mamba-ssm's parameter names, shapes and initialisation.

``MambaMixer(d_model)`` has exactly the state-dict keys of ``mamba_ssm.Mamba(d_model)`` and
``mambapy.mamba.MambaBlock``::

    in_proj.weight (2E, C)   conv1d.weight (E, 1, k)   conv1d.bias (E,)
    x_proj.weight (R + 2N, E)   dt_proj.weight (E, R)   dt_proj.bias (E,)
    A_log (E, N) fp32   D (E,) fp32   out_proj.weight (C, E)

(E = expand * C, N = d_state, R = dt_rank, k = d_conv), so weights trained with either load with
``strict=True``. Forward on (b, L, C)::

    x, z = in_proj(u).chunk(2)
    x = silu(causal depthwise conv1d(x))
    dt, B, C = x_proj(x).split(R, N, N)
    delta = softplus(dt_proj(dt))
    y = (selective_scan(x, delta, -exp(A_log), B, C) + D * x) * silu(z)
    out = out_proj(y)

Two backends compute this: mamba-ssm's fused kernels (CUDA input and the package importable) or
the pure-PyTorch scan of :mod:`.scan`; see ``MambaConfig.backend``. With ``backend="auto"`` a
kernel that fails at run time (a build that does not match the installed torch or GPU, an
unsupported dtype) is logged once and the layer falls back to the pure-PyTorch path for good.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .config import MambaConfig
from .errors import MambaBackendError, MambaConfigError, MambaInputError
from .fused import CAUSAL_CONV1D_WIDTHS, FusedKernels, load_fused_kernels, report_fused_failure
from .scan import selective_scan


def kernel_device(x: torch.Tensor) -> bool:
    """Whether mamba-ssm's kernels can take ``x`` (they are CUDA-only)."""
    return x.is_cuda


def _init_dt_proj(dt_proj: nn.Module, config: MambaConfig, d_inner: int, dt_rank: int) -> None:
    """mamba-ssm's dt initialisation: weight ~ U(-s, s) (or constant s), s = dt_scale / sqrt(R);
    bias = inverse-softplus of dt ~ log-uniform[dt_min, dt_max] (floored), so that
    softplus(bias) starts in that range."""
    std = dt_rank ** -0.5 * config.dt_scale
    with torch.no_grad():
        if config.dt_init == "constant":
            dt_proj.weight.fill_(std)
        else:
            dt_proj.weight.uniform_(-std, std)
        log_lo, log_hi = math.log(config.dt_min), math.log(config.dt_max)
        dt = torch.exp(torch.rand(d_inner, dtype=torch.float32) * (log_hi - log_lo) + log_lo)
        dt = dt.clamp(min=config.dt_init_floor)
        inv_dt = dt + torch.log(-torch.expm1(-dt))
        dt_proj.bias.copy_(inv_dt)


def _s4d_real_A_log(d_inner: int, d_state: int, device: Any) -> torch.Tensor:
    """log of the S4D-real initialisation A[d, n] = n + 1 (A itself is -exp(A_log))."""
    a = torch.arange(1, d_state + 1, dtype=torch.float32, device=device)
    return torch.log(a).repeat(d_inner, 1).contiguous()


class MambaMixer(nn.Module):
    """Mamba-1 selective-state-space mixer over sequences (b, L, d_model) -> (b, L, d_model).

    ``operations`` supplies ``Linear`` and ``Conv1d`` (default ``torch.nn``) so a host can store
    weights in half/fp8 and cast at run time. ``A_log`` and ``D`` are float32 parameters, read in
    the forward as float32 *on the input's device*: they sit on this (non-leaf) module itself,
    which ComfyUI's partial loading never moves to the GPU (it moves leaf modules only).
    """

    def __init__(self, d_model: int, config: Optional[MambaConfig] = None,
                 operations: Any = None, device: Any = None, dtype: Optional[torch.dtype] = None
                 ) -> None:
        super().__init__()
        config = config if config is not None else MambaConfig()
        ops = operations if operations is not None else nn
        if not isinstance(d_model, int) or d_model < 1:
            raise MambaConfigError(f"MambaMixer needs a positive integer d_model, got {d_model!r}.")
        self.config = config
        self.d_model = d_model
        self.d_state = config.d_state
        self.d_conv = config.d_conv
        self.d_inner = config.inner_dim(d_model)
        self.dt_rank = config.resolved_dt_rank(d_model)
        factory = {"device": device, "dtype": dtype}

        self.in_proj = ops.Linear(d_model, 2 * self.d_inner, bias=config.bias, **factory)
        self.conv1d = ops.Conv1d(self.d_inner, self.d_inner, kernel_size=config.d_conv,
                                 groups=self.d_inner, padding=config.d_conv - 1,
                                 bias=config.conv_bias, **factory)
        self.x_proj = ops.Linear(self.d_inner, self.dt_rank + 2 * self.d_state, bias=False,
                                 **factory)
        self.dt_proj = ops.Linear(self.dt_rank, self.d_inner, bias=True, **factory)
        _init_dt_proj(self.dt_proj, config, self.d_inner, self.dt_rank)
        self.A_log = nn.Parameter(_s4d_real_A_log(self.d_inner, self.d_state, device))
        self.D = nn.Parameter(torch.ones(self.d_inner, dtype=torch.float32, device=device))
        self.out_proj = ops.Linear(self.d_inner, d_model, bias=config.bias, **factory)
        self._fused_failed = False  # set after a kernel failure under backend="auto"

    # ------------------------------------------------------------------ dispatch
    def _fused_kernels(self, x: torch.Tensor) -> Optional[FusedKernels]:
        """Kernels to use for this input, or None for the pure-PyTorch path."""
        backend = self.config.backend
        if backend == "torch" or (backend == "auto" and self._fused_failed):
            return None
        on_cuda = kernel_device(x)
        kernels = load_fused_kernels() if on_cuda else None
        if backend == "mamba_ssm" and kernels is None:
            where = "the input is not on a CUDA device" if not on_cuda else \
                "mamba_ssm could not be imported"
            raise MambaBackendError(
                f"MambaConfig.backend='mamba_ssm' but {where}. Install the CUDA kernels "
                "(pip install mamba-ssm causal-conv1d --no-build-isolation) and run on a CUDA "
                "device, or use backend='auto' to fall back to the pure-PyTorch scan.")
        return kernels

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: (b, L, d_model) -> (b, L, d_model), dtype of hidden."""
        if hidden.dim() != 3 or hidden.shape[-1] != self.d_model:
            raise MambaInputError(
                f"MambaMixer({self.d_model}) expects input (batch, length, {self.d_model}), "
                f"got {tuple(hidden.shape)}.")
        kernels = self._fused_kernels(hidden)
        if kernels is not None:
            try:
                return self.forward_fused(hidden, kernels)
            except torch.cuda.OutOfMemoryError:
                raise  # the pure path needs as much memory; let the host's OOM handling act
            except Exception as exc:  # noqa: BLE001 - a broken kernel build must not stop the run
                if self.config.backend == "mamba_ssm":
                    raise MambaBackendError(
                        f"MambaConfig.backend='mamba_ssm' but the mamba-ssm kernels failed "
                        f"({type(exc).__name__}: {exc}). Reinstall mamba-ssm and causal-conv1d against this "
                        "torch (pip install --no-build-isolation ...), or use backend='auto'.") from exc
                self._fused_failed = True
                report_fused_failure(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return self.forward_torch(hidden)

    # ------------------------------------------------------------------ shared pieces
    def _conv_silu(self, x: torch.Tensor) -> torch.Tensor:
        """Causal depthwise conv + SiLU on channel-major x (b, E, L) -> (b, E, L)."""
        length = x.shape[-1]
        return F.silu(self.conv1d(x)[..., :length])

    def _A(self, like: torch.Tensor) -> torch.Tensor:
        """A = -exp(A_log), float32 (d_inner, d_state) on ``like``'s device."""
        return -torch.exp(self.A_log.to(device=like.device, dtype=torch.float32))

    def _D(self, like: torch.Tensor) -> torch.Tensor:
        """The skip D, float32 (d_inner,) on ``like``'s device."""
        return self.D.to(device=like.device, dtype=torch.float32)

    # ------------------------------------------------------------------ backends
    def forward_torch(self, hidden: torch.Tensor) -> torch.Tensor:
        """Pure-PyTorch path (any device); the scan state is float32 (see :mod:`.scan`)."""
        xz = self.in_proj(hidden)                                  # (b, L, 2E)
        x, z = xz.chunk(2, dim=-1)
        x = self._conv_silu(x.transpose(1, 2)).transpose(1, 2)     # (b, L, E)
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt).float())               # (b, L, E) fp32
        y = selective_scan(x, delta, self._A(x), B, C, chunk=self.config.scan_chunk)
        y = y + x.to(y.dtype) * self._D(x).to(y.dtype)
        y = y * F.silu(z.to(y.dtype))
        return self.out_proj(y.to(hidden.dtype))

    def forward_fused(self, hidden: torch.Tensor, kernels: FusedKernels) -> torch.Tensor:
        """mamba-ssm kernel path: the same math as ``mamba_ssm.Mamba.forward`` without
        ``mamba_inner_fn`` (projections are called as modules so host weight casting applies)."""
        xz = self.in_proj(hidden).transpose(1, 2)                  # (b, 2E, L)
        x, z = xz.chunk(2, dim=1)
        if kernels.causal_conv1d_fn is not None and self.d_conv in CAUSAL_CONV1D_WIDTHS:
            weight = self.conv1d.weight.to(device=x.device, dtype=x.dtype)
            bias = self.conv1d.bias
            bias = bias.to(device=x.device, dtype=x.dtype) if bias is not None else None
            x = kernels.causal_conv1d_fn(x.contiguous(), weight.reshape(self.d_inner, -1), bias,
                                         activation="silu")
        else:
            x = self._conv_silu(x)
        dt, B, C = self.x_proj(x.transpose(1, 2)).split(
            [self.dt_rank, self.d_state, self.d_state], dim=-1)    # (b, L, .)
        delta = self.dt_proj(dt).transpose(1, 2)                  # (b, E, L), bias included
        y = kernels.selective_scan_fn(
            x.contiguous(), delta.to(x.dtype).contiguous(), self._A(x),
            B.transpose(1, 2).to(x.dtype).contiguous(), C.transpose(1, 2).to(x.dtype).contiguous(),
            self._D(x), z=z.to(x.dtype).contiguous(), delta_bias=None, delta_softplus=True)
        return self.out_proj(y.transpose(1, 2).to(hidden.dtype))
