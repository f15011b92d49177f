"""Errors of batch rendering (each names the problem and the fix, like every UniAnimateError)."""
from __future__ import annotations

from ..errors import UniAnimateError


class BatchError(UniAnimateError):
    """The batch as a whole cannot run (unreadable job list, busy output folder, no worker can start)."""


class JobError(UniAnimateError):
    """One job cannot run (missing input, unknown or bad option); it fails alone, the batch goes on."""


__all__ = ["BatchError", "JobError"]
