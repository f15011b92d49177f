"""A deterministic pose detector for world frames - ground truth or *generated*.

Every character wears the same identity sleeves (:data:`~.character.LIMB_HUES`): a pixel whose
chroma (max - min of RGB in [0, 1]) is at least :data:`CHROMA_MIN` belongs to a limb, and its hue
says which one (nearest of the eight hues). Nothing else in the world is that colourful
(chroma <= 0.25 by construction), so this works on any character and background, and on images
that are blurred or colour-shifted by a codec or a generator as long as the limbs keep their hue.

From the eight limb masks the detector estimates the twelve limb joints: each mask's principal
axis and extent give the two capsule end points (extent minus the half-width), and the segments of
one arm/leg are paired by their nearest ends (elbow/knee = mean of the two touching ends; shoulder/
hip and wrist/ankle = the far ends). When one segment of a pair is missing, the end nearer the body
centre (the mean of the limb centroids) is taken as the proximal one. The neck is the mid-point of
the shoulders (DWPose's definition). Face, hands and feet are not detected (no identity colours).

Output: :class:`Detection` with the masks, the keypoints in the Wholebody-134 layout (normalised,
scores 1 where detected) and a :class:`~unianimate_core.pose.keypoints.PoseFrame` for the metrics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..pose.keypoints import NUM_KEYPOINTS, Person, PoseFrame
from .character import LIMB_HUES, LIMBS
from .errors import ToyWorldError
from .render import hsv_chroma

#: Minimum chroma of a limb pixel (limbs have >= 0.5 before the sleeve pattern's x0.72, everything else <= 0.25).
CHROMA_MIN = 0.3
#: Smallest mask (as a fraction of the frame area) that counts as a detected limb.
MIN_AREA_FRACTION = 0.0008
#: Body rows (OpenPose-18) produced by the detector: (row, limb index, which end) per arm/leg.
DETECTED_ROWS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
# (upper limb index, lower limb index, proximal row, middle row, distal row)
_CHAINS = ((0, 1, 2, 3, 4), (2, 3, 5, 6, 7), (4, 5, 8, 9, 10), (6, 7, 11, 12, 13))
_HUES = np.array(LIMB_HUES)


@dataclass
class Detection:
    """Detector output for one frame: ``masks`` (8, H, W) bool, ``keypoints`` (134, 2) normalised,
    ``scores`` (134,) 1/0, and the frame size."""

    masks: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    width: int
    height: int

    def pose_frame(self) -> PoseFrame:
        return PoseFrame(self.width, self.height, [Person(self.keypoints, self.scores)])


def _as_rgb01(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ToyWorldError(f"the detector takes one RGB image (H, W, 3); got shape {arr.shape}.")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise ToyWorldError(f"images must be uint8 or float in [0, 1]; got {arr.dtype}.")
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


def limb_classes(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` int8: limb index 0..7 of each pixel, -1 for non-limb pixels."""
    rgb = _as_rgb01(image)
    hue, chroma = hsv_chroma(rgb)
    d = np.abs((hue[..., None] - _HUES + 180.0) % 360.0 - 180.0)
    cls = d.argmin(-1).astype(np.int8)
    cls[chroma < CHROMA_MIN] = -1
    return cls


#: Chroma range mapped to limb coverage 0..1 by :func:`limb_weights` (other parts <= 0.25 chroma,
#: sleeves 0.36-1.0; chosen on validation block frames, where it matched the exact block coverage best).
COVERAGE_CHROMA = (0.2, 0.6)


