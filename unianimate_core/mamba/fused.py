"""Optional fused CUDA kernels from ``mamba-ssm`` (and ``causal-conv1d``), imported lazily.

mamba-ssm is an optional extra: it only builds on Linux + CUDA, its import pulls triton and other
GPU-only packages, and on a CPU install it fails with ``ModuleNotFoundError`` (or worse, other
exceptions raised while importing its submodules). So the import happens on first use, any
``Exception`` means "not available" (the reason is logged once, so a user who installed the
kernels can see why they are not used), and the result is cached for the process.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Callable, Optional

log = logging.getLogger("unianimate.mamba")

#: Kernel widths ``causal_conv1d_fn`` supports (its CUDA code is instantiated for these only).
CAUSAL_CONV1D_WIDTHS = (2, 3, 4)


@dataclass(frozen=True)
class FusedKernels:
    """The two mamba-ssm entry points the mixer uses.

    * ``selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None,
      delta_softplus=False, return_last_state=False)`` with u, delta, z (b, d, L) of one dtype;
      A (d, n) fp32; B, C (b, n, L) in u's dtype; D (d,) fp32; returns (b, d, L) =
      (scan + D*u) * silu(z).
    * ``causal_conv1d_fn(x, weight, bias=None, activation=None)`` with x (b, d, L), weight
      (d, width), width 2..4, bias (d,) in weight's dtype; ``None`` when causal-conv1d is not
      installed (the mixer then uses its own depthwise Conv1d, which is the same math).
    """

    selective_scan_fn: Callable
    causal_conv1d_fn: Optional[Callable] = None


@functools.lru_cache(maxsize=1)
def load_fused_kernels() -> Optional[FusedKernels]:
    """mamba-ssm's kernels, or None when they cannot be imported (cached after the first call)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as exc:  # noqa: BLE001 - any failure while importing means "not available"
        if isinstance(exc, ModuleNotFoundError) and exc.name == "mamba_ssm":
            log.debug("temporal Mamba: mamba-ssm is not installed; using the pure-PyTorch scan.")
            return None
        # installed but unusable: typically compiled against another torch / CUDA ("undefined symbol")
        import torch

        log.warning("temporal Mamba: mamba-ssm is installed but its kernels cannot be loaded (%s: %s). It was probably "
                    "built for another torch / CUDA than this torch %s (CUDA %s); reinstall it with "
                    "`pip install --no-build-isolation --force-reinstall mamba-ssm causal-conv1d`. Using the pure-PyTorch "
                    "scan meanwhile (same result, slower).", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
                    torch.__version__, torch.version.cuda)
        return None
    try:
        from causal_conv1d import causal_conv1d_fn
    except Exception as exc:  # noqa: BLE001
        log.debug("temporal Mamba: causal-conv1d unavailable (%s); using the module's Conv1d.", exc)
        causal_conv1d_fn = None
    return FusedKernels(selective_scan_fn=selective_scan_fn, causal_conv1d_fn=causal_conv1d_fn)


@functools.lru_cache(maxsize=8)
def report_fused_failure(reason: str) -> None:
    """Log a kernel failure once per distinct reason (17 layers would otherwise repeat it)."""
    log.warning("temporal Mamba: the mamba-ssm kernels failed (%s); falling back to the pure-PyTorch scan "
                "(same result, slower). Reinstall mamba-ssm/causal-conv1d against this torch with "
                "--no-build-isolation, or set MambaConfig(backend='torch') to silence this.", reason)
