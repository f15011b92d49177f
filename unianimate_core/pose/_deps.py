"""Lazy imports of the pose pipeline's optional runtime packages.

OpenCV and onnxruntime are not in the pack's requirements on purpose (installing one flavour would
replace a user's GPU/contrib build), so they are imported only inside the functions that need them
and a missing package becomes an error that says exactly what to install.
"""
from __future__ import annotations

from types import ModuleType

from .errors import PoseDependencyError


def import_cv2() -> ModuleType:
    """Return the ``cv2`` module or raise :class:`PoseDependencyError` with the install command."""
    try:
        import cv2
    except ImportError as exc:
        raise PoseDependencyError(
            "OpenCV is required for pose extraction and pose rendering but is not installed "
            f"({exc}). Install it with `pip install opencv-python-headless` (or keep the OpenCV "
            "build you already have: any of opencv-python / -headless / -contrib works)."
        ) from exc
    return cv2


def import_onnxruntime() -> ModuleType:
    """Return the ``onnxruntime`` module or raise :class:`PoseDependencyError` with the fix."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise PoseDependencyError(
            "onnxruntime is required for DWPose extraction but is not installed "
            f"({exc}). Install `pip install onnxruntime-gpu` on a machine with an NVIDIA GPU, "
            "otherwise `pip install onnxruntime` (install only one of the two)."
        ) from exc
    return onnxruntime


def import_mediapipe() -> ModuleType:
    """Return ``mediapipe`` (0.10.21, the last release that bundles its models) or raise."""
    try:
        import mediapipe
    except ImportError as exc:
        raise PoseDependencyError(
            "the MediaPipe pose backend needs the optional package mediapipe==0.10.21 "
            f"({exc}). Install it with `pip install mediapipe==0.10.21` (Python 3.9-3.12; it "
            "requires numpy<2, so use a separate environment if yours has numpy 2), or use the "
            "DWPose backend with yolox_l.onnx and dw-ll_ucoco_384.onnx."
        ) from exc
    version = getattr(mediapipe, "__version__", "")
    if not hasattr(mediapipe, "solutions"):
        raise PoseDependencyError(
            f"mediapipe {version or '(unknown version)'} has no `solutions` API and ships no models; "
            "install `pip install mediapipe==0.10.21`."
        )
    return mediapipe
