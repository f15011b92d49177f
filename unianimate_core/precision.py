"""Half precision: which dtypes a device can run, and where normalisations need float32 statistics.

Two dtypes matter for every run (see docs/precision.md):

* the **weight (storage) dtype** - fp32, fp16, bf16, or fp8 (``float8_e4m3fn`` / ``float8_e5m2``) when
  the host stores weights in 8 bits and casts them per layer (ComfyUI's ``manual_cast`` ops);
* the **compute dtype** - what activations are computed in: fp32, fp16 or bf16, never fp8.

GroupNorm/LayerNorm statistics over half-precision activations must be accumulated in float32 (a
GroupNorm over 33 frames x 6144 pixels sums 2 million values). Whether that needs an explicit
upcast depends on the device's kernels, see :data:`NORM_KERNELS_ACCUMULATE_IN_FP32`.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Union

import torch

from .errors import PrecisionError

log = logging.getLogger("unianimate")

HALF_DTYPES = (torch.float16, torch.bfloat16)
COMPUTE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
FP8_DTYPES = tuple(getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, name))
STORAGE_DTYPES = COMPUTE_DTYPES + FP8_DTYPES

#: Device types whose GroupNorm/LayerNorm kernels accumulate fp16/bf16 inputs in float32 by
#: themselves: CUDA (and ROCm, which reports "cuda") computes mean/variance in ``acc_type<T>`` =
#: float, and the CPU kernels use ``opmath_type<T>`` = float (checked by
#: tests/precision/test_norms.py::test_cpu_norm_kernels_accumulate_half_inputs_in_fp32). There a
#: half-precision norm is as accurate as upcasting to fp32 and rounding back (one rounding of an
#: fp32-accurate result either way), without two extra full passes over the activation. Every other
#: device (Apple MPS, Intel XPU, DirectML, ...) gets the explicit fp32 round trip: the accumulation of
#: its kernels is not documented.
NORM_KERNELS_ACCUMULATE_IN_FP32 = frozenset({"cpu", "cuda"})


def norm_needs_fp32_input(x: torch.Tensor) -> bool:
    """Whether a GroupNorm/LayerNorm over ``x`` must run on an fp32 copy to get fp32 statistics."""
    return x.dtype in HALF_DTYPES and x.device.type not in NORM_KERNELS_ACCUMULATE_IN_FP32


def casts_own_weights(layer: Any) -> bool:
    """Whether a host layer casts its weights to the input's dtype and device itself.

    Mirrors the test in ComfyUI's ``comfy.ops`` forwards: ``manual_cast`` layers always do, every
    ``comfy.ops`` layer does while a weight function (a LoRA / low-VRAM patch) is attached, and
    ``disable_weight_init`` layers otherwise run their stored weights as they are (like ``torch.nn``).
    """
    return bool(getattr(layer, "comfy_cast_weights", False)
                or getattr(layer, "weight_function", None)
                or getattr(layer, "bias_function", None))


def dtype_name(dtype: torch.dtype) -> str:
    """The short names users choose from: fp32, fp16, bf16, fp8_e4m3fn, fp8_e5m2."""
    names = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
    names.update({d: "fp8_" + str(d).replace("torch.float8_", "") for d in FP8_DTYPES})
    return names.get(dtype, str(dtype).replace("torch.", ""))


def check_compute_dtype(dtype: torch.dtype, device: Union[str, torch.device, None] = None) -> None:
    """Raise :class:`PrecisionError` unless ``device`` can compute the UNet in ``dtype``."""
    if dtype not in COMPUTE_DTYPES:
        raise PrecisionError(
            f"{dtype_name(dtype)} is a storage format, not a compute dtype: activations run in fp32, fp16 or "
            "bf16. Keep fp8 for the weights (ComfyUI casts them per layer) and compute in fp16/bf16.")
    if device is not None:
        _check_device(torch.device(device), dtype, "compute in")


def check_weight_dtype(dtype: torch.dtype, device: Union[str, torch.device, None] = None) -> None:
    """Raise :class:`PrecisionError` unless weights stored in ``dtype`` can live on ``device``."""
    if dtype not in STORAGE_DTYPES:
        raise PrecisionError(f"unsupported weight dtype {dtype}; use fp32, fp16, bf16 or fp8 (e4m3fn / e5m2).")
    if device is not None:
        _check_device(torch.device(device), dtype, "store weights in")


def _check_device(device: torch.device, dtype: torch.dtype, what: str) -> None:
    name = dtype_name(dtype)
    if device.type == "cuda" and dtype == torch.bfloat16 and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        if major < 8:
            gpu = torch.cuda.get_device_name(index)
            raise PrecisionError(
                f"cannot {what} bf16 on {gpu} (compute capability {major}.{minor}): bfloat16 needs an NVIDIA GPU "
                "of compute capability 8.0 or newer (RTX 30xx / A100 and later). Use fp16 (or fp32) instead.")
    if dtype in FP8_DTYPES and device.type == "mps":
        raise PrecisionError(f"cannot {what} {name} on Apple MPS: PyTorch has no float8 support there. "
                             "Use fp16 weights instead.")
    if not _probe(device.type, device.index, dtype):
        raise PrecisionError(
            f"cannot {what} {name} on {device}: this PyTorch build ({torch.__version__}) cannot create {name} "
            f"tensors there. Use {'fp16' if dtype != torch.float16 else 'fp32'} instead.")


@functools.lru_cache(maxsize=32)
def _probe(device_type: str, index: Any, dtype: torch.dtype) -> bool:
    """Whether a tiny tensor of ``dtype`` can be created and cast on the device (cached)."""
    if device_type in ("cpu", "meta"):
        return True
    try:
        t = torch.zeros(2, dtype=torch.float32, device=torch.device(device_type, index) if index is not None
                        else torch.device(device_type))
        return bool(torch.isfinite(t.to(dtype).to(torch.float32)).all())
    except (RuntimeError, TypeError, AssertionError) as exc:
        log.debug("dtype probe %s on %s failed: %s", dtype, device_type, exc)
        return False
