"""Clip extraction: person choice, frames without a person, progress, and the real ONNX path."""
from __future__ import annotations

import numpy as np
import pytest

from unianimate_core.pose.errors import PoseInputError
from unianimate_core.pose.extract import extract_poses
from unianimate_core.pose.keypoints import NUM_KEYPOINTS, Person, PoseFrame


class ScriptedEstimator:
    """Returns prepared frames in order and records the max_people it was asked for."""

    def __init__(self, frames):
        self.frames = list(frames)
        self.calls: list[int | None] = []

    def detect(self, image, max_people=None):
        self.calls.append(max_people)
        frame = self.frames[len(self.calls) - 1]
        return PoseFrame(frame.width, frame.height, frame.people[:max_people] if max_people else frame.people)


def _person(x: float, score: float = 0.9, det: float = 0.5) -> Person:
    kps = np.stack([np.linspace(0.1, 0.5, NUM_KEYPOINTS), np.linspace(0.1, 0.9, NUM_KEYPOINTS)], axis=1) * x
    return Person(kps, np.full(NUM_KEYPOINTS, score), det_score=det)


IMG = np.zeros((8, 6, 3), np.uint8)


def test_missing_frames_empty_or_repeated_and_progress():
    scripted = [PoseFrame(6, 8), PoseFrame(6, 8, [_person(0.2)]), PoseFrame(6, 8, [_person(0.3, score=0.1)]),
                PoseFrame(6, 8, [_person(0.4)]), PoseFrame(6, 8)]
    seen = []
    empty = extract_poses(ScriptedEstimator(scripted), [IMG] * 5, callback=lambda i, n: seen.append((i, n)))
    assert [len(f.people) for f in empty] == [0, 1, 0, 1, 0]  # the low-score person has no body
    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    rep = extract_poses(ScriptedEstimator(scripted), [IMG] * 5, on_missing="repeat")
    xs = [f.people[0].keypoints[0, 0] / 0.1 for f in rep]  # person scale
    np.testing.assert_allclose(xs, [0.2, 0.2, 0.2, 0.4, 0.4])  # leading frame takes the first detection
    assert rep[1].people[0] is not rep[2].people[0]  # copies, not shared objects
    nobody = extract_poses(ScriptedEstimator([PoseFrame(6, 8)] * 2), [IMG] * 2, on_missing="repeat")
    assert [len(f.people) for f in nobody] == [0, 0]


def test_person_choice_and_pose_model_budget():
    two = PoseFrame(6, 8, [_person(0.1, det=0.9), _person(0.9, det=0.4)])
    est = ScriptedEstimator([two] * 4)
    by_score = extract_poses(est, [IMG], person="score")
    by_index = extract_poses(est, [IMG], person="index", index=1)
    largest = extract_poses(est, [IMG], person="largest")
    everyone = extract_poses(est, [IMG], keep_all=True)
    assert est.calls == [1, 2, None, None]  # only the needed boxes go through the pose model
    assert by_score[0].people[0].det_score == 0.9
    assert by_index[0].people[0].det_score == 0.4 and largest[0].people[0].det_score == 0.4
    assert len(everyone[0].people) == 2


def test_bad_options():
    with pytest.raises(PoseInputError, match="on_missing"):
        extract_poses(ScriptedEstimator([]), [], on_missing="skip")  # type: ignore[arg-type]
    with pytest.raises(PoseInputError, match="person"):
        extract_poses(ScriptedEstimator([]), [], person="first")  # type: ignore[arg-type]


def test_real_onnx_clip_to_aligned_renders(dwpose_dir, align_dir):
    """End to end on real frames with the tiny ONNX models: extract -> align -> render."""
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("onnxruntime")
    from unianimate_core.pose.align import align_poses
    from unianimate_core.pose.dwpose import DWPoseEstimator
    from unianimate_core.pose.render import render_poses

    est = DWPoseEstimator(dwpose_dir / "yolox_l.onnx", dwpose_dir / "dw-ll_ucoco_384.onnx", "cpu", threads=1)
    src = align_dir / "anim2_to_jump" / "source"
    frames = [cv2.imread(str(src / f"frame_{i:04d}.png"))[..., ::-1] for i in range(3)]
    ref = est.detect(cv2.imread(str(src / "reference.png"))[..., ::-1])
    poses = extract_poses(est, frames)
    assert [f.size for f in poses] == [(175, 350)] * 3 and all(len(f.people) == 1 for f in poses)
    aligned = align_poses(ref, poses)
    images = render_poses(aligned, 256, 384)
    assert images.shape == (3, 384, 256, 3) and images.any()
