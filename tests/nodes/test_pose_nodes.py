"""UniAnimatePoseExtractor / UniAnimatePoseAlign with the tiny DWPose ONNX fixtures (CPU)."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_fake.models import FakeClipVision, FakeVAE
from node_helpers import images, install_tiny_model

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "dwpose"
OPENPOSE = "openpose"


def photo(name: str) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(FIX / name).convert("RGB"))).float()[None] / 255


@pytest.fixture
def dwpose_models(host):
    d = host.models / "dwpose"
    d.mkdir(parents=True)
    for f in ("yolox_l.onnx", "dw-ll_ucoco_384.onnx", "yolox_l_empty.onnx"):
        shutil.copy(FIX / f, d / f)
    return d


@pytest.fixture
def nodes(host):
    classes = host.node_classes()
    return classes["UniAnimatePoseExtractor"], classes["UniAnimatePoseAlign"]


def test_extractor_outputs_pose_keypoint_and_trained_style_image(host, nodes, dwpose_models):
    extractor, _ = nodes
    image = photo("astronaut.png")
    keypoints, rendered = extractor.execute(images=image).args
    (frame,) = keypoints
    assert (frame["canvas_height"], frame["canvas_width"]) == tuple(image.shape[1:3])
    person = frame["people"][0]
    assert len(person["pose_keypoints_2d"]) == 54 and set(person["pose_keypoints_2d"][2::3]) <= {0.0, 1.0}
    assert rendered.shape == (1, 512, 512, 3) and rendered.dtype == torch.float32
    assert 0 <= rendered.min() and rendered.max() <= 1 and rendered.max() > 0
    # the same keypoints through the core renderer (trained colours) give the same pixels
    pose = host.pack.unianimate_core.pose
    frames = pose.pose_keypoint.from_pose_keypoint(keypoints)
    expected = pose.render.render_pose(frames[0], 512, 512, colors="unianimate")
    assert torch.equal(rendered[0], torch.from_numpy(expected).float() / 255)
    # OpenPose colours are the same drawing with R and B swapped back
    _, openpose = extractor.execute(images=image, colors=OPENPOSE).args
    assert torch.equal(openpose, rendered[..., [2, 1, 0]])


def test_old_colour_labels_of_saved_workflows_still_work(nodes, dwpose_models):
    """Workflows saved before the short keys store display labels; validation accepts them, the nodes map them."""
    extractor, align = nodes
    old = "OpenPose (standard colours)"
    assert extractor.validate_inputs(colors=old) is True and align.validate_inputs(colors=old) is True
    assert align.validate_inputs(colors="sepia") == "colors = 'sepia' is not one of unianimate, openpose."
    image = photo("astronaut.png")
    assert torch.equal(extractor.execute(images=image, colors=old).args[1],
                       extractor.execute(images=image, colors="openpose").args[1])


def test_render_keeps_aspect_ratio(nodes, dwpose_models):
    extractor, _ = nodes
    image = torch.nn.functional.interpolate(photo("astronaut.png").permute(0, 3, 1, 2), size=(300, 200)).permute(0, 2, 3, 1)
    _, rendered = extractor.execute(images=image, render_short_side=128).args
    assert rendered.shape == (1, 192, 128, 3)


class BlankOnDark:
    """Wraps the real estimator; frames that are all black get no people (what DWPose's low
    scores amount to on an empty frame; the tiny random fixture model scores anything)."""

    def __init__(self, real):
        self.real = real

    def detect(self, image, max_people=None):
        frame = self.real.detect(image, max_people)
        if float(image.max()) == 0.0:
            frame.people = []
        return frame


@pytest.fixture
def blank_aware(host, monkeypatch):
    cache = host.pack.nodes.pose_nodes._estimators
    real_get = cache.get
    monkeypatch.setattr(cache, "get", lambda *a, **k: BlankOnDark(real_get(*a, **k)))


def test_no_person_anywhere_is_an_error(nodes, dwpose_models, blank_aware):
    extractor, _ = nodes
    with pytest.raises(ValueError, match="No person detected in any of the 2 frames"):
        extractor.execute(images=torch.zeros(2, 64, 64, 3), detector_model="yolox_l_empty.onnx")


def test_frames_without_person_stay_empty(nodes, dwpose_models, blank_aware, caplog):
    extractor, _ = nodes
    person = photo("astronaut.png")
    blank = torch.zeros_like(person)
    with caplog.at_level(logging.WARNING, logger="UniAnimate"):
        keypoints, rendered = extractor.execute(images=torch.cat([person, blank])).args
    assert len(keypoints) == 2 and "no person in 1 of 2 frames (1)" in caplog.text
    assert keypoints[1]["people"] == [] and rendered[1].max() == 0


@pytest.mark.parametrize("images, message", [
    (torch.zeros(0, 64, 64, 3), "empty IMAGE batch"),
    (torch.zeros(1, 64, 64), "MASK"),
    ([{"people": []}], "must be an IMAGE"),
])
def test_extractor_rejects_what_is_not_an_image(nodes, dwpose_models, images, message):
    extractor, _ = nodes
    with pytest.raises(ValueError, match=message):
        extractor.execute(images=images)


def test_missing_model_file_says_where_to_get_it(host, nodes):
    extractor, _ = nodes
    msg = extractor.validate_inputs(detector_model="yolox_l.onnx", pose_model="dw-ll_ucoco_384.onnx")
    assert isinstance(msg, str) and "huggingface.co/yzd-v/DWPose" in msg and str(host.models / "dwpose") in msg
    assert msg.startswith("detector_model: ") and " pose_model: " in msg  # each message names its input
    with pytest.raises(ValueError, match="yolox_l.onnx"):
        extractor.execute(images=photo("astronaut.png"))


def test_models_found_in_controlnet_aux_cache(host, nodes):
    aux = host.base / "custom_nodes" / "comfyui_controlnet_aux" / "ckpts" / "yzd-v" / "DWPose"
    aux.mkdir(parents=True)
    for f in ("yolox_l.onnx", "dw-ll_ucoco_384.onnx"):
        shutil.copy(FIX / f, aux / f)
    host.pack.nodes.folders.register_model_folders()
    extractor, _ = nodes
    assert extractor.validate_inputs() is True


@pytest.fixture
def poses(nodes, dwpose_models):
    extractor, _ = nodes
    ref, _ = extractor.execute(images=photo("astronaut.png")).args
    video = torch.cat([photo("astronaut.png"), photo("astronaut.png").flip(2)])  # a 2-frame "video"
    driving, _ = extractor.execute(images=video).args
    return ref, driving


def test_align_matches_the_core_and_renders_at_sampler_size(host, nodes, poses):
    _, align = nodes
    ref, driving = poses
    aligned, pose_images, ref_image = align.execute(reference_keypoints=ref, driving_keypoints=driving,
                                                    width=128, height=192).args
    assert len(aligned) == 2 and pose_images.shape == (2, 192, 128, 3) and ref_image.shape == (1, 192, 128, 3)
    p = host.pack.unianimate_core.pose
    frames = p.align.align_poses(p.pose_keypoint.from_pose_keypoint(ref)[0], p.pose_keypoint.from_pose_keypoint(driving))
    assert aligned == p.pose_keypoint.to_pose_keypoint(frames)
    assert torch.equal(pose_images[0], torch.from_numpy(p.render.render_pose(frames[0], 128, 192)).float() / 255)


def test_align_off_draws_the_driving_poses(host, nodes, poses):
    _, align = nodes
    ref, driving = poses
    aligned, pose_images, _ = align.execute(reference_keypoints=ref, driving_keypoints=driving, align=False,
                                            width=64, height=64).args
    p = host.pack.unianimate_core.pose
    assert aligned == p.pose_keypoint.to_pose_keypoint(p.pose_keypoint.from_pose_keypoint(driving))


@pytest.mark.parametrize("case, message", [
    ("swapped", "Did you swap"),
    ("empty_reference", "No person in the reference pose"),
    ("calibration", "calibration_frame 5 is past"),
    ("not_keypoints", "must be POSE_KEYPOINT"),
])
def test_align_errors(nodes, poses, case, message):
    _, align = nodes
    ref, driving = poses
    kwargs = dict(reference_keypoints=ref, driving_keypoints=driving)
    if case == "swapped":
        kwargs = dict(reference_keypoints=driving, driving_keypoints=ref)
    elif case == "empty_reference":
        kwargs["reference_keypoints"] = [{**ref[0], "people": []}]
    elif case == "calibration":
        kwargs["calibration_frame"] = 5
    else:
        kwargs["driving_keypoints"] = torch.zeros(2, 8, 8, 3)
    with pytest.raises(ValueError, match=message):
        align.execute(**kwargs)


def test_sampler_takes_pose_keypoint_like_the_rendered_images(host, nodes, poses, tiny_ckpt, tiny_zero_y):
    _, align = nodes
    ref, driving = poses
    aligned, pose_images, ref_image = align.execute(reference_keypoints=ref, driving_keypoints=driving,
                                                    width=64, height=64).args
    model = install_tiny_model(host, tiny_ckpt, tiny_zero_y)
    sampler = host.node_classes()["UniAnimateSampler"]
    common = dict(model=model, vae=FakeVAE(), clip_vision=FakeClipVision(), reference_image=images(1, 64, 64, 1),
                  width=64, height=64, steps=1, max_frames=0)
    from_images = sampler.execute(**common, poses=pose_images, reference_pose=ref_image)[0]["samples"]
    from_keypoints = sampler.execute(**common, poses=aligned, reference_pose=ref)[0]["samples"]
    assert from_keypoints.shape == (2, 4, 8, 8)
    # the reference pose from keypoints is drawn on its own canvas, the image one on the reference canvas:
    # both are the same normalised skeleton, so the pose stacks (and the results) agree
    torch.testing.assert_close(from_keypoints, from_images, rtol=0, atol=0)
