"""Progress reporting and cancellation shared by every sampling loop.

``progress(done, total, x0_preview)`` is called after every unit of work (one denoising step of a
short clip, one window group of a long clip); ``x0_preview`` is the current x0 estimate at the end
of a denoising step and None in between. ``should_cancel()`` is polled before each unit's model
call(s). Either may raise (ComfyUI's interrupt does): the loops never mutate their input tensors,
so an exception leaves no half-updated state behind (only a passed generator has advanced).
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from .errors import SamplingCancelled

ProgressFn = Callable[[int, int, "Tensor | None"], None]
CancelFn = Callable[[], bool]


class ProgressTracker:
    """Counts work units and forwards them to the caller's callbacks (one per sampling run)."""

    def __init__(self, total: int, progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
                 done: int = 0) -> None:
        self.total = total
        self.done = done
        self._progress = progress
        self._should_cancel = should_cancel

    def check_cancel(self) -> None:
        """Raise SamplingCancelled if the caller asked to stop."""
        if self._should_cancel is not None and self._should_cancel():
            raise SamplingCancelled(f"Sampling cancelled after {self.done} of {self.total} work units.")

    def advance(self, preview: Tensor | None = None) -> None:
        """Record one finished unit of work and report it."""
        self.done += 1
        if self._progress is not None:
            self._progress(self.done, self.total, preview)
