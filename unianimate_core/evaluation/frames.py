"""Video inputs of the metrics: one layout, checked once."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import EvaluationError


def as_video(value: Any, name: str) -> Tensor:
    """A video -> float32 ``(F, 3, H, W)`` in [0, 1].

    Accepts uint8 ``(F, H, W, 3)`` arrays/tensors (0..255), float ``(F, H, W, 3)`` (ComfyUI IMAGE,
    [0, 1]) or float ``(F, 3, H, W)`` in [0, 1]; a single image ``(H, W, 3)`` becomes one frame.
    """
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, Tensor):
        raise EvaluationError(f"{name} must be a numpy array or torch tensor of frames, got {type(value).__name__}.")
    x = value
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise EvaluationError(f"{name} must be frames (F, H, W, 3) or (F, 3, H, W); got shape {tuple(value.shape)}.")
    if x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    elif x.shape[1] != 3:
        raise EvaluationError(f"{name} must have 3 colour channels (F, H, W, 3) or (F, 3, H, W); got {tuple(value.shape)}.")
    if x.shape[0] == 0:
        raise EvaluationError(f"{name} has no frames.")
    if x.dtype == torch.uint8:
        return x.to(torch.float32) / 255.0
    if not x.is_floating_point():
        raise EvaluationError(f"{name} must be uint8 (0..255) or float in [0, 1]; got {x.dtype}.")
    x = x.to(torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise EvaluationError(f"{name} contains NaN or infinite values.")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise EvaluationError(f"{name} must be in [0, 1] as floats (got values in [{lo:.3g}, {hi:.3g}]); "
                              "divide 8-bit values by 255 or pass uint8.")
    return x.clamp(0.0, 1.0)


def same_shape(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise EvaluationError(f"{what}: the generated video is {tuple(a.shape)} (F, 3, H, W) but the ground truth is "
                              f"{tuple(b.shape)}; evaluate the same number of frames at the same size "
                              "(resize or cut one of them first).")


def to_uint8_hwc(x: Tensor) -> np.ndarray:
    """float ``(F, 3, H, W)`` in [0, 1] -> uint8 ``(F, H, W, 3)`` (rounded)."""
    return (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
