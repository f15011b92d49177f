"""Property-based robustness: thousands of random, partial and degenerate skeletons.

Alignment and rendering must never raise (except the documented "no person in the reference"
error), never emit NaN/inf, and keep missing points missing.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("cv2")

from unianimate_core.pose.align import AlignConfig, align_poses  # noqa: E402
from unianimate_core.pose.errors import PoseAlignmentError  # noqa: E402
from unianimate_core.pose.keypoints import FACE, FEET, LEFT_HAND, NUM_KEYPOINTS, RIGHT_HAND, Person, PoseFrame  # noqa: E402
from unianimate_core.pose.pose_keypoint import from_pose_keypoint, to_pose_keypoint  # noqa: E402
from unianimate_core.pose.render import render_pose  # noqa: E402
from unianimate_core.pose.selection import select_person  # noqa: E402

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # database/seed: tests/conftest.py

_BODY = np.array([
    [256, 120], [256, 180], [216, 180], [200, 260], [196, 330], [296, 180], [312, 260], [316, 330],
    [230, 350], [226, 470], [224, 590], [282, 350], [286, 470], [288, 590], [248, 110], [264, 110],
    [238, 116], [274, 116],
], dtype=np.float64) / [512, 768]
_PARTS = {"legs": [9, 10, 12, 13] + list(range(FEET.start, FEET.stop)), "shoulders": [2, 5], "hips": [8, 11],
          "neck": [1], "head": [0, 14, 15, 16, 17], "lhand": list(range(LEFT_HAND.start, LEFT_HAND.stop)),
          "rhand": list(range(RIGHT_HAND.start, RIGHT_HAND.stop)), "face": list(range(FACE.start, FACE.stop))}
_SPECIAL = [np.nan, np.inf, -np.inf, 1e5, -1e5, 1e300, 0.0, -1.0]


@st.composite
def persons(draw) -> Person:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["realistic", "realistic", "random", "collapsed"]))
    if kind == "realistic":
        base = np.concatenate([_BODY, rng.uniform(0.3, 0.7, (NUM_KEYPOINTS - 18, 2))])
        pts = base * rng.uniform(0.05, 3.0) + rng.uniform(-1, 1, 2) + rng.normal(0, draw(st.sampled_from([0, 0.005, 0.05])), base.shape)
    elif kind == "random":
        pts = rng.uniform(-2, 3, (NUM_KEYPOINTS, 2))
    else:  # many points on top of each other: zero-length bones everywhere
        pts = np.repeat(rng.uniform(-1, 2, (1, 2)), NUM_KEYPOINTS, axis=0)
        pts[rng.random(NUM_KEYPOINTS) < 0.3] = rng.uniform(-1, 2, 2)
    visible = rng.random(NUM_KEYPOINTS) >= draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 0.9, 1.0]))
    for part in draw(st.lists(st.sampled_from(sorted(_PARTS)), max_size=4)):
        visible[_PARTS[part]] = False
    scores = np.where(visible, rng.uniform(0.30001, 1.0, NUM_KEYPOINTS), rng.choice([0.0, 0.1, 0.3, np.nan], NUM_KEYPOINTS))
    n_special = draw(st.sampled_from([0, 0, 0, 1, 5]))
    for _ in range(n_special):
        pts[rng.integers(NUM_KEYPOINTS), rng.integers(2)] = rng.choice(_SPECIAL)
    return Person(pts, scores, det_score=float(rng.uniform(0.3, 1.0)))


sizes = st.tuples(st.integers(1, 4096), st.integers(1, 4096))


@st.composite
def frames(draw) -> PoseFrame | None:
    kind = draw(st.sampled_from(["person", "person", "person", "empty", "none", "two"]))
    if kind == "none":
        return None
    w, h = draw(sizes)
    if kind == "empty":
        return PoseFrame(w, h, [])
    people = [draw(persons())] + ([draw(persons())] if kind == "two" else [])
    return PoseFrame(w, h, people)


@st.composite
def configs(draw, n_frames: int) -> AlignConfig:
    cal = draw(st.one_of(st.just("auto"), st.integers(0, n_frames - 1)))
    return AlignConfig(
        calibration=cal,
        auto_window=draw(st.integers(1, 4)),
        smoothing=draw(st.sampled_from([0.0, 0.0, 0.7, 3.0])),
        bone_metric=draw(st.sampled_from(["normalized", "pixel"])),
        face_follows_head=draw(st.booleans()),
        person=draw(st.sampled_from(["score", "largest", "index"])),
        person_index=draw(st.integers(0, 2)),
        max_ratio=draw(st.sampled_from([None, None, 3.0])),
    )


@settings(max_examples=700, **SETTINGS)
@given(data=st.data())
def test_alignment_never_crashes_and_stays_finite(data):
    ref_size = data.draw(sizes)
    reference = PoseFrame(*ref_size, [data.draw(persons())])
    driving = data.draw(st.lists(frames(), min_size=1, max_size=5))
    cfg = data.draw(configs(len(driving)))
    try:
        out = align_poses(reference, driving, cfg)
    except PoseAlignmentError as exc:
        # Allowed only when there is nothing to align to, or an explicit calibration frame is empty.
        ref_ok = (reference.people[0].scores[:18] > cfg.threshold).any()
        assert not ref_ok or cfg.calibration != "auto", str(exc)
        return
    assert len(out) == len(driving)
    for frame, src in zip(out, driving):
        assert frame.size == ref_size
        chosen = select_person(src, cfg.person, cfg.person_index, cfg.threshold)
        assert len(frame.people) <= (chosen is not None)
        if chosen is not None and (chosen.scores[:18] > cfg.threshold).any():
            assert frame.people  # a person with a visible body is never dropped
        for person in frame.people:
            assert np.isfinite(person.keypoints).all()
            # scores are carried over: missing points stay missing, none appear (a point thrown beyond
            # MAX_COORD canvases by absurd ratios is dropped as missing, never kept as garbage)
            vis = person.visible(cfg.threshold)
            assert not (vis & ~chosen.visible(cfg.threshold)).any()
            np.testing.assert_array_equal(person.scores[vis], chosen.scores[vis])
            image = render_pose(person, 64, 96, canvas="target")
            assert image.shape == (96, 64, 3) and image.dtype == np.uint8


@settings(max_examples=1000, **SETTINGS)
@given(person=persons(), size=st.tuples(st.integers(1, 300), st.integers(1, 300)),
       canvas=st.sampled_from(["auto", "official", "target", "target", "target"]), face=st.booleans(),
       colors=st.sampled_from(["unianimate", "openpose"]))
def test_rendering_never_crashes(person, size, canvas, face, colors):
    image = render_pose(person, size[0], size[1], canvas=canvas, draw_face=face, colors=colors)
    assert image.shape == (size[1], size[0], 3) and image.dtype == np.uint8
    assert not render_pose(Person(person.keypoints, np.zeros(NUM_KEYPOINTS)), size[0], size[1], canvas="target").any()


@settings(max_examples=300, **SETTINGS)
@given(frame=frames())
def test_pose_keypoint_round_trip_never_crashes(frame):
    if frame is None:
        return
    data = to_pose_keypoint([frame])
    back = from_pose_keypoint(data)[0]
    assert back.size == frame.size and len(back.people) == len(frame.people)
    for a, b in zip(frame.people, back.people):
        np.testing.assert_array_equal(a.visible(), b.visible())
        vis = a.visible()
        np.testing.assert_allclose(b.keypoints[vis], a.keypoints[vis], rtol=1e-12, atol=1e-12)
