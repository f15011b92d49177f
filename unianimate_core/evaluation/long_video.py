"""Long videos: drift (a metric against the frame index) and seams (window/segment boundaries)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import EvaluationError


def seam_frames(strategy: str, num_frames: int, *, context_size: int = 32, context_overlap: int = 8,
                segment_length: int = 32) -> list[int]:
    """Frames whose transition from the previous frame crosses a boundary of the long-video strategy.

    ``windows`` (sliding windows): where a window starts and where the previous one ends (the
    blended overlap begins and ends there); ``continuation``: the first newly generated frame of
    each segment after the first (segments share their hand-over frame); ``short``: none.
    """
    if strategy == "short":
        return []
    if strategy == "windows":
        from ..diffusion.windows import context_windows

        wins = context_windows(num_frames, context_size, 1, context_overlap)
        seams = set()
        for k in range(1, len(wins)):
            seams.add(wins[k][0])
            seams.add(wins[k - 1][-1] + 1)
        return sorted(s for s in seams if 0 < s < num_frames)
    if strategy == "continuation":
        from ..diffusion.continuation import plan_segments

        return [seg[0] + 1 for seg in plan_segments(num_frames, segment_length)[1:] if seg[0] + 1 < num_frames]
    raise EvaluationError(f"unknown long-video strategy {strategy!r}; use short, windows or continuation.")


def drift(values: Sequence[float]) -> dict[str, float]:
    """How a per-frame metric moves along the video: least-squares slope per 100 frames, and the mean of
    the last quarter minus the mean of the first quarter (NaN frames ignored)."""
    v = np.asarray(values, dtype=np.float64)
    idx = np.arange(v.size)
    ok = np.isfinite(v)
    out = {"slope_per_100": float("nan"), "last_minus_first_quarter": float("nan")}
    if ok.sum() >= 2:
        x, y = idx[ok], v[ok]
        out["slope_per_100"] = float(np.polyfit(x, y, 1)[0] * 100)
    q = max(1, v.size // 4)
    first, last = v[:q][np.isfinite(v[:q])], v[-q:][np.isfinite(v[-q:])]
    if first.size and last.size:
        out["last_minus_first_quarter"] = float(last.mean() - first.mean())
    return out


def seam_contrast(values: Sequence[float], seams: Sequence[int]) -> dict[str, float]:
    """A per-transition metric (e.g. the temporal difference error, NaN at frame 0) at the seams vs elsewhere:
    ``at_seams`` mean at the seam frames, ``elsewhere`` mean of the other frames, ``ratio`` = their quotient
    (1 = seams invisible to this metric)."""
    v = np.asarray(values, dtype=np.float64)
    seams = [s for s in seams if 0 < s < v.size]
    if not seams:
        return {"at_seams": float("nan"), "elsewhere": float("nan"), "ratio": float("nan"), "seams": 0}
    m = np.zeros(v.size, bool)
    m[seams] = True
    at = v[m & np.isfinite(v)]
    rest = v[~m & np.isfinite(v)]
    a = float(at.mean()) if at.size else float("nan")
    r = float(rest.mean()) if rest.size else float("nan")
    return {"at_seams": a, "elsewhere": r, "ratio": a / r if r and np.isfinite(r) and r > 0 else float("nan"),
            "seams": len(seams)}
