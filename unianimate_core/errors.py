"""User-facing errors.

Every failure a user can cause (a wrong file, a bad size, a missing keypoint) raises a subclass of
:class:`UniAnimateError` whose message names the problem *and* the fix. It subclasses ``ValueError``
so generic callers that already catch bad-input errors keep working.
"""
from __future__ import annotations


class UniAnimateError(ValueError):
    """Base class of every actionable error raised by ``unianimate_core``."""


class CheckpointError(UniAnimateError):
    """A model file is missing, unreadable, truncated, unsafe or of the wrong model type."""


class InputError(UniAnimateError):
    """Tensors or options given to the model/sampler have the wrong shape, size or range."""


class ModelFileNotFoundError(UniAnimateError, FileNotFoundError):
    """A model file could not be found in any of the searched locations."""


class PoseError(UniAnimateError):
    """Pose extraction/alignment/rendering could not proceed (e.g. no person detected)."""


class DependencyError(UniAnimateError, ImportError):
    """An optional dependency needed for the requested feature is not installed."""


class PrecisionError(UniAnimateError):
    """A dtype the device cannot run (bf16 without hardware support, fp8 where PyTorch has none...)."""
