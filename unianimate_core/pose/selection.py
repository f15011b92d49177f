"""Choosing one person when a frame contains several (the official code silently keeps person 0)."""
from __future__ import annotations

from typing import Literal

import numpy as np

from .errors import PoseInputError
from .keypoints import DEFAULT_THRESHOLD, Person, PoseFrame

SelectMode = Literal["score", "largest", "index"]
SELECT_MODES: tuple[str, ...] = ("score", "largest", "index")


def _area(person: Person, frame: PoseFrame, threshold: float) -> float:
    box = person.bbox(threshold)
    if box is None:
        return 0.0
    return max(0.0, float(box[2] - box[0]) * frame.width) * max(0.0, float(box[3] - box[1]) * frame.height)


def _score(person: Person, threshold: float) -> float:
    """Detector score when there is one, else the mean body keypoint score (keypoints imported
    from other packs carry no detector score)."""
    if person.det_score is not None:
        return float(person.det_score)
    return float(person.scores[:18].mean())


def select_person(
    frame: PoseFrame | None,
    mode: SelectMode = "score",
    index: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
) -> Person | None:
    """Pick one person of ``frame``; None when the frame is empty (or ``index`` is out of range).

    ``"score"`` (default): the highest detector score — the official choice, since the detector
    lists people best first; ``"largest"``: the largest box in pixels (detection box, else the
    extent of the visible keypoints); ``"index"``: ``frame.people[index]`` in detector order.
    """
    if mode not in SELECT_MODES:
        raise PoseInputError(f"person selection must be one of {SELECT_MODES}, got {mode!r}.")
    if frame is None or not frame.people:
        return None
    people = frame.people
    if mode == "index":
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise PoseInputError(f"person index must be an integer >= 0, got {index!r}.")
        return people[index] if index < len(people) else None
    if mode == "largest":
        return max(people, key=lambda p: _area(p, frame, threshold))  # max keeps the first on ties
    return max(people, key=lambda p: _score(p, threshold))


def has_body(person: Person | None, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """True when at least one body keypoint (rows 0..17) is visible."""
    return person is not None and bool((person.scores[:18] > threshold).any())
