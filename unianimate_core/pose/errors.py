"""Errors raised by the pose pipeline.

Every failure a user can cause (a missing model file, a missing optional package, malformed
keypoints) is a :class:`PoseError` — a ``UniAnimateError``, itself a ``ValueError`` — and its message
names the problem *and* the fix, so ComfyUI shows something actionable instead of a traceback.
The classes below also derive from the package-wide kinds (``DependencyError``,
``ModelFileNotFoundError``, ``InputError``) so callers can catch either family.
"""
from __future__ import annotations

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


def positive_size(width: object, height: object, what: str) -> tuple[int, int]:
    """Validate a (width, height) pair given by a caller; returns it as ints.

    Shared by the renderer and the POSE_KEYPOINT reader so both reject a bad size with the same message.
    """
    try:
        w, h = int(width), int(height)  # type: ignore[call-overload]
    except (TypeError, ValueError) as exc:
        raise PoseInputError(f"{what} must be integers, got {width!r} x {height!r}.") from exc
    if w <= 0 or h <= 0:
        raise PoseInputError(f"{what} must be positive, got {w} x {h}.")
    return w, h
