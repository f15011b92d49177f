"""Frame windows for sliding-window sampling of long videos.

Reproduces the window lists of the official long-video sampler (ali-vilab/UniAnimate @ 643c963,
``DiffusionDDIMLong``) wherever they are sane: windows of ``context_size`` frames start at
0, size - overlap, 2 (size - overlap), ... while the start is < F - overlap, and the last window is
moved back to end at the last frame. Deviations (documented in docs/sampling.md):

* F <= context_size: one window of the F real frames. The official scheduler instead raises for
  F <= size / 2 and builds one 32-index window of rotated, duplicated frames for size / 2 < F < size.
* context_stride > 1 (dilated windows, unused by the official configs): levels with frame spacing
  2, 4, ... are added only while the dilated window fits into the clip, and windows never wrap
  around the end of the clip (the official scheduler wraps indices modulo F).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import check, check_int


@dataclass(frozen=True)
class SlidingWindowOptions:
    """Sliding-window settings (official long-video defaults).

    context_size: frames per window (the model sees this many target frames per call).
    context_overlap: frames shared by consecutive windows (0 <= overlap < size).
    context_stride: 1 = contiguous windows only; n > 1 adds dilated windows with spacing 2 .. 2^(n-1).
    context_batch_size: windows run together in one model call (more memory, fewer calls).
    """

    context_size: int = 32
    context_overlap: int = 8
    context_stride: int = 1
    context_batch_size: int = 1

    def __post_init__(self) -> None:
        check_int("context_size", self.context_size, 1)
        check_int("context_overlap", self.context_overlap, 0)
        check_int("context_stride", self.context_stride, 1)
        check_int("context_batch_size", self.context_batch_size, 1)
        check(self.context_overlap < self.context_size,
              f"context_overlap ({self.context_overlap}) must be smaller than context_size ({self.context_size}); "
              "otherwise windows would never advance.")

    def windows(self, num_frames: int) -> list[list[int]]:
        return context_windows(num_frames, self.context_size, self.context_stride, self.context_overlap)

    def groups(self, num_frames: int) -> list[list[list[int]]]:
        """Windows in processing order, grouped ``context_batch_size`` at a time (one model call each)."""
        wins = self.windows(num_frames)
        n = self.context_batch_size
        return [wins[i:i + n] for i in range(0, len(wins), n)]


def context_windows(num_frames: int, context_size: int = 32, context_stride: int = 1,
                    context_overlap: int = 8) -> list[list[int]]:
    """Frame indices of every window, in processing order; every window has min(size, F) frames."""
    check_int("num_frames", num_frames, 1)
    SlidingWindowOptions(context_size, context_overlap, context_stride)  # validates the rest
    if num_frames <= context_size:
        return [list(range(num_frames))]
    levels = min(context_stride, math.ceil(math.log2(num_frames / context_size)) + 1)
    windows: list[list[int]] = []
    for level in range(levels):
        spacing = 1 << level
        span = (context_size - 1) * spacing + 1
        if span > num_frames:
            break
        step = context_size * spacing - context_overlap
        for start in range(0, num_frames - context_overlap, step):
            start = min(start, num_frames - span)
            window = list(range(start, start + span, spacing))
            if window not in windows:
                windows.append(window)
    return windows

