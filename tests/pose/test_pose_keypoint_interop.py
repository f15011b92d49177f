"""POSE_KEYPOINT written by other packs: the coordinate space is decided per sequence, with a margin.

Layouts (built by hand from the formats the packs write, flat [x, y, c] lists, OpenPose-18 bodies):

* comfyui_controlnet_aux's DWPose/OpenPose estimators: pixel coordinates of ``canvas_width`` x
  ``canvas_height``, confidence 1.0, missing points [0, 0, 0], ``None`` for a part without points,
  70-point faces (68 + the two eyes);
* ComfyUI-ultimate-openpose-editor: normalised coordinates, points off the canvas kept as they are
  (the editor wrote x = 1.026 for a wrist just outside the frame), faces/hands often absent or [];
* empty frames (no person) and sequences whose frames have different canvas sizes.

The expected keypoints are the hand-built coordinates divided by the canvas (pixels) or taken as
they are (normalised) - the definition of the two spaces, not the reader's output.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest

from unianimate_core.pose.keypoints import FACE, FEET, LEFT_HAND, RIGHT_HAND
from unianimate_core.pose.pose_keypoint import NORMALIZED_LIMIT, coordinate_spaces, from_pose_keypoint

# A standing person as fractions of the canvas (OpenPose-18 order), wrists (4, 7) at the sides.
BODY = np.array([
    [0.50, 0.10], [0.50, 0.20], [0.40, 0.20], [0.35, 0.35], [0.30, 0.50], [0.60, 0.20], [0.65, 0.35],
    [0.70, 0.50], [0.45, 0.50], [0.45, 0.70], [0.45, 0.90], [0.55, 0.50], [0.55, 0.70], [0.55, 0.90],
    [0.48, 0.08], [0.52, 0.08], [0.46, 0.09], [0.54, 0.09],
])
HAND = np.stack([np.linspace(0.28, 0.32, 21), np.linspace(0.50, 0.56, 21)], axis=1)
FACE70 = np.concatenate([np.stack([np.linspace(0.45, 0.55, 68), np.full(68, 0.12)], axis=1), BODY[[14, 15]]])


def flat(points: np.ndarray, scale=(1.0, 1.0), missing: tuple[int, ...] = ()) -> list[float]:
    out: list[float] = []
    for i, (x, y) in enumerate(points):
        out += [0.0, 0.0, 0.0] if i in missing else [float(x * scale[0]), float(y * scale[1]), 1.0]
    return out


def aux_frame(width: int, height: int, body: np.ndarray = BODY, hands: bool = True, face: bool = True) -> dict:
    """comfyui_controlnet_aux: pixels, binary confidences, None for absent parts, 70-point face."""
    s = (width, height)
    return {"people": [{"pose_keypoints_2d": flat(body, s, missing=(16,)),
                        "face_keypoints_2d": flat(FACE70, s) if face else None,
                        "hand_left_keypoints_2d": flat(HAND, s) if hands else None,
                        "hand_right_keypoints_2d": None}],
            "canvas_width": width, "canvas_height": height}


def editor_frame(width: int, height: int, body: np.ndarray = BODY) -> dict:
    """ultimate-openpose-editor: normalised coordinates, no face, empty hand lists."""
    return {"people": [{"pose_keypoints_2d": flat(body), "face_keypoints_2d": [], "hand_left_keypoints_2d": [],
                        "hand_right_keypoints_2d": []}],
            "canvas_width": width, "canvas_height": height}


def empty_frame(width: int = 512, height: int = 768) -> dict:
    return {"people": [], "canvas_width": width, "canvas_height": height}


def shifted(dx: float) -> np.ndarray:
    return BODY + np.array([dx, 0.0])


def assert_body(person, expected: np.ndarray, missing: tuple[int, ...] = ()) -> None:
    keep = [i for i in range(18) if i not in missing]
    np.testing.assert_allclose(person.keypoints[keep], expected[keep], rtol=0, atol=1e-9)


def test_editor_sequence_with_a_wrist_off_the_canvas_keeps_every_skeleton():
    """The issue's case: one frame's wrist at x = 1.026. Read per frame with the old [-1, 1] rule that
    frame became pixels (a skeleton inside 1 x 1 pixel at the origin); per sequence it stays normalised."""
    off = BODY.copy()
    off[7] = [1.026, 0.5]
    frames = from_pose_keypoint([editor_frame(512, 768), editor_frame(512, 768, off), editor_frame(512, 768)])
    for frame, body in zip(frames, (BODY, off, BODY)):
        assert_body(frame.people[0], body)
    # the body is as tall as in the neighbouring frames (neck to ankle), not a dot
    height = lambda p: p.keypoints[10, 1] - p.keypoints[1, 1]  # noqa: E731
    assert height(frames[1].people[0]) == pytest.approx(height(frames[0].people[0]))


def test_points_well_off_the_canvas_stay_normalised_within_the_margin():
    body = BODY.copy()
    body[4] = [-0.4, 0.5]
    body[13] = [0.55, 1.9]  # an ankle far below the frame, still inside the +-2 margin
    (frame,) = from_pose_keypoint([editor_frame(256, 256, body)])
    assert_body(frame.people[0], body)


def test_controlnet_aux_pixels_with_missing_parts_and_mixed_canvas_sizes():
    data = [aux_frame(512, 768), aux_frame(768, 512, hands=False), empty_frame(640, 480),
            aux_frame(1080, 1920, face=False)]
    frames = from_pose_keypoint(data)
    assert [f.size for f in frames] == [(512, 768), (768, 512), (640, 480), (1080, 1920)]
    assert frames[2].people == []
    for i in (0, 1, 3):
        p = frames[i].people[0]
        assert_body(p, BODY, missing=(16,))
        assert p.scores[16] == 0 and p.scores[0] == 1
    np.testing.assert_allclose(frames[0].people[0].keypoints[LEFT_HAND], HAND, atol=1e-9)
    np.testing.assert_allclose(frames[0].people[0].keypoints[FACE], FACE70[:68], atol=1e-9)
    assert (frames[1].people[0].scores[LEFT_HAND] == 0).all()  # hands None
    assert (frames[3].people[0].scores[FACE] == 0).all()  # face None
    assert all((f.people[0].scores[RIGHT_HAND] == 0).all() and (f.people[0].scores[FEET] == 0).all()
               for f in frames if f.people)


def test_empty_frames_do_not_decide_the_space():
    frames = from_pose_keypoint([empty_frame(), editor_frame(512, 768), empty_frame()])
    assert [len(f.people) for f in frames] == [0, 1, 0]
    assert_body(frames[1].people[0], BODY)
    assert coordinate_spaces([empty_frame()]) == ["normalized"]  # nothing to read: either is harmless


def test_a_normalised_frame_inside_a_pixel_sequence_is_not_collapsed(caplog):
    """Two packs' outputs joined into one sequence: the frame whose skeleton lies within +-2 can only be
    normalised (in pixels it would be a whole body inside 2 x 2 pixels); it is read so, and said so."""
    data = [aux_frame(512, 768), editor_frame(512, 768, shifted(0.05)), aux_frame(512, 768)]
    with caplog.at_level(logging.WARNING, logger="unianimate"):
        frames = from_pose_keypoint(data)
    assert_body(frames[1].people[0], shifted(0.05))
    assert_body(frames[0].people[0], BODY, missing=(16,))
    assert "frames 1 have every coordinate within" in caplog.text


def test_a_stray_point_near_the_origin_does_not_turn_a_pixel_sequence_normalised():
    """A pixel sequence in which one frame holds a single detected point at (1, 1) px: one point is no
    skeleton, so that frame keeps the sequence's space (pixels)."""
    lone = {"people": [{"pose_keypoints_2d": [1.0, 1.0, 1.0] + [0.0] * 51}], "canvas_width": 512, "canvas_height": 768}
    frames = from_pose_keypoint([aux_frame(512, 768), lone])
    np.testing.assert_allclose(frames[1].people[0].keypoints[0], [1 / 512, 1 / 768])


def test_our_own_output_is_always_pixels_even_when_tiny():
    from unianimate_core.pose.keypoints import Person, PoseFrame
    from unianimate_core.pose.pose_keypoint import to_pose_keypoint

    kps = np.zeros((134, 2))
    kps[:18] = BODY
    scores = np.zeros(134)
    scores[:18] = 1.0
    data = to_pose_keypoint(PoseFrame(2, 2, [Person(kps, scores)]))  # a 2 x 2 canvas: every pixel value <= 2
    (frame,) = from_pose_keypoint(data)
    np.testing.assert_allclose(frame.people[0].keypoints[:18], BODY, atol=1e-9)


def test_the_limit_is_the_editors_rule():
    assert NORMALIZED_LIMIT == 2.0
    body = BODY.copy()
    body[4] = [2.5, 0.5]  # beyond the margin: the frame is pixels
    assert coordinate_spaces([editor_frame(512, 768, body)]) == ["pixels"]
