"""Pose images exactly as UniAnimate was trained on them.

The official UniAnimate code (ali-vilab/UniAnimate @ 643c963) draws body + feet + hands (no face)
on a black 512x768 canvas with OpenCV and saves it with ``cv2.imwrite``, which swaps R and B
(docs/official_behaviour.md#pose-drawing and #pose-colours). The model only ever saw those swapped colours,
so the default here is
``colors="unianimate"`` (the swapped, trained look); ``colors="openpose"`` gives the colour lists
as written (the standard OpenPose look other packs produce).

Drawing reproduces the official raster operations bit for bit on the official canvas: each limb
is an ``ellipse2Poly`` polygon (half-width 4) filled with ``fillConvexPoly``, the limb layer is
darkened to 60 % with truncation, joints are radius-4 discs, hand edges are 2-px lines coloured
by HSV hue, hand points are radius-4 discs, face points radius-3 white discs. Hand and face
points are drawn only when their integer pixel position is >= 1 on both axes (official rule).

Other output sizes (``canvas="auto"``): the pose is drawn on a canvas with the *target* aspect
ratio whose short side is 512 px (so 512x768 is the official canvas, and stick widths keep the
proportion to the image the model was trained with), then resized to the target with PIL bilinear
— the resize the official inference applies to its pose images. ``canvas="official"`` always
draws at 512x768 and resizes (the official behaviour for any size, including its distortion of
stick shapes for non-2:3 targets); ``canvas="target"`` draws at the target size directly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np

from ._deps import import_cv2
from .errors import PoseInputError, check_threshold, positive_size
from .keypoints import DEFAULT_THRESHOLD, FACE, FEET, LEFT_HAND, RIGHT_HAND, Person, PoseFrame

OFFICIAL_WIDTH, OFFICIAL_HEIGHT = 512, 768
STICK_WIDTH = 4  # limb ellipse half-width (px on the drawing canvas)
JOINT_RADIUS = 4
HAND_POINT_RADIUS = 4
HAND_LINE_THICKNESS = 2
FACE_POINT_RADIUS = 3
_EPS = 0.01
_MAX_PIXEL = 1e5  # coordinates beyond this are garbage; OpenCV needs int32 anyway
MAX_RENDER_SIZE = 16384  # px per side (controlnet_aux's largest resolution); a 16384^2 image is 0.8 GB

#: Body limbs as 1-based (a, b) pairs of the 20-point body (18 OpenPose points + 2 toe midpoints).
LIMBS_1BASED: tuple[tuple[int, int], ...] = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
    (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (14, 19), (11, 20),
)
#: Official colour list (the code's "RGB" values; index i colours limb i and joint i).
BODY_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85), (170, 255, 255), (255, 255, 0),
)
HAND_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12),
    (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20),
)
HAND_POINT_COLOR = (0, 0, 255)
FACE_COLOR = (255, 255, 255)
_FOOT_LIMBS = (17, 18)  # limb indices that end at a toe midpoint
_FOOT_JOINTS = (18, 19)
# The official darkening of the limb layer, (v * 0.6) truncated to uint8, as a lookup table.
_DARKEN_LUT = (np.arange(256, dtype=np.float64) * 0.6).astype(np.uint8)

ColorMode = Literal["unianimate", "openpose"]
CanvasMode = Literal["auto", "official", "target"]


def _hsv_to_rgb(h: float, s: float = 1.0, v: float = 1.0) -> tuple[float, float, float]:
    """HSV -> RGB in [0, 1] with the same float operations as matplotlib (hand edge colours must
    round identically in OpenCV)."""
    i = int(h * 6.0)
    f = (h * 6.0) - i
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    return ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i % 6]


HAND_EDGE_COLORS: tuple[tuple[float, float, float], ...] = tuple(
    tuple(c * 255 for c in _hsv_to_rgb(i / float(len(HAND_EDGES)))) for i in range(len(HAND_EDGES))  # type: ignore[misc]
)


@dataclass
class Drawable:
    """One person in the official drawing format: normalised points + visibility flags.

    ``body`` (20, 2) / ``body_visible`` (20,) (the ``subset`` test); ``hands`` list of (21, 2) with
    (21,) flags; ``face`` (68, 2) with (68,) flags. Hand/face points additionally need integer
    pixel coordinates >= 1 to be drawn (official rule), applied at draw time.
    """

    body: np.ndarray
    body_visible: np.ndarray
    hands: list[tuple[np.ndarray, np.ndarray]]
    face: tuple[np.ndarray, np.ndarray] | None


def drawable_from_person(person: Person, threshold: float = DEFAULT_THRESHOLD) -> Drawable:
    """Person -> official drawing data: toe midpoints = mean(big toe, small toe), visible when both
    toes are visible; every other point is visible when its score is above ``threshold``."""
    vis = person.scores > threshold
    feet, fvis = person.keypoints[FEET], vis[FEET]
    body = np.concatenate([person.keypoints[:18], ((feet[0] + feet[1]) / 2.0)[None], ((feet[3] + feet[4]) / 2.0)[None]])
    body_visible = np.concatenate([vis[:18], [fvis[0] and fvis[1], fvis[3] and fvis[4]]])
    hands = [(person.keypoints[LEFT_HAND], vis[LEFT_HAND]), (person.keypoints[RIGHT_HAND], vis[RIGHT_HAND])]
    return Drawable(body, body_visible.astype(bool), hands, (person.keypoints[FACE], vis[FACE]))


def drawables_from_dwpose_dict(pose: Mapping[str, Any]) -> list[Drawable]:
    """The official dict (``bodies.candidate``/``subset``, ``hands``, ``faces``) -> drawables.

    Used as given (no thresholds): a body point is visible when its ``subset`` entry is not -1,
    hand/face points when they are not the ``-1, -1`` marker (which the pixel rule hides anyway).
    """
    try:
        candidate = np.asarray(pose["bodies"]["candidate"], dtype=np.float64).reshape(-1, 2)
        subset = np.atleast_2d(np.asarray(pose["bodies"]["subset"], dtype=np.float64))
        hands = np.asarray(pose.get("hands", np.zeros((0, 21, 2))), dtype=np.float64).reshape(-1, 21, 2)
        faces = np.asarray(pose.get("faces", np.zeros((0, 68, 2))), dtype=np.float64).reshape(-1, 68, 2)
    except (KeyError, TypeError, ValueError) as exc:
        raise PoseInputError(f"not a DWPose dict (bodies.candidate, bodies.subset, hands, faces): {exc}") from exc
    out = []
    for n in range(subset.shape[0]):
        row = subset[n]
        ok = np.isfinite(row) & (row >= 0) & (row < len(candidate))
        idx = np.where(ok, row, 0).astype(np.int64)
        body = np.full((subset.shape[1], 2), -1.0)
        body[ok] = candidate[idx[ok]]
        hand_list = [(h, np.ones(21, bool)) for h in hands[2 * n:2 * n + 2]]
        face = (faces[n], np.ones(68, bool)) if n < len(faces) else None
        out.append(Drawable(body, ok, hand_list, face))
    # Official drawing loops over every hand/face of the dict even without a body row.
    extra_hands = [(h, np.ones(21, bool)) for h in hands[2 * subset.shape[0]:]]
    if extra_hands and out:
        out[-1].hands.extend(extra_hands)
    return out


def _finite_px(*values: float) -> bool:
    return all(math.isfinite(v) and abs(v) < _MAX_PIXEL for v in values)


def _draw_body(canvas: np.ndarray, people: Sequence[Drawable], draw_body: bool, draw_feet: bool) -> None:
    cv2 = import_cv2()
    height, width = canvas.shape[:2]
    W, H = float(width), float(height)
    for i, (a, b) in enumerate(LIMBS_1BASED):
        is_foot = i in _FOOT_LIMBS
        if (is_foot and not draw_feet) or (not is_foot and not draw_body):
            continue
        for person in people:
            if not (person.body_visible[a - 1] and person.body_visible[b - 1]):
                continue
            xs = person.body[[a - 1, b - 1], 0] * W
            ys = person.body[[a - 1, b - 1], 1] * H
            if not _finite_px(*xs, *ys):
                continue
            mx, my = np.mean(xs), np.mean(ys)
            length = ((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2) ** 0.5
            angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
            polygon = cv2.ellipse2Poly((int(mx), int(my)), (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, BODY_COLORS[i])
    canvas[:] = cv2.LUT(canvas, _DARKEN_LUT)  # == (canvas * 0.6).astype(uint8), per value
    for i in range(len(BODY_COLORS)):
        is_foot = i in _FOOT_JOINTS
        if (is_foot and not draw_feet) or (not is_foot and not draw_body):
            continue
        for person in people:
            if i >= len(person.body_visible) or not person.body_visible[i]:
                continue
            x, y = person.body[i, 0] * W, person.body[i, 1] * H
            if not _finite_px(x, y):
                continue
            cv2.circle(canvas, (int(x), int(y)), JOINT_RADIUS, BODY_COLORS[i], thickness=-1)


def _pixel(points: np.ndarray, visible: np.ndarray, width: int, height: int) -> list[tuple[int, int] | None]:
    """Official hand/face rule: integer pixel position, drawn only when both coordinates >= 1."""
    out: list[tuple[int, int] | None] = []
    for (x, y), v in zip(points, visible):
        px, py = x * width, y * height
        if not v or not _finite_px(px, py):
            out.append(None)
            continue
        ix, iy = int(px), int(py)
        out.append((ix, iy) if ix > _EPS and iy > _EPS else None)
    return out


def _draw_hands(canvas: np.ndarray, people: Sequence[Drawable]) -> None:
    cv2 = import_cv2()
    height, width = canvas.shape[:2]
    for person in people:
        for points, visible in person.hands:
            px = _pixel(points, visible, width, height)
            for e, (a, b) in enumerate(HAND_EDGES):
                if px[a] is not None and px[b] is not None:
                    cv2.line(canvas, px[a], px[b], HAND_EDGE_COLORS[e], thickness=HAND_LINE_THICKNESS)
            for p in px:
                if p is not None:
                    cv2.circle(canvas, p, HAND_POINT_RADIUS, HAND_POINT_COLOR, thickness=-1)


def _draw_faces(canvas: np.ndarray, people: Sequence[Drawable]) -> None:
    cv2 = import_cv2()
    height, width = canvas.shape[:2]
    for person in people:
        if person.face is None:
            continue
        for p in _pixel(person.face[0], person.face[1], width, height):
            if p is not None:
                cv2.circle(canvas, p, FACE_POINT_RADIUS, FACE_COLOR, thickness=-1)


def draw_drawables(
    people: Sequence[Drawable],
    width: int,
    height: int,
    *,
    draw_body: bool = True,
    draw_feet: bool = True,
    draw_hands: bool = True,
    draw_face: bool = False,
) -> np.ndarray:
    """Draw on a black (height, width, 3) uint8 canvas in the code's colour-list order (the
    official canvas, before ``cv2.imwrite`` swaps it)."""
    canvas = np.zeros((int(height), int(width), 3), dtype=np.uint8)
    _draw_body(canvas, people, draw_body, draw_feet)
    if draw_hands:
        _draw_hands(canvas, people)
    if draw_face:
        _draw_faces(canvas, people)
    return canvas


def draw_dwpose_dict(pose: Mapping[str, Any], height: int = OFFICIAL_HEIGHT, width: int = OFFICIAL_WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """The official ``draw_pose(pose, H, W)`` -> (canvas without face, canvas with face), both
    (H, W, 3) uint8 in the colour-list order (``colors="openpose"``)."""
    people = drawables_from_dwpose_dict(pose)
    without = draw_drawables(people, width, height)
    with_face = without.copy()
    _draw_faces(with_face, people)
    return without, with_face


def canvas_size(width: int, height: int, mode: CanvasMode = "auto") -> tuple[int, int]:
    """The (width, height) the pose is drawn at before resizing to ``width`` x ``height``."""
    width, height = positive_size(width, height, "width and height", MAX_RENDER_SIZE)
    if mode == "target":
        return width, height
    if mode == "official":
        return OFFICIAL_WIDTH, OFFICIAL_HEIGHT
    if mode != "auto":
        raise PoseInputError(f"canvas must be 'auto', 'official' or 'target', got {mode!r}.")
    short = min(OFFICIAL_WIDTH, OFFICIAL_HEIGHT)
    if width <= height:
        cw, ch = short, max(1, round(short * height / width))
    else:
        cw, ch = max(1, round(short * width / height)), short
    longest = max(cw, ch)
    if longest > 4096:  # extreme aspect ratios: keep the canvas bounded
        cw, ch = max(1, round(cw * 4096 / longest)), max(1, round(ch * 4096 / longest))
    return cw, ch


def _people_of(pose: Any, threshold: float) -> list[Drawable]:
    if pose is None:
        return []
    if isinstance(pose, PoseFrame):
        return [drawable_from_person(p, threshold) for p in pose.people]
    if isinstance(pose, Person):
        return [drawable_from_person(pose, threshold)]
    if isinstance(pose, Mapping):
        return drawables_from_dwpose_dict(pose)
    if isinstance(pose, (list, tuple)) and all(isinstance(p, Person) for p in pose):
        return [drawable_from_person(p, threshold) for p in pose]
    raise PoseInputError(
        f"render_pose takes a PoseFrame, a Person, a list of Persons or a DWPose dict, got {type(pose).__name__}."
    )


def render_pose(
    pose: PoseFrame | Person | Sequence[Person] | Mapping[str, Any] | None,
    width: int = OFFICIAL_WIDTH,
    height: int = OFFICIAL_HEIGHT,
    *,
    colors: ColorMode = "unianimate",
    canvas: CanvasMode = "auto",
    draw_body: bool = True,
    draw_feet: bool = True,
    draw_hands: bool = True,
    draw_face: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
) -> np.ndarray:
    """Render one pose image, (height, width, 3) uint8 RGB.

    ``pose``: every person of a :class:`PoseFrame`, one :class:`Person`, a list of them, an
    official-format dict, or None (black image). Coordinates are normalised, so the skeleton
    fills the output the way it filled its source canvas. ``colors="unianimate"`` is the look
    the model was trained on (R/B swapped vs. the colour lists), ``"openpose"`` the standard one.
    Defaults (body + feet + hands, no face) are the official pose images.
    """
    if colors not in ("unianimate", "openpose"):
        raise PoseInputError(f"colors must be 'unianimate' (trained look) or 'openpose', got {colors!r}.")
    width, height = positive_size(width, height, "width and height", MAX_RENDER_SIZE)
    people = _people_of(pose, check_threshold(threshold))
    cw, ch = canvas_size(width, height, canvas)
    image = draw_drawables(people, cw, ch, draw_body=draw_body, draw_feet=draw_feet, draw_hands=draw_hands, draw_face=draw_face)
    if (cw, ch) != (width, height):
        from PIL import Image

        image = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    if colors == "unianimate":
        image = import_cv2().cvtColor(np.ascontiguousarray(image), import_cv2().COLOR_RGB2BGR)  # R <-> B
    return np.ascontiguousarray(image)


def render_poses(frames: Iterable[Any], width: int = OFFICIAL_WIDTH, height: int = OFFICIAL_HEIGHT, **kwargs: Any) -> np.ndarray:
    """Render a sequence (any iterable of poses): (N, height, width, 3) uint8 (see :func:`render_pose`)."""
    width, height = positive_size(width, height, "width and height", MAX_RENDER_SIZE)
    if frames is None or isinstance(frames, (PoseFrame, Person, Mapping)):
        raise PoseInputError(f"render_poses takes a sequence of poses (one per frame), got {type(frames).__name__}; "
                             "use render_pose for a single one.")
    poses = list(frames)
    out = np.empty((len(poses), height, width, 3), dtype=np.uint8)  # filled in place: no list + stack copy
    for i, pose in enumerate(poses):
        out[i] = render_pose(pose, width, height, **kwargs)
    return out