def limb_weights(image: np.ndarray) -> np.ndarray:
    """``(8, H, W)`` float32 soft limb coverage: the nearest hue names the limb, the chroma between
    0.2 (none) and 0.6 (full) says how much of the pixel (or 8x8 block) it covers. Block-averaged and
    blurred frames keep a limb's hue and lose chroma in proportion to its coverage, so these maps
    compare limb placement at a finer scale than hard masks."""
    rgb = _as_rgb01(image)
    hue, chroma = hsv_chroma(rgb)
    d = np.abs((hue[..., None] - _HUES + 180.0) % 360.0 - 180.0)
    cls = d.argmin(-1)
    lo, hi = COVERAGE_CHROMA
    cover = np.clip((chroma - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    return (cls[None] == np.arange(len(LIMBS))[:, None, None]) * cover[None]


def limb_masks(image: np.ndarray) -> np.ndarray:
    """``(8, H, W)`` bool masks of the eight identity limbs (order :data:`~.character.LIMBS`)."""
    cls = limb_classes(image)
    return cls[None] == np.arange(len(LIMBS), dtype=np.int8)[:, None, None]


def _segment(mask: np.ndarray, min_area: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float] | None:
    """Centroid, the two end points (capsule centres), the axis and the half-width of one limb mask
    (None when the mask is too small)."""
    ys, xs = np.nonzero(mask)
    if ys.size < min_area:
        return None
    p = np.stack([xs + 0.5, ys + 0.5], 1).astype(np.float64)
    c = p.mean(0)
    q = p - c
    cov = q.T @ q / len(q)
    evals, evecs = np.linalg.eigh(cov)
    axis = evecs[:, 1]
    t = q @ axis
    s = q @ evecs[:, 0]
    r = float(np.percentile(np.abs(s), 90)) / 0.9 + 0.5
    lo, hi = float(t.min()), float(t.max())
    if hi - lo > 2 * r:
        lo, hi = lo + r, hi - r
    else:
        mid = (lo + hi) / 2
        lo, hi = mid, mid
    return c, c + lo * axis, c + hi * axis, axis, r


def _joint(up: tuple, lo: tuple, a: int, b: int) -> np.ndarray:
    """The joint between two segments whose ends ``up[a]`` and ``lo[b]`` touch.

    The segment drawn underneath loses its end under the other one's cap, so the mean of the two
    ends is biased; when the segments are bent (> 20 degrees) the crossing of their axes is the
    joint itself, used when it lies near both ends (within twice the larger half-width).
    """
    mean = (up[a] + lo[b]) / 2
    d1, d2 = up[3], lo[3]
    cross = d1[0] * d2[1] - d1[1] * d2[0]
    if abs(cross) < np.sin(np.radians(20)):
        return mean
    diff = lo[0] - up[0]
    t = (diff[0] * d2[1] - diff[1] * d2[0]) / cross
    x = up[0] + t * d1
    reach = 2 * max(up[4], lo[4])
    if np.linalg.norm(x - up[a]) <= reach and np.linalg.norm(x - lo[b]) <= reach:
        return x
    return mean


def detect(image: np.ndarray) -> Detection:
    """Detect the limbs and twelve limb joints (+ neck) of the character in one RGB frame."""
    rgb = _as_rgb01(image)
    h, w = rgb.shape[:2]
    masks = limb_masks(rgb)
    min_area = max(4, int(MIN_AREA_FRACTION * h * w))
    segs = [_segment(m, min_area) for m in masks]
    present = [s for s in segs if s is not None]
    body_c = np.mean([s[0] for s in present], axis=0) if present else np.array([w / 2, h / 2])
    kp = np.zeros((NUM_KEYPOINTS, 2))
    sc = np.zeros(NUM_KEYPOINTS)

    def put(row: int, xy: np.ndarray) -> None:
        kp[row] = xy
        sc[row] = 1.0

    for up_i, lo_i, prox, mid, dist in _CHAINS:
        up, lo = segs[up_i], segs[lo_i]
        if up is not None and lo is not None:
            best = min(((a, b) for a in (1, 2) for b in (1, 2)), key=lambda ab: np.linalg.norm(up[ab[0]] - lo[ab[1]]))
            a, b = best
            put(mid, _joint(up, lo, a, b))
            put(prox, up[3 - a])
            put(dist, lo[3 - b])
        elif up is not None:
            near = 1 if np.linalg.norm(up[1] - body_c) <= np.linalg.norm(up[2] - body_c) else 2
            put(prox, up[near])
            put(mid, up[3 - near])
        elif lo is not None:
            near = 1 if np.linalg.norm(lo[1] - body_c) <= np.linalg.norm(lo[2] - body_c) else 2
            put(mid, lo[near])
            put(dist, lo[3 - near])
    if sc[2] and sc[5]:
        put(1, (kp[2] + kp[5]) / 2)
    kp /= np.array([w, h], dtype=np.float64)
    return Detection(masks, kp, sc, w, h)


def detect_frames(frames: np.ndarray) -> list[Detection]:
    """:func:`detect` on each frame of ``(F, H, W, 3)``."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ToyWorldError(f"detect_frames takes frames (F, H, W, 3); got shape {frames.shape}.")
    return [detect(f) for f in frames]
