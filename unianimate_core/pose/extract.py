"""Pose extraction for whole clips: one person per frame, never a crash on an empty frame."""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Literal, Protocol

from .errors import PoseInputError
from .image import to_rgb_uint8
from .keypoints import DEFAULT_THRESHOLD, PoseFrame
from .selection import SELECT_MODES, has_body, select_person

logger = logging.getLogger("unianimate")

MissingPolicy = Literal["empty", "repeat"]


class PoseEstimator(Protocol):
    """What :func:`extract_poses` needs: ``DWPoseEstimator`` and ``MediaPipeEstimator`` fit."""

    def detect(self, image: Any, max_people: int | None = None) -> PoseFrame: ...


def extract_poses(
    estimator: PoseEstimator,
    frames: Iterable[Any],
    *,
    person: Literal["score", "largest", "index"] = "score",
    index: int = 0,
    on_missing: MissingPolicy = "empty",
    keep_all: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
    callback: Callable[[int, int | None], None] | None = None,
) -> list[PoseFrame]:
    """Detect poses in every frame ((H, W, 3) RGB uint8 or float arrays / tensors).

    Returns one :class:`PoseFrame` per input frame holding the selected person (``person`` /
    ``index`` as :func:`select_person`), or every detected person with ``keep_all=True``.
    A frame without a visible body is empty (``on_missing="empty"``) or repeats the nearest
    earlier person (``"repeat"``; frames before the first detection take the first one).
    ``callback(i, total)`` is called after each frame (progress bars; raise to interrupt).
    """
    if person not in SELECT_MODES:
        raise PoseInputError(f"person must be one of {SELECT_MODES}, got {person!r}.")
    if on_missing not in ("empty", "repeat"):
        raise PoseInputError(f"on_missing must be 'empty' or 'repeat', got {on_missing!r}.")
    if person == "index" and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise PoseInputError(f"index must be an integer >= 0 (the detection to keep), got {index!r}.")
    if frames is None or not hasattr(frames, "__iter__"):
        raise PoseInputError(f"frames must be a sequence of images (H, W, 3), got {type(frames).__name__}.")
    total = len(frames) if hasattr(frames, "__len__") else None  # type: ignore[arg-type]
    # Boxes come best-score first, so the pose model only needs to run on the first ones.
    max_people = None if keep_all or person == "largest" else (1 if person == "score" else index + 1)
    out: list[PoseFrame] = []
    found: list[bool] = []
    for i, image in enumerate(frames):
        rgb = to_rgb_uint8(image)
        frame = estimator.detect(rgb, max_people=max_people)
        if keep_all:
            people = [p for p in frame.people if has_body(p, threshold)]
        else:
            chosen = select_person(frame, person, index, threshold)
            people = [chosen] if has_body(chosen, threshold) else []  # type: ignore[list-item]
        out.append(PoseFrame(frame.width, frame.height, people))
        found.append(bool(people))
        if callback is not None:
            callback(i + 1, total)
    missing = found.count(False)
    if missing:
        logger.info("pose extraction: no person in %d of %d frames (%s).", missing, len(out),
                    "left empty" if on_missing == "empty" else "repeating the nearest detection")
    if on_missing == "repeat" and any(found):
        last = next(i for i, ok in enumerate(found) if ok)
        for i, ok in enumerate(found):
            if ok:
                last = i
            else:
                src = out[last]
                out[i] = PoseFrame(out[i].width, out[i].height, [p.copy() for p in src.people])
    return out
