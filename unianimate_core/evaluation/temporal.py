"""Temporal quality: flicker and warping error.

* ``temporal_difference_error`` (needs ground truth): per transition t-1 -> t, the mean absolute
  difference between the generated frame change and the ground-truth frame change,
  ``|(g_t - g_{t-1}) - (x_t - x_{t-1})|``. Zero for a video that changes exactly as the truth does;
  flicker, popping and seams add to it. No optical flow involved, so it is exact.
* ``flicker``: the mean absolute frame change ``|g_t - g_{t-1}|`` (no ground truth needed).
* ``warp_error``: the generated frame t-1 warped to t with the optical flow of the *reference
  video* (the ground truth, or the driving video), compared with frame t on pixels where the flow is
  reliable (forward-backward consistent) - the usual warping error of video-generation papers.
  Flow: OpenCV Farneback (deterministic, no weights).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..pose._deps import import_cv2
from .frames import same_shape

#: Forward-backward flow disagreement (pixels) above which a pixel is treated as occluded.
FB_TOLERANCE = 1.0


def temporal_difference_error(pred: Tensor, target: Tensor) -> Tensor:
    """``(F,)``: NaN for frame 0, then the error of each transition (see the module docstring)."""
    same_shape(pred, target, "temporal difference error")
    out = torch.full((pred.shape[0],), float("nan"))
    if pred.shape[0] > 1:
        out[1:] = ((pred[1:] - pred[:-1]) - (target[1:] - target[:-1])).abs().flatten(1).mean(1)
    return out


def flicker(frames: Tensor) -> Tensor:
    """``(F,)``: NaN for frame 0, then the mean absolute change from the previous frame."""
    out = torch.full((frames.shape[0],), float("nan"))
    if frames.shape[0] > 1:
        out[1:] = (frames[1:] - frames[:-1]).abs().flatten(1).mean(1)
    return out


def _gray(x: Tensor) -> np.ndarray:
    return (x.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy() @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow from gray image ``a`` to ``b`` (H, W, 2): a(p) ~ b(p + flow(p))."""
    cv2 = import_cv2()
    return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=3, winsize=9, iterations=3,
                                        poly_n=5, poly_sigma=1.1, flags=0)


def _warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``img`` at ``p + flow(p)`` (bilinear, border replicate)."""
    cv2 = import_cv2()
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warp_error(pred: Tensor, flow_source: Tensor) -> tuple[Tensor, Tensor]:
    """``(F,)`` warping error of ``pred`` (NaN for frame 0) and the share of pixels it used.

    For each t >= 1 the flow from frame t to frame t-1 of ``flow_source`` (backward flow) says where
    each pixel of frame t was; ``pred[t-1]`` sampled there is compared with ``pred[t]`` (mean absolute
    difference over RGB) on pixels whose forward-backward flows agree within :data:`FB_TOLERANCE`.
    """
    same_shape(pred, flow_source, "warp error")
    f = pred.shape[0]
    err = torch.full((f,), float("nan"))
    used = torch.full((f,), float("nan"))
    if f < 2:
        return err, used
    gray = _gray(flow_source)
    p = pred.permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32)
    for t in range(1, f):
        back = _flow(gray[t], gray[t - 1])   # t -> t-1
        fwd = _flow(gray[t - 1], gray[t])    # t-1 -> t
        fb = back + _warp(fwd, back)          # ~0 where consistent
        valid = np.hypot(fb[..., 0], fb[..., 1]) < FB_TOLERANCE
        warped = _warp(p[t - 1], back)
        diff = np.abs(p[t] - warped).mean(-1)
        if valid.any():
            err[t] = float(diff[valid].mean())
        used[t] = float(valid.mean())
    return err, used
