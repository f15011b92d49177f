"""Moving poses to another canvas the same way an image is fitted to a new size.

Poses are stored in normalised coordinates of their source image. When the reference image is
brought to the generation size by stretching (the official behaviour: a plain resize), nothing
has to change. When it is centre-cropped or letterboxed instead (keeping its aspect ratio), the
pose must follow the same geometry or it will not sit on the person; :func:`fit_frame` does that
with exact (sub-pixel, unrounded) geometry.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from .errors import PoseInputError, positive_size
from .keypoints import Person, PoseFrame

FitMode = Literal["stretch", "crop", "pad"]


def fit_geometry(src_wh: tuple[int, int], dst_wh: tuple[int, int], mode: FitMode) -> tuple[float, float, float, float]:
    """Scale and offset of an image fit: destination pixel = source pixel * (sx, sy) - (ox, oy).

    ``stretch``: independent x/y scales, no offset; ``crop``: uniform scale that covers the
    destination, centred crop; ``pad``: uniform scale that fits inside, centred borders.
    """
    try:
        (sw, sh), (dw, dh) = src_wh, dst_wh
    except (TypeError, ValueError) as exc:
        raise PoseInputError(f"canvas sizes must be (width, height) pairs, got {src_wh!r} -> {dst_wh!r}.") from exc
    sw, sh = positive_size(sw, sh, "source canvas size")
    dw, dh = positive_size(dw, dh, "target canvas size")
    if mode == "stretch":
        return dw / sw, dh / sh, 0.0, 0.0
    if mode not in ("crop", "pad"):
        raise PoseInputError(f"fit mode must be 'stretch', 'crop' or 'pad', got {mode!r}.")
    s = max(dw / sw, dh / sh) if mode == "crop" else min(dw / sw, dh / sh)
    return s, s, (sw * s - dw) / 2.0, (sh * s - dh) / 2.0


def fit_frame(frame: PoseFrame, width: int, height: int, mode: FitMode = "stretch") -> PoseFrame:
    """``frame`` re-expressed on a ``width`` x ``height`` canvas fitted with ``mode``.

    Points that leave the canvas keep their (outside) coordinates: renderers clip them, and
    alignment or smoothing still see the whole body.
    """
    if not isinstance(frame, PoseFrame):
        raise PoseInputError(f"fit_frame takes a PoseFrame, got {type(frame).__name__}.")
    width, height = positive_size(width, height, "target canvas size")
    sx, sy, ox, oy = fit_geometry(frame.size, (width, height), mode)
    scale = np.array([frame.width * sx / width, frame.height * sy / height])
    shift = np.array([ox / width, oy / height])
    people = []
    for p in frame.people:
        box = None
        if p.box is not None:
            box = np.concatenate([p.box[:2] * scale - shift, p.box[2:] * scale - shift])
        people.append(Person(p.keypoints * scale - shift, p.scores.copy(), box, p.det_score, p.approximate))
    return PoseFrame(width, height, people)
