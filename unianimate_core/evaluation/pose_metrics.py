"""Pose following: keypoint error and PCK of generated frames against the driving poses.

The generated frames' poses come from a detector: the world's limb detector
(``unianimate_core.toyworld.detect``) in the synthetic world, our DWPose pipeline on real data.
Errors are in pixels of the evaluated frames and, for PCK, relative to the *torso length* of the
ground-truth pose (neck to the mid-point of the hips): a length that does not change when the
body turns (orthographic yaw) or moves its limbs, unlike a bounding box.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..pose.keypoints import DEFAULT_THRESHOLD, Person, PoseFrame
from .errors import EvaluationError

#: OpenPose-18 body rows (the default joints scored on real data).
BODY_ROWS: tuple[int, ...] = tuple(range(18))
NECK, R_HIP, L_HIP = 1, 8, 11


def _person(p: PoseFrame | Person | None) -> Person | None:
    if p is None:
        return None
    if isinstance(p, Person):
        return p
    if isinstance(p, PoseFrame):
        return p.people[0] if p.people else None
    raise EvaluationError(f"poses must be PoseFrame or Person objects (or None), got {type(p).__name__}.")


def _size(p: PoseFrame | Person | None, fallback: tuple[int, int] | None) -> tuple[int, int]:
    if isinstance(p, PoseFrame):
        return p.width, p.height
    if fallback is None:
        raise EvaluationError("keypoint errors need the frame size: pass PoseFrame objects or size=(width, height).")
    return fallback


def torso_length(person: Person, width: int, height: int, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Neck to mid-hip distance in pixels (NaN when the neck or both hips are not visible)."""
    vis = person.visible(threshold)
    if not vis[NECK] or not (vis[R_HIP] or vis[L_HIP]):
        return float("nan")
    hips = [h for h in (R_HIP, L_HIP) if vis[h]]
    mid = person.keypoints[hips].mean(0)
    d = (person.keypoints[NECK] - mid) * np.array([width, height])
    return float(np.hypot(*d))


def keypoint_errors(pred: Sequence[PoseFrame | Person | None], gt: Sequence[PoseFrame | Person | None],
                    rows: Sequence[int] = BODY_ROWS, size: tuple[int, int] | None = None,
                    threshold: float = DEFAULT_THRESHOLD, reference_length: Sequence[float] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame, per-joint errors in pixels and the per-frame reference (torso) length.

    Returns ``errors`` ``(F, len(rows))``: NaN where the ground-truth joint is not visible (not
    scored), +inf where it is visible but the prediction misses it; and ``reference`` ``(F,)``
    pixels (``reference_length`` if given, else the ground truth's torso length, NaN if unknown).
    """
    if len(pred) != len(gt):
        raise EvaluationError(f"{len(pred)} predicted poses for {len(gt)} ground-truth poses; give one per frame.")
    rows = list(rows)
    err = np.full((len(gt), len(rows)), np.nan)
    ref = np.full(len(gt), np.nan)
    for f, (p, g) in enumerate(zip(pred, gt)):
        w, h = _size(g, size)
        gp, pp = _person(g), _person(p)
        if gp is None:
            continue
        gv = gp.visible(threshold)[rows]
        pv = pp.visible(threshold)[rows] if pp is not None else np.zeros(len(rows), bool)
        scale = np.array([w, h], dtype=np.float64)
        if pp is not None:
            d = np.hypot(*((pp.keypoints[rows] - gp.keypoints[rows]) * scale).T)
        else:
            d = np.full(len(rows), np.inf)
        err[f] = np.where(gv, np.where(pv, d, np.inf), np.nan)
        ref[f] = reference_length[f] if reference_length is not None else torso_length(gp, w, h, threshold)
    return err, ref


def pck(errors: np.ndarray, reference: np.ndarray, alpha: float) -> np.ndarray:
    """``(F,)`` share of scored joints within ``alpha x reference`` (NaN for frames with none scored)."""
    scored = ~np.isnan(errors)
    with np.errstate(invalid="ignore"):
        hit = (errors <= alpha * reference[:, None]) & scored
    n = scored.sum(1)
    return np.where(n > 0, hit.sum(1) / np.maximum(n, 1), np.nan)


def mean_error(errors: np.ndarray, reference: np.ndarray | None = None, cap: float | None = None) -> np.ndarray:
    """``(F,)`` mean error of scored joints (missed joints count as ``cap``; default: 1 torso length
    when ``reference`` is given, else the error is NaN for frames with a missed joint)."""
    e = errors.copy()
    if reference is not None:
        e = e / reference[:, None]
        cap = 1.0 if cap is None else cap
    if cap is not None:
        e[np.isinf(e)] = cap
    scored = ~np.isnan(e)
    n = scored.sum(1)
    total = np.where(scored, e, 0.0).sum(1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def mask_iou(pred: np.ndarray, gt: np.ndarray, min_area: int = 20) -> np.ndarray:
    """``(F,)`` mean IoU over the parts present in the ground truth (``(F, K, H, W)`` bool masks;
    a part counts when it has at least ``min_area`` pixels; NaN for frames with none)."""
    if pred.shape != gt.shape:
        raise EvaluationError(f"mask shapes differ: {pred.shape} vs {gt.shape}.")
    inter = (pred & gt).sum((2, 3)).astype(np.float64)
    union = (pred | gt).sum((2, 3)).astype(np.float64)
    present = gt.sum((2, 3)) >= min_area
    iou = np.where(present, inter / np.maximum(union, 1), 0.0)
    n = present.sum(1)
    return np.where(n > 0, iou.sum(1) / np.maximum(n, 1), np.nan)


def soft_iou(pred: np.ndarray, gt: np.ndarray, min_mass: float = 4.0) -> np.ndarray:
    """``(F,)`` mean over parts of sum(min) / sum(max) of soft maps ``(F, K, H, W)`` in [0, 1] (the
    weighted Jaccard index); a part counts when its ground-truth map has at least ``min_mass`` in total;
    NaN for frames with none."""
    if pred.shape != gt.shape:
        raise EvaluationError(f"map shapes differ: {pred.shape} vs {gt.shape}.")
    inter = np.minimum(pred, gt).sum((2, 3), dtype=np.float64)
    union = np.maximum(pred, gt).sum((2, 3), dtype=np.float64)
    present = gt.sum((2, 3), dtype=np.float64) >= min_mass
    iou = np.where(present, inter / np.maximum(union, 1e-12), 0.0)
    n = present.sum(1)
    return np.where(n > 0, iou.sum(1) / np.maximum(n, 1), np.nan)
