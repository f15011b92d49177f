"""Pose alignment: rescale a driving skeleton to the reference person's body.

The official algorithm (the official UniAnimate code, ali-vilab/UniAnimate @ 643c963,
``run_align_pose.py``; docs/official_behaviour.md#pose-alignment), in normalised coordinates:

1. global scale from the *calibration* frame (the official code always uses frame 0):
   ``x_ratio`` = reference shoulder width / driving shoulder width, ``y_ratio`` = reference
   shoulder-centre-to-hip-centre height / driving one; every point is multiplied by them;
2. 15 bone ratios (|reference bone| / |scaled calibration bone|); for each bone, in a fixed order,
   the child is moved to ``parent + ratio * (child - parent)`` and its descendants (listed per
   bone, including hands and feet) are translated with it, using the coordinates already updated
   by the previous bones;
3. a translation putting the calibration frame's neck on the reference neck.
The same ratios and translation are applied to every frame.

That path is reproduced exactly (to floating-point rounding) when every point it needs is
visible. The official code has no notion of missing points (its "-1" markers are scaled and
moved like real points, producing NaN, silently wrong scales and visible garbage hands); here
(see docs/pose.md, "Deviations from the official code"):

* a ratio is measured only from points visible in both the reference and the calibration frame
  and from lengths above ``min_length``; an unmeasurable bone keeps the global scale (ratio 1);
* the global scale falls back to the other axis (isotropic in pixels), then to the median of the
  measurable bone ratios, then to the ratio of the skeletons' extents, then to 1;
* a bone is applied to a frame only when its two end points are visible in that frame;
* the translation falls back from the neck to the hip centre, the nose, then the centroid;
* missing points stay missing (their scores are kept), so nothing invisible is ever drawn;
* shoulder width / torso height ratios use magnitudes (a person facing away is not mirrored).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, NamedTuple, Sequence

import numpy as np

from .errors import PoseAlignmentError, PoseInputError
from .keypoints import DEFAULT_THRESHOLD, FACE, LEFT_HAND, RIGHT_HAND, Person, PoseFrame
from .selection import SELECT_MODES, select_person
from .smoothing import smooth_sequence

logger = logging.getLogger("unianimate")

_RH = tuple(range(RIGHT_HAND.start, RIGHT_HAND.stop))
_LH = tuple(range(LEFT_HAND.start, LEFT_HAND.stop))
_LEFT_FOOT = (18, 19, 20)
_RIGHT_FOOT = (21, 22, 23)


class Bone(NamedTuple):
    """A bone ``parent -> child`` and the rows translated with the child."""

    name: str
    parent: int
    child: int
    moves: tuple[int, ...]


#: The official bones, in the official order (body rows; the official "toe" rows 18/19 are our
#: whole left/right foot, and hand[0]/hand[1] our left/right hand rows).
BONES: tuple[Bone, ...] = (
    Bone("neck", 1, 0, (0, 14, 15, 16, 17)),
    Bone("shoulder2", 1, 2, (2, 3, 4) + _RH),
    Bone("shoulder5", 1, 5, (5, 6, 7) + _LH),
    Bone("arm3", 2, 3, (3, 4) + _RH),
    Bone("arm4", 3, 4, (4,) + _RH),
    Bone("arm6", 5, 6, (6, 7) + _LH),
    Bone("arm7", 6, 7, (7,) + _LH),
    Bone("head14", 0, 14, (14, 16)),
    Bone("head15", 0, 15, (15, 17)),
    Bone("head16", 14, 16, (16,)),
    Bone("head17", 15, 17, (17,)),
    Bone("ll1", 8, 9, (9, 10) + _RIGHT_FOOT),
    Bone("ll2", 9, 10, (10,) + _RIGHT_FOOT),
    Bone("rl1", 11, 12, (12, 13) + _LEFT_FOOT),
    Bone("rl2", 12, 13, (13,) + _LEFT_FOOT),
)
_FACE_ROWS = tuple(range(FACE.start, FACE.stop))
# Points counted by the automatic calibration-frame choice: body + big/small toes.
_COMPLETENESS_ROWS = np.array(list(range(18)) + [18, 19, 21, 22])


@dataclass(frozen=True)
class AlignConfig:
    """Options of :func:`align_poses` (defaults = the official behaviour on complete skeletons).

    ``calibration``: "auto" (the most complete skeleton among the first ``auto_window`` frames
    that contain a person, earliest on ties) or a frame index (the official code uses 0).
    ``smoothing``: Gaussian sigma in frames applied to the aligned keypoints (0 = off).
    ``bone_metric``: "normalized" (official: bone lengths in normalised units) or "pixel" (lengths
    in reference pixels; differs only for non-square reference images, where it avoids
    direction-dependent stretching).
    ``face_follows_head``: move the face landmarks with the head (the official code only scales
    and translates them, so they drift off the head; the face is not drawn by default).
    ``person`` / ``person_index``: how to pick one person per driving frame, and
    ``reference_person`` / ``reference_index`` in the reference (see ``select_person``).
    ``threshold``: visibility threshold. ``min_length``: shorter bones (normalised units) count
    as not measurable. ``max_ratio``: when set, ratios outside [1/max_ratio, max_ratio] count as
    not measurable too (off by default, as in the official code).
    """

    calibration: Literal["auto"] | int = "auto"
    auto_window: int = 8
    smoothing: float = 0.0
    bone_metric: Literal["normalized", "pixel"] = "normalized"
    face_follows_head: bool = False
    person: Literal["score", "largest", "index"] = "score"
    person_index: int = 0
    reference_person: Literal["score", "largest", "index"] = "score"
    reference_index: int = 0
    threshold: float = DEFAULT_THRESHOLD
    min_length: float = 1e-6
    max_ratio: float | None = None

    def __post_init__(self) -> None:
        cal = self.calibration
        if not (cal == "auto" or _is_int(cal)):
            raise PoseInputError(f"calibration must be 'auto' or a frame index, got {cal!r}.")
        for name in ("auto_window", "person_index", "reference_index"):
            value, minimum = getattr(self, name), 1 if name == "auto_window" else 0
            if not (_is_int(value) and value >= minimum):
                raise PoseInputError(f"{name} must be an integer >= {minimum}, got {value!r}.")
        if not (_is_number(self.smoothing) and self.smoothing >= 0):
            raise PoseInputError(f"smoothing must be a finite number >= 0 (frames), got {self.smoothing!r}.")
        if self.bone_metric not in ("normalized", "pixel"):
            raise PoseInputError(f"bone_metric must be 'normalized' or 'pixel', got {self.bone_metric!r}.")
        for name in ("person", "reference_person"):
            if getattr(self, name) not in SELECT_MODES:
                raise PoseInputError(f"{name} must be one of {SELECT_MODES}, got {getattr(self, name)!r}.")
        if not (_is_number(self.threshold) and 0 <= self.threshold < 1):
            raise PoseInputError(f"threshold must be a number in [0, 1) (keypoint confidence), got {self.threshold!r}.")
        if not (_is_number(self.min_length) and self.min_length > 0):
            raise PoseInputError(f"min_length must be a positive number, got {self.min_length!r}.")
        if self.max_ratio is not None and not (_is_number(self.max_ratio) and self.max_ratio > 1):
            raise PoseInputError(f"max_ratio must be None or a finite number > 1, got {self.max_ratio!r}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Alignment:
    """The transform measured once and applied to every frame (all in normalised coordinates of
    the reference canvas ``reference_size`` = (width, height))."""

    x_ratio: float
    y_ratio: float
    bone_ratios: dict[str, float]
    offset: tuple[float, float]
    calibration_index: int
    reference_size: tuple[int, int]
    threshold: float = DEFAULT_THRESHOLD
    face_follows_head: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    unmeasured_bones: tuple[str, ...] = field(default_factory=tuple)

    def transform(self, keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """(134, 2) keypoints of one frame + (134,) visibility -> aligned (134, 2) keypoints."""
        pts = np.array(keypoints, dtype=np.float64, copy=True)
        pts[:, 0] *= self.x_ratio
        pts[:, 1] *= self.y_ratio
        for bone in BONES:
            ratio = self.bone_ratios[bone.name]
            if ratio == 1.0 or not (visible[bone.parent] and visible[bone.child]):
                continue
            offset = (pts[bone.parent] - pts[bone.child]) * (1 - ratio)
            pts[list(bone.moves)] += offset
            if self.face_follows_head and bone.name == "neck":
                pts[list(_FACE_ROWS)] += offset
        pts += np.array(self.offset)
        return pts

    def apply(self, person: Person) -> Person:
        """An aligned copy of ``person`` (scores kept, so missing points stay hidden)."""
        aligned = self.transform(person.keypoints, person.visible(self.threshold))
        return Person(aligned, person.scores.copy(), None, person.det_score, person.approximate)

    def describe(self) -> str:
        """One line for logs / node status."""
        text = (f"calibration frame {self.calibration_index}, scale x {self.x_ratio:.3f} y {self.y_ratio:.3f}, "
                f"{len(BONES) - len(self.unmeasured_bones)}/{len(BONES)} bones measured")
        if self.unmeasured_bones:
            text += f" (kept the global scale for {', '.join(self.unmeasured_bones)})"
        return text + ("; " + "; ".join(self.notes) if self.notes else "")


# ------------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------------

def _ratio_ok(num: float, den: float, cfg: AlignConfig) -> float | None:
    """|num| / |den| when both lengths are measurable (and the ratio within max_ratio)."""
    if not (abs(num) > cfg.min_length and abs(den) > cfg.min_length):
        return None
    ratio = abs(num) / abs(den)
    if not math.isfinite(ratio) or ratio <= 0:
        return None
    if cfg.max_ratio is not None and not (1 / cfg.max_ratio <= ratio <= cfg.max_ratio):
        return None
    return ratio


def _global_ratios(
    ref: Person, cal: Person, ref_size: tuple[int, int], cal_size: tuple[int, int], cfg: AlignConfig, notes: list[str]
) -> tuple[float, float]:
    R, C = ref.keypoints, cal.keypoints
    rv, cv = ref.visible(cfg.threshold), cal.visible(cfg.threshold)
    (wr, hr), (wc, hc) = ref_size, cal_size
    x_ratio = y_ratio = None
    if rv[[2, 5]].all() and cv[[2, 5]].all():
        x_ratio = _ratio_ok(R[5, 0] - R[2, 0], C[5, 0] - C[2, 0], cfg)
    if rv[[2, 5, 8, 11]].all() and cv[[2, 5, 8, 11]].all():
        y_ratio = _ratio_ok(
            (R[8, 1] + R[11, 1]) / 2 - (R[2, 1] + R[5, 1]) / 2,
            (C[8, 1] + C[11, 1]) / 2 - (C[2, 1] + C[5, 1]) / 2,
            cfg,
        )
    if x_ratio is not None and y_ratio is not None:
        return x_ratio, y_ratio
    if x_ratio is not None:  # isotropic in pixels: s = x_ratio * wr / wc
        notes.append("torso height not measurable: y scale taken from the shoulder width")
        s = x_ratio * wr / wc
        return x_ratio, s * hc / hr
    if y_ratio is not None:
        notes.append("shoulder width not measurable: x scale taken from the torso height")
        s = y_ratio * hr / hc
        return s * wc / wr, y_ratio
    s = _pixel_scale_fallback(ref, cal, ref_size, cal_size, cfg, notes)
    if s is None:
        notes.append("no common measurement: the pose keeps its size relative to the frame")
        return 1.0, 1.0
    return s * wc / wr, s * hc / hr


def _pixel_scale_fallback(
    ref: Person, cal: Person, ref_size: tuple[int, int], cal_size: tuple[int, int], cfg: AlignConfig, notes: list[str]
) -> float | None:
    """Reference pixels per driving pixel when neither shoulders nor torso can be measured."""
    rm, cm = np.array(ref_size, float), np.array(cal_size, float)
    rv, cv = ref.visible(cfg.threshold), cal.visible(cfg.threshold)
    ratios = []
    for bone in BONES:
        ends = [bone.parent, bone.child]
        if rv[ends].all() and cv[ends].all():
            dr = ref.keypoints[bone.parent] - ref.keypoints[bone.child]
            dc = cal.keypoints[bone.parent] - cal.keypoints[bone.child]
            if np.linalg.norm(dr) > cfg.min_length and np.linalg.norm(dc) > cfg.min_length:
                r = _ratio_ok(float(np.linalg.norm(dr * rm)), float(np.linalg.norm(dc * cm)), cfg)
                if r is not None:
                    ratios.append(r)
    if ratios:
        notes.append(f"shoulders and torso not measurable: scale = median of {len(ratios)} bone ratios")
        return float(np.median(ratios))
    body_r, body_c = rv[:18], cv[:18]
    if body_r.sum() >= 2 and body_c.sum() >= 2:
        ext_r = np.ptp(ref.keypoints[:18][body_r], axis=0)
        ext_c = np.ptp(cal.keypoints[:18][body_c], axis=0)
        if np.linalg.norm(ext_r) > cfg.min_length and np.linalg.norm(ext_c) > cfg.min_length:
            r = _ratio_ok(float(np.linalg.norm(ext_r * rm)), float(np.linalg.norm(ext_c * cm)), cfg)
            if r is not None:
                notes.append("no bone measurable in both skeletons: scale = ratio of the skeletons' extents")
                return r
    return None


def _bone_ratios(
    ref: Person, scaled_cal: np.ndarray, cal_visible: np.ndarray, ref_size: tuple[int, int], cfg: AlignConfig
) -> tuple[dict[str, float], tuple[str, ...]]:
    """Ratio per bone (1.0 where not measurable) and the names of the unmeasurable bones."""
    R = ref.keypoints
    rv = ref.visible(cfg.threshold)
    metric = np.array(ref_size, dtype=np.float64) if cfg.bone_metric == "pixel" else None
    out: dict[str, float] = {}
    unmeasured: list[str] = []
    for bone in BONES:
        ends = [bone.parent, bone.child]
        ratio = None
        if rv[ends].all() and cal_visible[ends].all():
            dr = R[bone.parent] - R[bone.child]
            dc = scaled_cal[bone.parent] - scaled_cal[bone.child]
            if metric is None:
                lr, lc = float(np.sqrt(np.sum(dr ** 2))), float(np.sqrt(np.sum(dc ** 2)))
                ratio = _ratio_ok(lr, lc, cfg)
            elif np.linalg.norm(dr) > cfg.min_length and np.linalg.norm(dc) > cfg.min_length:
                ratio = _ratio_ok(float(np.linalg.norm(dr * metric)), float(np.linalg.norm(dc * metric)), cfg)
        if ratio is None:
            unmeasured.append(bone.name)
            ratio = 1.0
        out[bone.name] = ratio
    return out, tuple(unmeasured)


def _anchor_offset(ref: Person, aligned_cal: np.ndarray, cal_visible: np.ndarray, cfg: AlignConfig, notes: list[str]) -> tuple[float, float]:
    R = ref.keypoints
    rv = ref.visible(cfg.threshold)
    for rows, name in (([1], "neck"), ([8, 11], "hip centre"), ([0], "nose")):
        if rv[rows].all() and cal_visible[rows].all():
            if name != "neck":
                notes.append(f"neck missing: translation anchored at the {name}")
            off = R[rows].mean(axis=0) - aligned_cal[rows].mean(axis=0) if len(rows) > 1 else R[rows[0]] - aligned_cal[rows[0]]
            return float(off[0]), float(off[1])
    common = rv[:18] & cal_visible[:18]
    if common.any():
        notes.append("neck, hips and nose missing: translation anchored at the common body points' centroid")
        off = R[:18][common].mean(axis=0) - aligned_cal[:18][common].mean(axis=0)
    else:
        notes.append("no common body point: translation aligns the skeletons' centroids")
        off = R[rv].mean(axis=0) - aligned_cal[cal_visible].mean(axis=0) if rv.any() and cal_visible.any() else np.zeros(2)
    return float(off[0]), float(off[1])


def _completeness(person: Person | None, threshold: float) -> int:
    return -1 if person is None else int((person.scores[_COMPLETENESS_ROWS] > threshold).sum())


def choose_calibration(people: Sequence[Person | None], cfg: AlignConfig) -> int | None:
    """Index of the calibration frame (see :class:`AlignConfig`); None when nobody is visible."""
    if cfg.calibration != "auto":
        idx = int(cfg.calibration)
        if not 0 <= idx < len(people):
            raise PoseInputError(f"calibration frame {idx} is out of range: the driving sequence has {len(people)} frames.")
        if _completeness(people[idx], cfg.threshold) <= 0:
            raise PoseAlignmentError(
                f"calibration frame {idx} has no visible body keypoints; choose another frame or 'auto'."
            )
        return idx
    candidates = [i for i, p in enumerate(people) if _completeness(p, cfg.threshold) > 0]
    if not candidates:
        return None
    window = candidates[:cfg.auto_window]
    return max(window, key=lambda i: (_completeness(people[i], cfg.threshold), -i))


def _as_frame(pose: PoseFrame | Person | None, default_size: tuple[int, int]) -> PoseFrame | None:
    if pose is None:
        return None
    if isinstance(pose, PoseFrame):
        return pose
    if isinstance(pose, Person):
        return PoseFrame(default_size[0], default_size[1], [pose])
    raise PoseInputError(f"expected a PoseFrame, a Person or None, got {type(pose).__name__}.")


def _default_size(reference: Any, driving: Sequence[Any]) -> tuple[int, int]:
    for item in [reference, *driving]:
        if isinstance(item, PoseFrame):
            return item.size
    return (1, 1)


class _Inputs(NamedTuple):
    """The reference and driving frames as PoseFrames, with the selected person of each."""

    ref_frame: PoseFrame
    ref: Person
    frames: list[PoseFrame | None]
    people: list[Person | None]


def _prepare(reference: PoseFrame | Person, driving: Sequence[PoseFrame | Person | None], cfg: AlignConfig) -> _Inputs:
    if driving is None or isinstance(driving, (PoseFrame, Person, str, bytes)) or not hasattr(driving, "__iter__"):
        raise PoseInputError(f"driving must be a sequence of PoseFrames (one per frame), got {type(driving).__name__}; "
                             "wrap a single frame in a list.")
    driving = list(driving)
    size = _default_size(reference, driving)
    ref_frame = _as_frame(reference, size)
    ref = select_person(ref_frame, cfg.reference_person, cfg.reference_index, cfg.threshold)
    if ref_frame is None or ref is None or not (ref.scores[:18] > cfg.threshold).any():
        raise PoseAlignmentError(
            "no person (no visible body keypoint) was found in the reference pose, so the driving poses "
            "cannot be aligned to it. Use a reference image showing the person (ideally full body), "
            "or turn pose alignment off."
        )
    frames = [_as_frame(f, size) for f in driving]
    people = [select_person(f, cfg.person, cfg.person_index, cfg.threshold) for f in frames]
    return _Inputs(ref_frame, ref, frames, people)


def _plan(inputs: _Inputs, cfg: AlignConfig) -> Alignment | None:
    ref, ref_frame = inputs.ref, inputs.ref_frame
    cal_idx = choose_calibration(inputs.people, cfg)
    if cal_idx is None:
        return None
    cal, cal_frame = inputs.people[cal_idx], inputs.frames[cal_idx]
    assert cal is not None and cal_frame is not None  # choose_calibration only returns frames with a person
    notes: list[str] = []
    x_ratio, y_ratio = _global_ratios(ref, cal, ref_frame.size, cal_frame.size, cfg, notes)
    cal_visible = cal.visible(cfg.threshold)
    scaled = cal.keypoints * np.array([x_ratio, y_ratio])
    bone_ratios, unmeasured = _bone_ratios(ref, scaled, cal_visible, ref_frame.size, cfg)
    partial = Alignment(x_ratio, y_ratio, bone_ratios, (0.0, 0.0), cal_idx, ref_frame.size,
                        cfg.threshold, cfg.face_follows_head)
    aligned_cal = partial.transform(cal.keypoints, cal_visible)
    offset = _anchor_offset(ref, aligned_cal, cal_visible, cfg, notes)
    return replace(partial, offset=offset, notes=tuple(notes), unmeasured_bones=unmeasured)


def plan_alignment(
    reference: PoseFrame | Person,
    driving: Sequence[PoseFrame | Person | None],
    config: AlignConfig | None = None,
) -> Alignment | None:
    """Measure the alignment (global scale, bone ratios, translation); None if no driving frame
    contains a person. Raises :class:`PoseAlignmentError` when the reference has no person."""
    cfg = config or AlignConfig()
    return _plan(_prepare(reference, driving, cfg), cfg)


def _config(config: AlignConfig | None, overrides: dict[str, Any]) -> AlignConfig:
    cfg = config or AlignConfig()
    known = {f.name for f in fields(AlignConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise PoseInputError(f"unknown alignment option(s) {sorted(unknown)}; valid: {sorted(known)}.")
    return replace(cfg, **overrides) if overrides else cfg


def align_poses(
    reference: PoseFrame | Person,
    driving: Sequence[PoseFrame | Person | None],
    config: AlignConfig | None = None,
    **overrides: Any,
) -> list[PoseFrame]:
    """Align every driving frame to the reference person; returns one :class:`PoseFrame` per
    driving frame on the reference canvas, holding the aligned person (or nobody).

    ``config`` / keyword overrides: see :class:`AlignConfig`, e.g.
    ``align_poses(ref, frames, calibration=0, smoothing=1.5)``. Never produces NaN/inf; frames
    without a person stay empty.
    """
    cfg = _config(config, overrides)
    inputs = _prepare(reference, driving, cfg)
    alignment = _plan(inputs, cfg)
    width, height = inputs.ref_frame.size
    if alignment is None:
        logger.warning("pose alignment: no person in any driving frame; returning empty poses.")
        return [PoseFrame(width, height, []) for _ in inputs.frames]
    logger.info("pose alignment: %s", alignment.describe())
    out = [PoseFrame(width, height, [] if p is None else [alignment.apply(p)]) for p in inputs.people]
    if cfg.smoothing > 0:
        out = smooth_sequence(out, cfg.smoothing, cfg.threshold)
    return out
