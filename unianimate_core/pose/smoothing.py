"""Temporal smoothing of keypoint sequences (removes detector jitter without lag).

A centred Gaussian over time, per keypoint, that only averages frames where that keypoint is
visible: missing points never pull visible ones towards garbage, and points that are missing in
a frame stay missing. Offline sequences allow a symmetric (zero-lag) window, which a causal
One-Euro filter cannot offer.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .errors import PoseInputError
from .keypoints import DEFAULT_THRESHOLD, NUM_KEYPOINTS, Person, PoseFrame


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Gaussian weights (peak 1, not summing to 1: the smoother divides by the visible weights)
    over offsets -r..r, r = ceil(3 sigma)."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    return np.exp(-0.5 * (t / sigma) ** 2)


def _check_sigma(sigma: float) -> None:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(sigma) and sigma >= 0):
        raise PoseInputError(f"smoothing sigma must be a finite number >= 0 (frames), got {sigma!r}.")


def smooth_keypoints(points: np.ndarray, visible: np.ndarray, sigma: float) -> np.ndarray:
    """(T, K, 2) points + (T, K) bool visibility -> smoothed (T, K, 2); invisible entries unchanged."""
    _check_sigma(sigma)
    if sigma == 0 or len(points) < 2:
        return np.array(points, dtype=np.float64, copy=True)
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    T = points.shape[0]
    w = visible.astype(np.float64)
    num = np.zeros_like(points, dtype=np.float64)
    den = np.zeros(visible.shape, dtype=np.float64)
    safe = np.where(visible[..., None], points, 0.0)
    for k, weight in enumerate(kernel):
        shift = k - radius
        lo, hi = max(0, -shift), min(T, T - shift)
        if lo >= hi:
            continue
        num[lo:hi] += weight * (safe[lo + shift:hi + shift] * w[lo + shift:hi + shift, :, None])
        den[lo:hi] += weight * w[lo + shift:hi + shift]
    out = np.array(points, dtype=np.float64, copy=True)
    upd = visible & (den > 0)
    out[upd] = num[upd] / den[upd][:, None]
    return out


def smooth_sequence(frames: Sequence[PoseFrame], sigma: float, threshold: float = DEFAULT_THRESHOLD) -> list[PoseFrame]:
    """Smooth person 0 of each frame over time (frames without a person are left as they are)."""
    _check_sigma(sigma)
    idx = [i for i, f in enumerate(frames) if f.people]
    out = [f.copy() for f in frames]
    if sigma == 0 or len(idx) < 2:
        return out
    T = len(frames)
    pts = np.zeros((T, NUM_KEYPOINTS, 2))
    vis = np.zeros((T, NUM_KEYPOINTS), dtype=bool)
    for i in idx:
        pts[i] = frames[i].people[0].keypoints
        vis[i] = frames[i].people[0].visible(threshold)
    smoothed = smooth_keypoints(pts, vis, sigma)
    for i in idx:
        p = out[i].people[0]
        out[i].people[0] = Person(smoothed[i], p.scores, p.box, p.det_score, p.approximate)
    return out
