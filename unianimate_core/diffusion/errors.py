"""Errors raised by the sampling core.

Bad inputs raise :class:`SamplingError` (an ``InputError``, hence a ``UniAnimateError`` and ``ValueError``) whose text
names the problem and the fix. A user-requested stop raises :class:`SamplingCancelled`, which is not
an input error, so callers can tell "the user pressed stop" from "the inputs were wrong".
"""
from __future__ import annotations

from ..errors import InputError


class SamplingError(InputError):
    """Invalid sampler input (shapes, options, timesteps); the message says how to fix it."""


class SamplingCancelled(RuntimeError):
    """Sampling was stopped on request (``should_cancel()`` returned True) between two model calls.

    Nothing the caller passed in has been modified; finished continuation segments were already
    handed out, so an interrupted render keeps them.
    """


def check(condition: bool, message: str) -> None:
    """Raise :class:`SamplingError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise SamplingError(message)
