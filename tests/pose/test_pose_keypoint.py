"""POSE_KEYPOINT interop: the exact format other ComfyUI packs read, and what they write."""
from __future__ import annotations

import json

import numpy as np
import pytest

from unianimate_core.pose.errors import PoseInputError
from unianimate_core.pose.keypoints import FACE, FEET, LEFT_HAND, RIGHT_HAND, PoseFrame, from_dwpose_dict, person_from_wholebody
from unianimate_core.pose.pose_keypoint import from_pose_keypoint, to_pose_keypoint


@pytest.fixture()
def real_frame(align_case) -> PoseFrame:
    """Frame 6 of anim2_to_jump (left hand missing) with its official Wholebody keypoints."""
    kp = align_case("anim2_to_jump")["keypoints"]
    wb, (w, h) = kp["wholebody134"][6], kp["image_sizes_WH"][6]
    return PoseFrame(w, h, [person_from_wholebody(np.array(wb["keypoints_px"]), np.array(wb["scores"]), w, h, det_score=0.8)])


def test_written_format_is_what_controlnet_aux_readers_expect(real_frame):
    data = to_pose_keypoint([real_frame])
    json.loads(json.dumps(data))  # plain JSON types only
    assert isinstance(data, list) and len(data) == 1
    frame = data[0]
    assert (frame["canvas_width"], frame["canvas_height"]) == (175, 350)
    assert frame["unianimate"] == {"version": 1}
    person = frame["people"][0]
    body = np.array(person["pose_keypoints_2d"]).reshape(-1, 3)
    assert body.shape == (18, 3) and set(body[:, 2]) <= {0.0, 1.0}
    src = real_frame.people[0]
    vis = src.scores[:18] > 0.3
    np.testing.assert_allclose(body[vis, :2], src.keypoints[:18][vis] * [175, 350], rtol=0, atol=1e-9)
    assert (body[~vis] == 0).all()
    assert person["hand_left_keypoints_2d"] is None  # missing part -> None
    right = np.array(person["hand_right_keypoints_2d"]).reshape(-1, 3)
    assert right.shape == (21, 3) and (right[:, 2] == 1).all()
    face = np.array(person["face_keypoints_2d"]).reshape(-1, 3)
    assert face.shape == (70, 3)
    np.testing.assert_allclose(face[68:, :2], src.keypoints[[14, 15]] * [175, 350], rtol=0, atol=1e-9)  # R eye, L eye
    assert len(person["foot_keypoints_2d"]) == 18 and len(person["pose_scores"]) == 18
    np.testing.assert_array_equal(person["pose_scores"], src.scores[:18])
    assert person["det_score"] == 0.8


def test_round_trip_is_lossless_on_visible_points(real_frame, render_cases):
    back = from_pose_keypoint(to_pose_keypoint(real_frame))[0]
    a, b = real_frame.people[0], back.people[0]
    np.testing.assert_array_equal(b.scores, a.scores)  # raw scores survive, visible or not
    vis = a.visible()
    np.testing.assert_allclose(b.keypoints[vis], a.keypoints[vis], rtol=0, atol=1e-12)
    assert b.det_score == 0.8
    # and the render of a round-tripped official pose is still pixel-identical
    from unianimate_core.pose.render import render_pose

    person = from_dwpose_dict(render_cases["cases"]["full"]["input"])
    rt = from_pose_keypoint(to_pose_keypoint(PoseFrame(512, 768, [person])))[0]
    np.testing.assert_array_equal(render_pose(rt), render_pose(person))


