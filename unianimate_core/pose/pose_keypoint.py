"""ComfyUI ``POSE_KEYPOINT`` interop (the format of controlnet_aux's DWPose/OpenPose nodes).

Writing follows what other readers expect exactly: a list with one dict per frame, ``people``
with **flat** ``[x, y, c, ...]`` lists in **pixels** of ``canvas_width`` x ``canvas_height``,
**binary** confidences (1.0 present; missing points are ``0, 0, 0`` — readers drop any point with
``c < 1``), body in OpenPose-18 order, ``face_keypoints_2d`` = 68 face points + right eye + left
eye (70), ``None`` for a part with no visible point. What UniAnimate needs beyond that travels in
extra keys other readers ignore: ``foot_keypoints_2d`` (6 points: L big toe, L small toe, L heel,
R big toe, R small toe, R heel), raw scores (``pose_scores``, ``foot_scores``, ``face_scores``,
``hand_left_scores``, ``hand_right_scores``), ``det_score``, ``bbox_2d``, ``approximate``, and a
frame-level ``"unianimate": {"version": 1}`` marker.

Reading accepts that format from any pack: pixel or normalised coordinates, OpenPose BODY_25
bodies (their feet are used), 68- or 70-point faces, missing or ``None`` parts, empty frames, mixed
canvas sizes and raw (non-binary) confidences (visible above the threshold).

Coordinate space. Frames with our marker are pixels. For the others the space is decided once per
sequence, with a margin: normalised when no present coordinate of the sequence exceeds
``NORMALIZED_LIMIT`` = 2 in absolute value (the ultimate-openpose-editor's "pixels if max > 2"),
else pixels. Pose estimators put points off the canvas routinely (the editor wrote x = 1.026 for a
wrist just outside the frame), so the controlnet_aux per-frame rule "normalised only if every
coordinate is within [-1, 1]" read such a frame as pixels and collapsed its skeleton to a dot near
the origin. A skeleton is never collapsed silently: in a sequence in pixels, a frame with at least
two present points that all lie within the limit (a whole skeleton inside a 2 x 2 pixel corner) can
only be normalised - it is read as such and a warning names it.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import PoseInputError, check_threshold, positive_size
from .keypoints import DEFAULT_THRESHOLD, FACE, FEET, LEFT_HAND, NUM_KEYPOINTS, RIGHT_HAND, Person, PoseFrame

log = logging.getLogger("unianimate")

MARKER_KEY = "unianimate"
#: Largest absolute coordinate a normalised frame may have (points may lie off the canvas).
NORMALIZED_LIMIT = 2.0
COORDINATE_SPACES: tuple[str, ...] = ("auto", "pixels", "normalized")
MARKER = {"version": 1}

# BODY_25 index of each OpenPose-18 row (BODY_25 inserts MidHip at 8) and of our 6 foot rows.
_BODY25_TO_18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
_BODY25_FEET = (19, 20, 21, 22, 23, 24)
_PARTS: tuple[tuple[str, str, slice], ...] = (
    ("hand_left_keypoints_2d", "hand_left_scores", LEFT_HAND),
    ("hand_right_keypoints_2d", "hand_right_scores", RIGHT_HAND),
)


def _triplets(points_px: np.ndarray, visible: np.ndarray) -> list[float]:
    out: list[float] = []
    for (x, y), v in zip(points_px, visible):
        out += [float(x), float(y), 1.0] if v else [0.0, 0.0, 0.0]
    return out


def person_to_dict(person: Person, width: int, height: int, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """One ``people`` entry (see the module docstring)."""
    px = person.keypoints * np.array([width, height], dtype=np.float64)
    vis = person.visible(threshold)
    entry: dict[str, Any] = {"pose_keypoints_2d": _triplets(px[:18], vis[:18])}
    face_vis = vis[FACE]
    if face_vis.any():
        eyes = [14, 15]  # right eye, left eye appended like controlnet_aux
        entry["face_keypoints_2d"] = _triplets(np.concatenate([px[FACE], px[eyes]]), np.concatenate([face_vis, vis[eyes]]))
    else:
        entry["face_keypoints_2d"] = None
    for key, _, rows in _PARTS:
        entry[key] = _triplets(px[rows], vis[rows]) if vis[rows].any() else None
    entry["foot_keypoints_2d"] = _triplets(px[FEET], vis[FEET])
    entry["pose_scores"] = [float(s) for s in person.scores[:18]]
    entry["foot_scores"] = [float(s) for s in person.scores[FEET]]
    entry["face_scores"] = [float(s) for s in person.scores[FACE]]
    for _, score_key, rows in _PARTS:
        entry[score_key] = [float(s) for s in person.scores[rows]]
    entry["det_score"] = None if person.det_score is None else float(person.det_score)
    entry["bbox_2d"] = None if person.box is None else [float(v) for v in person.box * np.array([width, height, width, height])]
    entry["approximate"] = bool(person.approximate)
    return entry


def to_pose_keypoint(frames: PoseFrame | Sequence[PoseFrame], threshold: float = DEFAULT_THRESHOLD) -> list[dict[str, Any]]:
    """PoseFrame(s) -> ``POSE_KEYPOINT`` (a JSON-serialisable list, one dict per frame)."""
    check_threshold(threshold)
    if isinstance(frames, PoseFrame):
        frames = [frames]
    out = []
    for frame in frames:
        if not isinstance(frame, PoseFrame):
            raise PoseInputError(f"to_pose_keypoint takes PoseFrame objects, got {type(frame).__name__}.")
        out.append({
            "people": [person_to_dict(p, frame.width, frame.height, threshold) for p in frame.people],
            "canvas_height": frame.height,
            "canvas_width": frame.width,
            MARKER_KEY: dict(MARKER),
        })
    return out


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------

def _parse_triplets(value: Any, allowed: Iterable[int], what: str) -> np.ndarray | None:
    """Flat [x, y, c, ...] (or nested [[x, y, c], ...]) -> (K, 3) float64, None when absent."""
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise PoseInputError(f"POSE_KEYPOINT {what} must be a list of numbers, got {str(value)[:80]} ({exc}).") from exc
    if arr.size == 0:
        return None
    allowed = tuple(allowed)
    if arr.size % 3 or arr.size // 3 not in allowed:
        raise PoseInputError(
            f"POSE_KEYPOINT {what} has {arr.size} values; expected {' or '.join(str(3 * k) for k in allowed)} "
            "(x, y, confidence per point)."
        )
    return arr.reshape(-1, 3)


def _visible(trip: np.ndarray) -> np.ndarray:
    return np.isfinite(trip).all(axis=1) & (trip[:, 2] > 0)


def _raw_scores(entry: Mapping[str, Any], key: str | None, trip: np.ndarray, n: int, threshold: float) -> np.ndarray:
    """Confidence per point: our raw score (``entry[key]``) when it agrees with the standard key, else ``c``."""
    conf = np.where(_visible(trip), trip[:, 2], 0.0)
    raw = None if key is None else entry.get(key)
    if isinstance(raw, (list, tuple)) and len(raw) == n:
        raw_arr = np.asarray(raw, dtype=np.float64)
        agree = np.isfinite(raw_arr) & ((raw_arr > threshold) == (conf > threshold))
        conf = np.where(agree, raw_arr, conf)
    return conf


def _person_from_entry(entry: Mapping[str, Any], scale: np.ndarray, threshold: float) -> Person:
    if not isinstance(entry, Mapping):
        raise PoseInputError(f"POSE_KEYPOINT people entries must be dicts, got {type(entry).__name__}.")
    kps = np.zeros((NUM_KEYPOINTS, 2))
    sc = np.zeros(NUM_KEYPOINTS)

    def put(rows: Any, trip: np.ndarray, scores: np.ndarray) -> None:
        kps[rows] = np.where(np.isfinite(trip[:, :2]), trip[:, :2], 0.0) / scale
        sc[rows] = scores

    body = _parse_triplets(entry.get("pose_keypoints_2d"), (18, 25), "pose_keypoints_2d")
    if body is not None:
        if len(body) == 25:  # another pack's BODY_25: no raw scores of ours to restore
            put(list(range(18)), body[list(_BODY25_TO_18)], _raw_scores(entry, None, body[list(_BODY25_TO_18)], 18, threshold))
            feet25 = body[list(_BODY25_FEET)]
            put(FEET, feet25, _raw_scores(entry, None, feet25, 6, threshold))
        else:
            put(slice(0, 18), body, _raw_scores(entry, "pose_scores", body, 18, threshold))
    feet = _parse_triplets(entry.get("foot_keypoints_2d"), (6,), "foot_keypoints_2d")
    if feet is not None:
        put(FEET, feet, _raw_scores(entry, "foot_scores", feet, 6, threshold))
    face = _parse_triplets(entry.get("face_keypoints_2d"), (68, 70), "face_keypoints_2d")
    if face is not None:
        put(FACE, face[:68], _raw_scores(entry, "face_scores", face[:68], 68, threshold))
    for key, score_key, rows in _PARTS:
        hand = _parse_triplets(entry.get(key), (21,), key)
        if hand is not None:
            put(rows, hand, _raw_scores(entry, score_key, hand, 21, threshold))
    box = entry.get("bbox_2d")
    box_arr = None
    if isinstance(box, (list, tuple)) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box):
        box_arr = np.asarray(box, dtype=np.float64) / np.concatenate([scale, scale])  # optional extra: else ignored
    det = entry.get("det_score")
    det_score = float(det) if isinstance(det, (int, float)) and np.isfinite(det) else None
    return Person(kps, sc, box=box_arr, det_score=det_score, approximate=entry.get("approximate") is True)


def _present_coordinates(people: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Every x and y of every present point of a frame's people (flat float64; malformed parts skipped:
    reading them later reports the problem)."""
    values = [np.zeros(0)]
    for entry in people:
        if not isinstance(entry, Mapping):
            continue
        for key in ("pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d",
                    "foot_keypoints_2d"):
            try:
                arr = np.asarray(entry.get(key) or [], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                continue
            if arr.size % 3 == 0 and arr.size:
                trip = arr.reshape(-1, 3)
                values.append(trip[_visible(trip), :2].reshape(-1))
    return np.concatenate(values)


def _frame_space(frame: Any) -> tuple[str | None, int]:
    """(space this frame alone implies, number of present points): "pixels" for our marker or a coordinate
    beyond the limit, "normalized" when every coordinate is within it, None without points."""
    if not isinstance(frame, Mapping):
        return None, 0
    if isinstance(frame.get(MARKER_KEY), Mapping):
        return "pixels", 0
    people = frame.get("people") or []
    coords = _present_coordinates(people if isinstance(people, (list, tuple)) else [])
    if coords.size == 0:
        return None, 0
    return ("normalized" if float(np.abs(coords).max()) <= NORMALIZED_LIMIT else "pixels"), coords.size // 2


def coordinate_spaces(frames: Sequence[Any]) -> list[str]:
    """The coordinate space of every frame of a ``POSE_KEYPOINT`` sequence (see the module docstring)."""
    implied = [_frame_space(f) for f in frames]
    unmarked = [space for f, (space, _) in zip(frames, implied)
                if space is not None and not (isinstance(f, Mapping) and isinstance(f.get(MARKER_KEY), Mapping))]
    sequence = "pixels" if "pixels" in unmarked else "normalized"
    spaces, odd = [], []
    for i, (frame, (space, points)) in enumerate(zip(frames, implied)):
        if isinstance(frame, Mapping) and isinstance(frame.get(MARKER_KEY), Mapping):
            spaces.append("pixels")
        elif sequence == "pixels" and space == "normalized" and points >= 2:
            spaces.append("normalized")  # read as pixels it would be a skeleton inside 2 x 2 pixels
            odd.append(i)
        else:
            spaces.append(sequence)
    if odd:
        log.warning("UniAnimate: POSE_KEYPOINT frames %s have every coordinate within +-%g while the rest of the "
                    "sequence is in pixels; they are read as normalised coordinates (as pixels their skeletons would "
                    "collapse into the top-left corner).", ", ".join(map(str, odd[:10])) + ("..." if len(odd) > 10 else ""),
                    NORMALIZED_LIMIT)
    return spaces


def frame_from_dict(frame: Mapping[str, Any], threshold: float = DEFAULT_THRESHOLD,
                    canvas: tuple[int, int] | None = None, space: str = "auto") -> PoseFrame:
    """One ``POSE_KEYPOINT`` frame dict -> :class:`PoseFrame` (see the module docstring).

    ``space``: "pixels", "normalized" or "auto" (decided from this frame alone; a sequence is better
    read with :func:`from_pose_keypoint`, which decides once for all its frames).
    """
    if space not in COORDINATE_SPACES:
        raise PoseInputError(f"space must be one of {COORDINATE_SPACES}, got {space!r}.")
    if not isinstance(frame, Mapping):
        raise PoseInputError(f"a POSE_KEYPOINT frame must be a dict, got {type(frame).__name__}.")
    if "people" not in frame and "animals" in frame:
        raise PoseInputError("animal poses (POSE_KEYPOINT with 'animals') are not supported: UniAnimate needs human poses.")
    people = frame.get("people") or []
    if not isinstance(people, (list, tuple)):
        raise PoseInputError(f"POSE_KEYPOINT 'people' must be a list, got {type(people).__name__}.")
    width, height = frame.get("canvas_width"), frame.get("canvas_height")
    if width is None or height is None:
        if canvas is None:
            raise PoseInputError(
                "this POSE_KEYPOINT frame has no canvas_width/canvas_height; pass canvas=(width, height) "
                "with the size of the image the keypoints belong to."
            )
        if not isinstance(canvas, (tuple, list)) or len(canvas) != 2:
            raise PoseInputError(f"canvas must be a (width, height) pair, got {canvas!r}.")
        width, height = canvas
    width, height = positive_size(width, height, "POSE_KEYPOINT canvas size")
    if space == "auto":
        space = coordinate_spaces([frame])[0]
    normalized = space == "normalized"
    scale = np.array([1.0, 1.0]) if normalized else np.array([width, height], dtype=np.float64)
    return PoseFrame(width, height, [_person_from_entry(p, scale, threshold) for p in people])


def from_pose_keypoint(
    data: Any, threshold: float = DEFAULT_THRESHOLD, canvas: tuple[int, int] | None = None
) -> list[PoseFrame]:
    """``POSE_KEYPOINT`` (a list of frame dicts, one dict, or its JSON text) -> list of PoseFrame.

    ``canvas`` = (width, height) is used for frames that carry no canvas size.
    """
    check_threshold(threshold)
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8/16/32
            raise PoseInputError(f"POSE_KEYPOINT text is not valid JSON: {exc}") from exc
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, (list, tuple)):
        raise PoseInputError(f"POSE_KEYPOINT must be a list of frame dicts, got {type(data).__name__}.")
    return [frame_from_dict(f, threshold, canvas, space) for f, space in zip(data, coordinate_spaces(data))]
