"""Optional fused CUDA kernels from ``mamba-ssm`` (and ``causal-conv1d``), imported lazily.

mamba-ssm is an optional extra: it only builds on Linux + CUDA, its import pulls triton and other
GPU-only packages, and on a CPU install it fails with ``ModuleNotFoundError`` (or worse, other
exceptions raised while importing its submodules). So the import happens on first use, any
``Exception`` means "not available", and the result is cached for the process.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class FusedKernels:
    """The two mamba-ssm entry points the mixer uses.

    * ``selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None,
      delta_softplus=False, return_last_state=False)`` with u, delta, z (b, d, L); A (d, n) fp32;
      B, C (b, n, L); D (d,) fp32; returns (b, d, L) = (scan + D*u) * silu(z).
    * ``causal_conv1d_fn(x, weight, bias=None, activation=None)`` with x (b, d, L), weight
      (d, width); ``None`` when causal-conv1d is not installed (the mixer then uses its own
      depthwise Conv1d, which is the same math).
    """

    selective_scan_fn: Callable
    causal_conv1d_fn: Optional[Callable] = None


@functools.lru_cache(maxsize=1)
def load_fused_kernels() -> Optional[FusedKernels]:
    """mamba-ssm's kernels, or None when they cannot be imported (cached after the first call)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # noqa: BLE001 - any failure while importing means "not available"
        return None
    try:
        from causal_conv1d import causal_conv1d_fn
    except Exception:  # noqa: BLE001
        causal_conv1d_fn = None
    return FusedKernels(selective_scan_fn=selective_scan_fn, causal_conv1d_fn=causal_conv1d_fn)
