"""Which driving frames become generated frames (official frame selection,
docs/official_behaviour.md#frame-selection).

The official entrances do not simply take every ``frame_interval``-th pose: when the clip is too
short to cover ``max_frames`` at that interval they silently shrink the stride, and a short clip is
zero-padded (black poses) up to ``max_frames``. Both nodes and the command line must select frames
the same way, so the rule lives here, and it reports what it did so callers can tell the user.

Deviation: the black-pose padding is *not* reproduced (the sampler generates exactly one frame per
selected pose; frames generated from black poses are useless). ``official_padding`` says how many
frames the official code would have added.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import PipelineError


@dataclass(frozen=True)
class FrameSelection:
    """Result of :func:`select_frames`.

    Attributes:
        indices: driving-frame indices to use, in order.
        num_frames: frames the model generates (``len(indices)``).
        official_padding: black-pose frames the official code would append (short mode,
        docs/official_behaviour.md#zero-padding); not generated.
        stride: the stride actually used (differs from the requested interval when the clip is short).
        note: a human-readable remark when the selection differs from "every interval-th frame".
    """

    indices: tuple[int, ...]
    num_frames: int
    official_padding: int
    stride: int
    note: str = ""


def select_frames(total: int, max_frames: int | None, frame_interval: int = 1) -> FrameSelection:
    """Pick the driving frames the official inference would pick.

    Args:
        total: number of driving pose frames available.
        max_frames: frames to generate (short mode, official default 32); ``None`` = every
            ``frame_interval``-th frame of the whole clip (the official long mode).
        frame_interval: take every n-th driving frame (official default 2 for the demo data).

    Short mode (official rule): ``cover = interval * (max_frames - 1) + 1``; if the clip is shorter
    than ``cover`` the stride becomes ``max((total - 1) // (max_frames - 1), 1)`` and indices beyond
    the clip are dropped (the official code then zero-pads to ``max_frames``; we do not). Long mode takes
    ``(total - 1) // interval + 1`` frames, ``0, interval, ...``.
    """
    if total < 1:
        raise PipelineError("the driving clip has no frames; give a video, an animated image or a folder of images with at least one frame.")
    if frame_interval < 1:
        raise PipelineError(f"frame_interval must be >= 1 (take every n-th driving frame); got {frame_interval}.")
    if max_frames is None:
        indices = tuple(range(0, total, frame_interval))
        return FrameSelection(indices, len(indices), 0, frame_interval)
    if max_frames < 2:
        raise PipelineError(
            f"frames must be >= 2 (the model generates clips of at least two frames); got {max_frames}."
        )
    cover = frame_interval * (max_frames - 1) + 1
    if total >= cover:
        indices = tuple(range(0, cover, frame_interval))
        return FrameSelection(indices, max_frames, 0, frame_interval)
    stride = max((total - 1) // (max_frames - 1), 1)
    indices = tuple(i for i in range(0, stride * max_frames, stride) if i < total)
    padded = max_frames - len(indices)
    note = (
        f"the driving clip has {total} frames, fewer than the {cover} needed for {max_frames} frames "
        f"at interval {frame_interval}: using every {stride}. frame"
    )
    if padded:
        note += f", {len(indices)} frames in all"
    return FrameSelection(indices, len(indices), padded, stride, note + ".")
