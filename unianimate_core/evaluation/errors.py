"""Errors of the evaluation suite (``UniAnimateError`` subclasses: one actionable line each)."""
from __future__ import annotations

from ..errors import DependencyError, InputError


class EvaluationError(InputError):
    """Videos, poses or options that the evaluation cannot use (shape mismatch, empty video, ...)."""


class EvaluationDependencyError(EvaluationError, DependencyError):
    """An optional package needed by a metric or by the plots is not installed."""


def import_torchmetrics():
    try:
        import torchmetrics.functional.image as tmf
    except ImportError as exc:
        raise EvaluationDependencyError(
            f"SSIM/PSNR need torchmetrics ({exc}); install the evaluation extra: "
            "pip install \"comfyui-unianimate[eval]\" (or: pip install torchmetrics matplotlib).") from exc
    return tmf


def import_pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise EvaluationDependencyError(
            f"the plots need matplotlib ({exc}); install the evaluation extra: "
            "pip install \"comfyui-unianimate[eval]\" (or: pip install matplotlib), or pass plots=False.") from exc
    return plt
