"""Errors of the headless pipeline.

Each one is a :class:`unianimate_core.errors.UniAnimateError` (a ``ValueError``) whose message names
the problem and the fix, so the command line prints one actionable line instead of a traceback.
"""
from __future__ import annotations

from ..errors import DependencyError, ModelFileNotFoundError, UniAnimateError


class PipelineError(UniAnimateError):
    """A headless-pipeline input or option cannot be used (bad size, bad frame count, ...)."""


class MediaError(PipelineError):
    """An image or video could not be read or written."""


__all__ = ["PipelineError", "MediaError", "DependencyError", "ModelFileNotFoundError", "UniAnimateError"]
