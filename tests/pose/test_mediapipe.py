"""MediaPipe backend: the landmark mapping (no mediapipe needed) and the real model (optional).

tests/fixtures/pose_align/<case>/mediapipe_coco133.json stores, per image, the raw Holistic
landmarks (pose + hands; FaceMesh omitted) and the COCO-WholeBody-133 keypoints the fixture
generator mapped them to; keypoints.json stores what the official ``Wholebody`` /
``DWposeDetector`` code made of those 133 points.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from unianimate_core.pose.errors import PoseDependencyError
from unianimate_core.pose.keypoints import person_from_coco133, to_dwpose_dict
from unianimate_core.pose.mediapipe_backend import MP_FACE68, mediapipe_to_coco133

CASES = ("anim2_to_jump", "dancer_to_seedance")
NON_FACE = np.r_[0:23, 91:133]  # COCO-133 rows whose raw landmarks the fixture stores


@pytest.mark.parametrize("case", CASES)
def test_mapping_of_raw_landmarks_matches_stored_keypoints(case, align_case):
    frames = align_case(case)["mediapipe"]["frames"]
    checked = 0
    for f in frames:
        raw = f["mediapipe_raw_xyz_visibility"]
        kps, scores = mediapipe_to_coco133(
            raw.get("pose"), None, raw.get("left_hand"), raw.get("right_hand"), f["W"], f["H"]
        )
        exp_k, exp_s = np.array(f["coco133_xy_px"]), np.array(f["coco133_score"])
        np.testing.assert_allclose(kps[NON_FACE], exp_k[NON_FACE], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(scores[NON_FACE], exp_s[NON_FACE])
        assert (scores[23:91] == 0).all()  # no face landmarks given -> face missing
        for part, rows in (("left_hand", slice(91, 112)), ("right_hand", slice(112, 133))):
            assert (exp_s[rows] == 1).all() == f["detected"][part]
        checked += 1
    assert checked == len(frames) and checked >= 9


def test_face_table_is_68_distinct_facemesh_points():
    assert len(MP_FACE68) == 68 and len(set(MP_FACE68)) == 68 and max(MP_FACE68) < 468
    face = np.zeros((468, 3))
    face[list(MP_FACE68), 0] = np.arange(68) / 100.0
    kps, scores = mediapipe_to_coco133(None, face, None, None, 100, 100)
    np.testing.assert_allclose(kps[23:91, 0], np.arange(68))
    assert (scores[23:91] == 1).all() and (scores[:23] == 0).all()


@pytest.mark.parametrize("case", CASES)
def test_coco133_to_wholebody_and_dwpose_dict_match_official(case, align_case):
    """Our neck insertion / OpenPose order / thresholds on the real (MediaPipe) keypoints give
    exactly what the official Wholebody + DWposeDetector code computed from them."""
    data = align_case(case)
    official = data["keypoints"]
    for i, f in enumerate(data["mediapipe"]["frames"]):
        w, h = f["W"], f["H"]
        person = person_from_coco133(np.array(f["coco133_xy_px"]), np.array(f["coco133_score"]), w, h, approximate=True)
        wb = official["wholebody134"][i]
        np.testing.assert_allclose(person.keypoints * [w, h], wb["keypoints_px"], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(person.scores, wb["scores"])
        ours = to_dwpose_dict(person)
        ref = official["dwpose_unaligned"][i]
        np.testing.assert_allclose(ours["bodies"]["candidate"], ref["bodies"]["candidate"], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(ours["bodies"]["subset"], ref["bodies"]["subset"])
        np.testing.assert_allclose(ours["hands"], ref["hands"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours["faces"], ref["faces"], rtol=0, atol=1e-12)
        assert person.approximate


def test_missing_mediapipe_says_what_to_install(monkeypatch):
    from unianimate_core.pose.mediapipe_backend import MediaPipeEstimator

    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(PoseDependencyError, match=r"mediapipe==0\.10\.21"):
        MediaPipeEstimator()


@pytest.mark.mediapipe
@pytest.mark.parametrize("case", CASES)
def test_real_mediapipe_reproduces_the_fixture_keypoints(case, align_case):
    """Runs MediaPipe Holistic 0.10.21 on the stored source images, one instance for the whole
    case like the fixture generator (needs the optional extra; see docs/pose.md, "MediaPipe").

    MediaPipe is not bit-reproducible across machines (XNNPACK kernels), and a Holistic instance
    carries some state between images even in static mode (a face found or not depending on the
    previous image). Bounds, from runs on two machines: body/feet within 0.5 px, hands and face
    within 2 px where both runs found them, and at most one part per case found differently."""
    pytest.importorskip("mediapipe")
    cv2 = pytest.importorskip("cv2")
    from unianimate_core.pose.mediapipe_backend import MediaPipeEstimator

    data = align_case(case)
    mismatches = 0
    with MediaPipeEstimator() as est:
        for f in data["mediapipe"]["frames"]:
            rgb = cv2.imread(str(data["dir"] / f["file"]))[..., ::-1]
            kps, scores, detected = est.coco133(rgb)
            exp_k, exp_s = np.array(f["coco133_xy_px"]), np.array(f["coco133_score"])
            assert detected["pose"] and f["detected"]["pose"]
            np.testing.assert_allclose(kps[:23], exp_k[:23], rtol=0, atol=0.5)
            np.testing.assert_allclose(scores[:23], exp_s[:23], rtol=0, atol=0.05)
            for part, rows in (("face", slice(23, 91)), ("left_hand", slice(91, 112)), ("right_hand", slice(112, 133))):
                if detected[part] != f["detected"][part]:
                    mismatches += 1
                elif detected[part]:
                    np.testing.assert_allclose(kps[rows], exp_k[rows], rtol=0, atol=2.0)
    assert mismatches <= 1
    with MediaPipeEstimator() as est:
        frame = est.detect(cv2.imread(str(data["dir"] / "source" / "reference.png"))[..., ::-1])
    assert len(frame.people) == 1 and frame.people[0].approximate and frame.people[0].visible()[:18].sum() >= 12
