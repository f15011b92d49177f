"""Keypoint containers and conversions between the layouts the pose pipeline meets.

Why one internal layout: DWPose, MediaPipe, ComfyUI's ``POSE_KEYPOINT`` and the official
UniAnimate dict all describe the same whole-body skeleton with different orders, units and
"missing" conventions. Everything inside this package works on :class:`Person` — the DWPose
"Wholebody-134" order that the official UniAnimate code (ali-vilab/UniAnimate @ 643c963) builds
after inserting the neck — and converts at the edges.

Layout of ``Person.keypoints`` (134 rows):

======== ===== ===============================================================
rows     count content
======== ===== ===============================================================
0..17    18    body, OpenPose order: 0 nose, 1 neck, 2 R-shoulder, 3 R-elbow,
               4 R-wrist, 5 L-shoulder, 6 L-elbow, 7 L-wrist, 8 R-hip, 9 R-knee,
               10 R-ankle, 11 L-hip, 12 L-knee, 13 L-ankle, 14 R-eye, 15 L-eye,
               16 R-ear, 17 L-ear
18..23   6     feet: L big toe, L small toe, L heel, R big toe, R small toe, R heel
24..91   68    face (iBUG-68 order)
92..112  21    left hand (the subject's left; OpenPose hand order)
113..133 21    right hand
======== ===== ===============================================================

Coordinates are **normalised** (x / canvas width, y / canvas height, float64), exactly what the
official code aligns and draws, so alignment and rendering reproduce it without a pixel round trip.
Scores are the raw model confidences; a point is *visible* when its score is above the threshold
(0.3, the official value). Coordinates of invisible points are kept finite but carry no meaning.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import PoseInputError, positive_size

NUM_KEYPOINTS = 134
BODY = slice(0, 18)
FEET = slice(18, 24)
FACE = slice(24, 92)
LEFT_HAND = slice(92, 113)
RIGHT_HAND = slice(113, 134)

#: Normalised coordinates beyond this magnitude are treated as missing (garbage, not a pose).
MAX_COORD = 1e4

#: Default visibility threshold (official DWPose post-processing value).
DEFAULT_THRESHOLD = 0.3

# OpenPose body row _OPENPOSE_TARGET[i] takes row _OPENPOSE_FROM_MMPOSE[i] of the COCO-WholeBody
# array once the neck is inserted at 17; rows 0 (nose), 5 (L-shoulder), 11 (L-hip) keep their index.
_OPENPOSE_FROM_MMPOSE = (17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3)
_OPENPOSE_TARGET = (1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17)


def _as_float_array(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Convert ``value`` to a float64 array of ``shape`` or raise a clear :class:`PoseInputError`."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PoseInputError(f"{name} must be numeric with shape {shape}; got {type(value).__name__} ({exc}).") from exc
    if arr.shape != shape:
        raise PoseInputError(f"{name} must have shape {shape}, got {arr.shape}.")
    return arr


@dataclass
class Person:
    """One person's whole-body keypoints (see the module docstring for the 134-row layout).

    Points with non-finite values or coordinates beyond ``MAX_COORD`` are stored as missing
    (coordinates 0, score 0), so no NaN/inf can travel further.

    ``keypoints`` (134, 2) float64 normalised coordinates; ``scores`` (134,) float64 raw
    confidences; ``box`` (4,) normalised ``x1, y1, x2, y2`` of the detection (None when the
    keypoints did not come from a detector); ``det_score`` the detector's score; ``approximate`` is
    True for backends whose keypoints only approximate DWPose's definitions (MediaPipe).
    """

    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray | None = None
    det_score: float | None = None
    approximate: bool = False

    def __post_init__(self) -> None:
        self.keypoints = _as_float_array(self.keypoints, (NUM_KEYPOINTS, 2), "Person.keypoints")
        self.scores = _as_float_array(self.scores, (NUM_KEYPOINTS,), "Person.scores")
        # Non-finite (or absurdly far: more than MAX_COORD canvases away) values would poison
        # alignment and drawing: they mean "missing".
        with np.errstate(invalid="ignore"):
            far = ~(np.abs(self.keypoints) <= MAX_COORD).all(axis=1)
        bad = far | ~np.isfinite(self.scores)
        if bad.any():
            self.keypoints[bad] = 0.0
            self.scores[bad] = 0.0
        if self.box is not None:
            self.box = _as_float_array(self.box, (4,), "Person.box")
            if not np.isfinite(self.box).all():
                self.box = None

    @classmethod
    def empty(cls) -> "Person":
        """A person with every point missing (score 0)."""
        return cls(np.zeros((NUM_KEYPOINTS, 2)), np.zeros(NUM_KEYPOINTS))

    def copy(self) -> "Person":
        return Person(
            self.keypoints.copy(), self.scores.copy(),
            None if self.box is None else self.box.copy(), self.det_score, self.approximate,
        )

    def visible(self, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
        """(134,) bool: score above ``threshold`` (the official ``subset`` rule)."""
        return self.scores > threshold

    # Views on the parts (share memory with ``keypoints`` / ``scores``).
    @property
    def body(self) -> np.ndarray:
        return self.keypoints[BODY]

    @property
    def feet(self) -> np.ndarray:
        return self.keypoints[FEET]

    @property
    def face(self) -> np.ndarray:
        return self.keypoints[FACE]

    @property
    def left_hand(self) -> np.ndarray:
        return self.keypoints[LEFT_HAND]

    @property
    def right_hand(self) -> np.ndarray:
        return self.keypoints[RIGHT_HAND]

    def bbox(self, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray | None:
        """Normalised ``x1, y1, x2, y2``: the detection box, else the extent of visible points."""
        if self.box is not None:
            return self.box
        vis = self.visible(threshold)
        if not vis.any():
            return None
        pts = self.keypoints[vis]
        return np.concatenate([pts.min(axis=0), pts.max(axis=0)])


@dataclass
class PoseFrame:
    """All people found in one image of ``width`` x ``height`` pixels (the canvas)."""

    width: int
    height: int
    people: list[Person] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.width, self.height = positive_size(self.width, self.height, "PoseFrame canvas size")
        people = [] if self.people is None else self.people
        if isinstance(people, Person) or not all(isinstance(p, Person) for p in people):
            raise PoseInputError("PoseFrame.people must be a list of Person objects, got "
                                 f"{[type(p).__name__ for p in people] if isinstance(people, list) else type(people).__name__}.")
        self.people = list(people)

    def copy(self) -> "PoseFrame":
        return PoseFrame(self.width, self.height, [p.copy() for p in self.people])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.width, self.height


# --------------------------------------------------------------------------------------------
# COCO-WholeBody-133 (model output) -> Wholebody-134 (neck inserted, OpenPose body order)
# --------------------------------------------------------------------------------------------

def wholebody_from_coco133(
    keypoints: np.ndarray, scores: np.ndarray, neck_threshold: float = DEFAULT_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Insert the neck and reorder the body to OpenPose order (the official ``Wholebody`` step).

    ``keypoints`` (N, 133, 2) pixels, ``scores`` (N, 133) -> ((N, 134, 2), (N, 134)).
    The neck is the mean of the two shoulders (COCO 5, 6); its score is **binary**: 1 when both
    shoulders score above ``neck_threshold``, else 0 (docs/official_behaviour.md#dwpose-bgr).
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    if kps.ndim != 3 or kps.shape[1:] != (133, 2) or sc.shape != kps.shape[:2]:
        raise PoseInputError(
            f"expected COCO-WholeBody keypoints (N, 133, 2) and scores (N, 133), got {kps.shape} and {sc.shape}."
        )
    neck = (kps[:, 5] + kps[:, 6]) / 2.0
    neck_score = ((sc[:, 5] > neck_threshold) & (sc[:, 6] > neck_threshold)).astype(np.float64)
    kps134 = np.insert(kps, 17, neck, axis=1)
    sc134 = np.insert(sc, 17, neck_score, axis=1)
    out_k, out_s = kps134.copy(), sc134.copy()
    out_k[:, _OPENPOSE_TARGET] = kps134[:, _OPENPOSE_FROM_MMPOSE]
    out_s[:, _OPENPOSE_TARGET] = sc134[:, _OPENPOSE_FROM_MMPOSE]
    return out_k, out_s


def person_from_wholebody(
    keypoints_px: np.ndarray,
    scores: np.ndarray,
    width: int,
    height: int,
    *,
    box_px: Sequence[float] | None = None,
    det_score: float | None = None,
    approximate: bool = False,
) -> Person:
    """Build a :class:`Person` from Wholebody-134 pixel keypoints of a ``width`` x ``height`` image.

    Normalisation divides by ``float(width)`` / ``float(height)`` exactly as the official
    ``DWposeDetector`` does, so downstream results match it bit for bit.
    """
    width, height = positive_size(width, height, "image size")
    kps = _as_float_array(keypoints_px, (NUM_KEYPOINTS, 2), "keypoints_px").copy()
    kps[:, 0] /= float(width)
    kps[:, 1] /= float(height)
    box = None
    if box_px is not None:
        b = _as_float_array(box_px, (4,), "box_px")
        box = b / np.array([width, height, width, height], dtype=np.float64)
    return Person(kps, scores, box=box, det_score=det_score, approximate=approximate)


def person_from_coco133(
    keypoints_px: np.ndarray,
    scores: np.ndarray,
    width: int,
    height: int,
    **kwargs: Any,
) -> Person:
    """COCO-WholeBody-133 pixel keypoints (133, 2) + scores (133,) of one person -> Person
    (neck insertion, OpenPose order, normalisation; ``kwargs`` as :func:`person_from_wholebody`)."""
    k134, s134 = wholebody_from_coco133(np.asarray(keypoints_px)[None], np.asarray(scores)[None])
    return person_from_wholebody(k134[0], s134[0], width, height, **kwargs)


# --------------------------------------------------------------------------------------------
# The official UniAnimate dict: {'bodies': {'candidate': (20,2), 'subset': (1,20)},
#                                'hands': (2,21,2), 'faces': (1,68,2)}, normalised, -1 = missing
# --------------------------------------------------------------------------------------------

def to_dwpose_dict(person: Person | None, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """The official ``DWposeDetector`` output for one person (None -> everything missing).

    Rules (official): coordinates of points scoring **below** ``threshold`` become -1; ``subset[j]``
    is ``j`` when the score is **above** ``threshold`` else -1; body rows 18/19 are the left/right
    toe midpoints (mean of big and small toe) when both toes have coordinates, and are in ``subset``
    only when both toe scores are above the threshold. Heels are not part of this format.
    """
    if person is None:
        person = Person.empty()
    kps = person.keypoints.copy()
    sc = person.scores
    kps[sc < threshold] = -1.0
    body = kps[:18]
    feet = kps[FEET]

    def toe_mid(a: int, b: int) -> np.ndarray:
        if feet[a][0] != -1 and feet[b][0] != -1 and feet[a][1] != -1 and feet[b][1] != -1:
            return (feet[a] + feet[b]) / 2.0
        return np.array([-1.0, -1.0])

    candidate = np.concatenate([body, toe_mid(0, 1)[None], toe_mid(3, 4)[None]], axis=0)
    subset = np.where(sc[:18] > threshold, np.arange(18), -1).astype(np.float64)
    fs = sc[FEET]
    left_ok = fs[0] > threshold and fs[1] > threshold
    right_ok = fs[3] > threshold and fs[4] > threshold
    subset = np.concatenate([subset, [18.0 if left_ok else -1.0, 19.0 if right_ok else -1.0]])
    return {
        "bodies": {"candidate": candidate, "subset": subset[None]},
        "hands": np.stack([kps[LEFT_HAND], kps[RIGHT_HAND]]),
        "faces": kps[FACE][None].copy(),
    }


def _missing_marker(points: np.ndarray) -> np.ndarray:
    """(K,) bool: the official "-1, -1" marker or non-finite coordinates."""
    return ((points[:, 0] == -1) & (points[:, 1] == -1)) | ~np.isfinite(points).all(axis=1)


def from_dwpose_dict(pose: Mapping[str, Any], person: int = 0) -> Person:
    """Read one person of an official-format dict (``candidate``/``subset``/``hands``/``faces``).

    Body/toe visibility comes from ``subset`` (as the official drawing does); hand and face points
    are visible unless marked ``-1, -1``. A toe midpoint becomes both the big and the small toe of
    that foot (their mean is the same point), heels are missing. Scores are therefore binary.
    """
    try:
        bodies = pose["bodies"]
        candidate = np.asarray(bodies["candidate"], dtype=np.float64).reshape(-1, 2)
        subset = np.atleast_2d(np.asarray(bodies["subset"], dtype=np.float64))
        hands = np.asarray(pose.get("hands", np.full((2, 21, 2), -1.0)), dtype=np.float64).reshape(-1, 21, 2)
        faces = np.asarray(pose.get("faces", np.full((1, 68, 2), -1.0)), dtype=np.float64).reshape(-1, 68, 2)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PoseInputError(
            "not a DWPose dict: expected {'bodies': {'candidate': (20,2), 'subset': (1,20)}, "
            f"'hands': (2,21,2), 'faces': (1,68,2)}} ({exc})."
        ) from exc
    if subset.ndim != 2 or subset.shape[1] not in (18, 20) or not 0 <= person < subset.shape[0]:
        raise PoseInputError(f"DWPose dict subset must be (people, 18 or 20) and person an index into it; "
                             f"got subset {subset.shape}, person {person}.")
    n_body = subset.shape[1]
    kps = np.zeros((NUM_KEYPOINTS, 2))
    sc = np.zeros(NUM_KEYPOINTS)
    for j in range(n_body):
        entry = subset[person, j]
        if not np.isfinite(entry) or not 0 <= int(entry) < len(candidate) or not np.isfinite(candidate[int(entry)]).all():
            continue
        idx = int(entry)
        if j < 18:
            kps[j], sc[j] = candidate[idx], 1.0
        else:  # toe midpoint -> big and small toe of that foot
            base = 18 if j == 18 else 21
            kps[base:base + 2], sc[base:base + 2] = candidate[idx], 1.0
    for h, sl in ((2 * person, LEFT_HAND), (2 * person + 1, RIGHT_HAND)):
        if h < len(hands):
            kps[sl] = hands[h]
            sc[sl] = (~_missing_marker(hands[h])).astype(np.float64)
    if person < len(faces):
        kps[FACE] = faces[person]
        sc[FACE] = (~_missing_marker(faces[person])).astype(np.float64)
    return Person(kps, sc)
