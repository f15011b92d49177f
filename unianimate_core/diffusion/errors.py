"""Errors raised by the sampling core.

Bad inputs raise :class:`SamplingError` (an ``InputError``, hence a ``UniAnimateError`` and ``ValueError``) whose text
names the problem and the fix. A user-requested stop raises :class:`SamplingCancelled`, which is not
an input error, so callers can tell "the user pressed stop" from "the inputs were wrong".
"""
from __future__ import annotations

import math
import numbers
from typing import Any

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


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int within ``minimum..maximum``; numpy integers are accepted, bools and floats are not."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    ok = ok and int(value) >= minimum and (maximum is None or int(value) <= maximum)
    bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
    check(ok, f"{name} must be an integer {bounds}, got {value!r}.")
    return int(value)


def check_number(name: str, value: Any, minimum: float | None = None, maximum: float | None = None) -> float:
    """``value`` as a finite float within the optional bounds (None, strings, NaN and inf are refused)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    ok = ok and (minimum is None or float(value) >= minimum) and (maximum is None or float(value) <= maximum)
    bounds = "" if minimum is None and maximum is None else (
        f" >= {minimum}" if maximum is None else f" in {minimum}..{maximum}" if minimum is not None
        else f" <= {maximum}")
    check(ok, f"{name} must be a finite number{bounds}, got {value!r}.")
    return float(value)


def check_type(name: str, value: Any, expected: type, hint: str) -> None:
    """Refuse a wrong argument type (e.g. None or options passed in the wrong position) with a hint."""
    check(isinstance(value, expected), f"{name} must be a {expected.__name__}, got {type(value).__name__}; {hint}")
