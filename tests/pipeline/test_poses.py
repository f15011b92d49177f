"""The pose stage on the demo's pre-extracted keypoints: backend choice, alignment, renders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unianimate_core.pipeline.errors import PipelineError
from unianimate_core.pipeline.poses import choose_extractor, load_keypoints_file, prepare_poses
from unianimate_core.pipeline.video import read_clip, read_image

DEMO = Path(__file__).resolve().parents[2] / "demo"


def test_demo_keypoints_file_loads_every_frame():
    ref, frames = load_keypoints_file(DEMO / "driving_keypoints.json")
    assert ref is not None and ref.size == (400, 400) and len(frames) == 16
    assert frames[0].size == (176, 350) and len(frames[0].people) == 1


def test_keypoints_backend_is_the_last_resort_and_errors_name_the_fix():
    name, ext = choose_extractor("keypoints", None, True)
    assert name == "keypoints" and ext is None
    with pytest.raises(PipelineError, match="yolox_l.onnx"):
        choose_extractor("dwpose", None, True)
    with pytest.raises(PipelineError, match="unknown pose backend"):
        choose_extractor("openpose", None, True)


def test_demo_poses_equal_the_official_aligned_renders(fixtures_dir):
    """The demo path (keypoints file -> alignment -> render) reproduces the official pose images.

    tests/fixtures/pose_align/anim2_to_jump/render holds the official alignment + drawing of the same
    MediaPipe keypoints (PNG channel order = the code's colour lists); the model was trained on the
    R/B-swapped JPEGs, which is what we render. The demo clip is 176 px wide instead of 175 and its
    keypoints are rounded to 1e-4 px; alignment maps everything onto the reference canvas, so the
    renders still match exactly.
    """
    clip = read_clip(DEMO / "driving.mp4")
    indices = list(range(16))
    stage = prepare_poses(read_image(DEMO / "reference.png"), clip.frames, indices, (512, 768),
                          backend="keypoints", keypoints_file=DEMO / "driving_keypoints.json")
    assert stage.backend == "keypoints" and len(stage.poses) == 16
    official = fixtures_dir / "pose_align" / "anim2_to_jump" / "render"
    for ours, idx in zip(stage.poses, indices):
        theirs = np.asarray(Image.open(official / f"{idx:04d}.png").convert("RGB"))[..., ::-1]
        assert np.array_equal(ours, theirs), f"frame {idx}"
    ref = np.asarray(Image.open(official / "ref_pose.png").convert("RGB"))[..., ::-1]
    assert np.array_equal(stage.reference_pose, ref)


def test_too_few_keypoint_frames_is_an_error():
    clip = read_clip(DEMO / "driving.mp4")
    with pytest.raises(PipelineError, match="frame 20"):
        prepare_poses(read_image(DEMO / "reference.png"), clip.frames, [0, 20], (64, 64), backend="keypoints",
                      keypoints_file=DEMO / "driving_keypoints.json")


def test_dwpose_backend_is_used_when_its_files_are_found(fixtures_dir):
    """auto picks DWPose when both ONNX files exist (stand-in models of the fixtures: constant keypoints)."""
    pytest.importorskip("onnxruntime")
    files = (fixtures_dir / "dwpose" / "yolox_l.onnx", fixtures_dir / "dwpose" / "dw-ll_ucoco_384.onnx")
    clip = read_clip(DEMO / "driving.mp4", limit=2)
    stage = prepare_poses(read_image(DEMO / "reference.png"), clip.frames, [0, 1], (128, 192), backend="auto",
                          dwpose_files=files, keypoints_file=DEMO / "driving_keypoints.json")
    assert stage.backend == "dwpose" and len(stage.poses) == 2
    assert stage.reference_pose.shape == (192, 128, 3) and stage.reference_pose.any()


def test_mediapipe_backend_is_second_choice_and_tracks_the_clip(monkeypatch):
    """Without DWPose files, auto uses the MediaPipe backend (per-image for the photo, tracking mode
    for the clip) before falling back to the keypoints file. MediaPipe itself is faked here; the
    backend's own tests run the real one."""
    import sys
    import types

    import unianimate_core.pose.mediapipe_backend as backend

    ref_kp, frames_kp = load_keypoints_file(DEMO / "driving_keypoints.json")
    made = []

    class FakeEstimator:
        def __init__(self, video: bool = False) -> None:
            self.video, self.seen = video, 0
            made.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def detect(self, image, max_people=None):
            if not self.video:
                return ref_kp
            self.seen += 1
            return frames_kp[self.seen - 1]

    monkeypatch.setitem(sys.modules, "mediapipe", types.ModuleType("mediapipe"))
    monkeypatch.setattr(backend, "MediaPipeEstimator", FakeEstimator)
    clip = read_clip(DEMO / "driving.mp4", limit=3)
    stage = prepare_poses(read_image(DEMO / "reference.png"), clip.frames, [0, 1, 2], (128, 192), backend="auto",
                          dwpose_files=None, keypoints_file=DEMO / "driving_keypoints.json")
    assert stage.backend == "mediapipe"
    assert [e.video for e in made] == [False, True] and made[1].seen == 3
    expected = prepare_poses(read_image(DEMO / "reference.png"), clip.frames, [0, 1, 2], (128, 192),
                             backend="keypoints", keypoints_file=DEMO / "driving_keypoints.json")
    assert all(np.array_equal(a, b) for a, b in zip(stage.poses, expected.poses))
