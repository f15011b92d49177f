"""Errors of the temporal-Mamba package; every message names the problem and the fix."""
from __future__ import annotations

from ..errors import UniAnimateError


class MambaError(UniAnimateError):
    """Base class of temporal-Mamba failures."""


class MambaConfigError(MambaError):
    """A ``MambaConfig`` field is out of range, or a checkpoint's Mamba shapes are inconsistent."""


class MambaInputError(MambaError):
    """A tensor given to the scan / mixer / temporal layer has the wrong shape."""


class MambaBackendError(MambaError):
    """The requested backend cannot run on this input or installation."""
