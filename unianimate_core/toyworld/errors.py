"""Errors of the synthetic world (a :class:`~unianimate_core.errors.UniAnimateError`, so a ``ValueError``)."""
from __future__ import annotations

from ..errors import InputError


class ToyWorldError(InputError):
    """An option of the synthetic world (size, frame count, split, index) cannot be used."""


def check_size(width: object, height: object, multiple: int = 8) -> tuple[int, int]:
    """Width/height of a rendered frame: positive integers, multiples of ``multiple`` (8 = the codec factor)."""
    try:
        w, h = int(width), int(height)  # type: ignore[call-overload]
        ok = w == width and h == height
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or w <= 0 or h <= 0:
        raise ToyWorldError(f"world size must be positive whole pixels, got {width!r} x {height!r}.")
    if w % multiple or h % multiple:
        raise ToyWorldError(f"world size {w}x{h} must be a multiple of {multiple} in both directions "
                            f"(the autoencoder reduces by 8, the UNet needs 64 for its levels); use e.g. "
                            f"{max(multiple, round(w / multiple) * multiple)}x{max(multiple, round(h / multiple) * multiple)}.")
    if max(w, h) > 4096:
        raise ToyWorldError(f"world size {w}x{h} is larger than 4096 px per side; the world is meant for small frames.")
    return w, h


def check_count(value: object, what: str, minimum: int = 1) -> int:
    """A whole number >= ``minimum`` (numpy integers accepted, floats and bools refused)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ToyWorldError(f"{what} must be a whole number >= {minimum}, got {value!r}.")
    return int(value)
