"""Errors raised by the pose pipeline.

Every failure a user can cause (a missing model file, a missing optional package, malformed
keypoints) is a :class:`PoseError` — a ``UniAnimateError``, itself a ``ValueError`` — and its message
names the problem *and* the fix, so ComfyUI shows something actionable instead of a traceback.
The classes below also derive from the package-wide kinds (``DependencyError``,
``ModelFileNotFoundError``, ``InputError``) so callers can catch either family.
"""
from __future__ import annotations

import numbers

from ..errors import (
    DependencyError,
    InputError,
    ModelFileNotFoundError,
    PoseError,
    UniAnimateError,
)


class PoseDependencyError(PoseError, DependencyError):
    """An optional runtime package (onnxruntime, OpenCV, MediaPipe) is not installed."""


class PoseModelNotFoundError(PoseError, ModelFileNotFoundError):
    """A DWPose model file was not found in any searched folder."""


class PoseInputError(PoseError, InputError):
    """Keypoints, images or options that the pose pipeline cannot use."""


class PoseAlignmentError(PoseError):
    """Alignment is impossible (e.g. no person in the reference image)."""


__all__ = [
    "UniAnimateError",
    "PoseError",
    "PoseDependencyError",
    "PoseModelNotFoundError",
    "PoseInputError",
    "PoseAlignmentError",
]


def check_threshold(threshold: object) -> float:
    """A visibility threshold must be a number in [0, 1) (a NaN one would hide every point silently)."""
    ok = isinstance(threshold, numbers.Real) and not isinstance(threshold, bool) and 0.0 <= float(threshold) < 1.0
    if not ok:
        raise PoseInputError(f"threshold must be a number in [0, 1) (keypoint confidence; default 0.3), got {threshold!r}.")
    return float(threshold)


def positive_size(width: object, height: object, what: str, maximum: int | None = None) -> tuple[int, int]:
    """Validate a (width, height) pair given by a caller; returns it as ints.

    Shared by the renderer, the canvas helpers and the POSE_KEYPOINT reader so all reject a bad
    size with the same message. Integral floats (``512.0`` from JSON) are accepted, fractional ones
    are not (they would be truncated silently).
    """
    try:
        w, h = int(width), int(height)  # type: ignore[call-overload]
        integral = w == width and h == height
    except (TypeError, ValueError, OverflowError) as exc:
        raise PoseInputError(f"{what} must be integers, got {width!r} x {height!r}.") from exc
    if not integral:
        raise PoseInputError(f"{what} must be whole numbers of pixels, got {width!r} x {height!r}.")
    if w <= 0 or h <= 0:
        raise PoseInputError(f"{what} must be positive, got {w} x {h}.")
    if maximum is not None and max(w, h) > maximum:
        raise PoseInputError(f"{what} {w} x {h} is larger than the supported {maximum} px per side; use a smaller size.")
    return w, h
