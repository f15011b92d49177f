"""Errors of the trainer: each names the problem and the fix (see ``unianimate_core.errors``)."""
from __future__ import annotations

from ..errors import UniAnimateError


class TrainError(UniAnimateError):
    """Training cannot start or continue (bad option, unwritable output, missing dependency...)."""


class TrainConfigError(TrainError):
    """A key of the training config file is unknown, missing, of the wrong type or out of range."""


class DataError(TrainError):
    """The training data cannot be used at all (no usable clip, unreadable folder...).

    Individual bad videos never raise: they are skipped and counted in the data report.
    """


__all__ = ["TrainError", "TrainConfigError", "DataError"]