def _controlnet_aux_like(width=200, height=400, normalized=False):
    """A frame as controlnet_aux's DWPose node writes it: binary confidences, face None."""
    body = []
    for k in range(18):
        x, y = 50 + 5 * k, 40 + 15 * k
        if k == 10:  # a missing point
            body += [0.0, 0.0, 0.0]
        else:
            body += [x / width, y / height, 1.0] if normalized else [float(x), float(y), 1.0]
    hand = []
    for k in range(21):
        hand += [(100 + k) / width, 200 / height, 1.0] if normalized else [100.0 + k, 200.0, 1.0]
    return {
        "people": [{"pose_keypoints_2d": body, "face_keypoints_2d": None, "hand_left_keypoints_2d": hand,
                    "hand_right_keypoints_2d": None}],
        "canvas_height": height,
        "canvas_width": width,
    }


@pytest.mark.parametrize("normalized", [False, True])
def test_reads_other_packs_in_pixels_or_normalised(normalized):
    frame = from_pose_keypoint([_controlnet_aux_like(normalized=normalized)])[0]
    person = frame.people[0]
    assert frame.size == (200, 400)
    np.testing.assert_allclose(person.keypoints[0], [50 / 200, 40 / 400], rtol=0, atol=1e-12)
    assert person.scores[10] == 0 and person.scores[0] == 1
    assert (person.scores[LEFT_HAND] == 1).all() and (person.scores[RIGHT_HAND] == 0).all()
    assert (person.scores[FACE] == 0).all() and (person.scores[FEET] == 0).all()  # no feet in that format


def test_reads_body_25_with_feet_and_68_point_faces():
    body25 = []
    for k in range(25):
        body25 += [10.0 + k, 20.0 + 2 * k, 0.9]
    face68 = [v for k in range(68) for v in (30.0 + k, 40.0, 1.0)]
    frame = from_pose_keypoint({"people": [{"pose_keypoints_2d": body25, "face_keypoints_2d": face68}],
                                "canvas_width": 100, "canvas_height": 200})[0]
    p = frame.people[0]
    np.testing.assert_allclose(p.keypoints[8] * [100, 200], [19.0, 38.0])  # R hip = BODY_25 #9 (MidHip skipped)
    np.testing.assert_allclose(p.keypoints[18] * [100, 200], [29.0, 58.0])  # L big toe = BODY_25 #19
    np.testing.assert_allclose(p.scores[FEET], 0.9)
    np.testing.assert_allclose(p.keypoints[24] * [100, 200], [30.0, 40.0])


def test_json_text_and_missing_canvas():
    text = json.dumps([{"people": []}])
    with pytest.raises(PoseInputError, match="canvas"):
        from_pose_keypoint(text)
    assert from_pose_keypoint(text, canvas=(64, 32))[0].size == (64, 32)
    assert from_pose_keypoint([{"people": [], "canvas_width": 5, "canvas_height": 6}])[0].people == []


def test_edited_points_win_over_stale_raw_scores(real_frame):
    data = to_pose_keypoint(real_frame)
    body = data[0]["people"][0]["pose_keypoints_2d"]
    body[3 * 4: 3 * 4 + 3] = [0.0, 0.0, 0.0]  # an editor deleted the right wrist
    p = from_pose_keypoint(data)[0].people[0]
    assert p.scores[4] == 0 and not p.visible()[4]
    assert p.visible()[3]


@pytest.mark.parametrize("bad, match", [
    ({"animals": [], "canvas_width": 1, "canvas_height": 1}, "animal"),
    ({"people": [{"pose_keypoints_2d": [1.0, 2.0]}], "canvas_width": 1, "canvas_height": 1}, "pose_keypoints_2d"),
    ({"people": [{"hand_left_keypoints_2d": [0.0] * 60}], "canvas_width": 1, "canvas_height": 1}, "hand_left"),
    ({"people": ["x"], "canvas_width": 1, "canvas_height": 1}, "dicts"),
    ({"people": [], "canvas_width": 0, "canvas_height": 1}, "positive"),
    ("{not json", "JSON"),
    (42, "list of frame dicts"),
])
def test_malformed_input_is_actionable(bad, match):
    with pytest.raises(PoseInputError, match=match):
        from_pose_keypoint(bad)
