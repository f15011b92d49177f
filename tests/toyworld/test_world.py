"""The synthetic world: determinism, splits, ground truth consistent with the pixels, motion, sizes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from unianimate_core.pose.keypoints import PoseFrame
from unianimate_core.toyworld import LIMB_HUES, LIMBS, Motion, ToyWorldError, World, WorldConfig, nth_id, split_of
from unianimate_core.toyworld.character import LIMB_MIN_CHROMA, OTHER_MAX_CHROMA, sample_character
from unianimate_core.toyworld.motion import I_YAW
from unianimate_core.toyworld.render import hsv_chroma
from unianimate_core.toyworld.skeleton import LIMB_LABEL0, OCCLUDER, pose_body

SMALL = WorldConfig(width=64, height=64, frames=6)


@pytest.fixture(scope="module")
def world128() -> World:
    return World(WorldConfig(width=128, height=128, frames=8))


@pytest.fixture(scope="module")
def sharp128() -> World:
    return World(WorldConfig(width=128, height=128, frames=8, render="sharp"))


def test_same_config_and_index_give_identical_clips_in_any_order():
    w = World(SMALL)
    later = w.clip("train", 5)
    fresh = World(SMALL)
    _ = fresh.clip("train", 3)  # rendering another clip first must not change clip 5
    again = fresh.clip("train", 5)
    for name in ("frames", "reference", "keypoints", "scores", "labels"):
        np.testing.assert_array_equal(getattr(later, name), getattr(again, name))
    assert not np.array_equal(later.frames, w.clip("train", 6).frames)
    assert not np.array_equal(later.frames, World(SMALL, seed=1).clip("train", 5).frames)


def test_splits_are_disjoint_in_characters_and_motions():
    w = World(SMALL)
    seen: dict[str, tuple[set, set]] = {}
    for split in ("train", "val", "test"):
        chars, motions = set(), set()
        for i in range(40):
            ids = w.clip_ids(split, i)
            assert split_of(ids["character_id"]) == split and split_of(ids["motion_id"]) == split
            chars.add(ids["character_id"])
            motions.add(ids["motion_id"])
        seen[split] = (chars, motions)
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not seen[a][0] & seen[b][0] and not seen[a][1] & seen[b][1]
    assert [nth_id("train", n) for n in range(10)] == [0, 1, 2, 3, 4, 5, 6, 7, 10, 11]
    assert [nth_id("test", n) for n in range(3)] == [9, 19, 29]


@pytest.mark.parametrize("size", [(64, 64), (128, 192), (256, 128)])
def test_any_multiple_of_8_renders_with_consistent_shapes(size):
    w, h = size
    clip = World(WorldConfig(width=w, height=h, frames=3)).clip("val", 1)
    assert clip.frames.shape == (3, h, w, 3) and clip.frames.dtype == np.uint8
    assert clip.reference.shape == (h, w, 3)
    assert clip.pose_images().shape == (3, h, w, 3)
    assert clip.limb_masks().shape == (3, len(LIMBS), h, w)
    assert clip.keypoints.shape == (3, 134, 2) and clip.scores.shape == (3, 134)
    assert isinstance(clip.pose_frames()[0], PoseFrame)


@pytest.mark.parametrize("bad, match", [(dict(width=100), "multiple of 8"), (dict(height=0), "positive"),
                                        (dict(frames=0), "frames"), (dict(reference="last"), "reference"),
                                        (dict(fps=-1), "fps"), (dict(characters=(10, 0, 1)), "pool"),
                                        (dict(render="smooth"), "render")])
def test_bad_options_are_refused_with_the_fix(bad, match):
    with pytest.raises(ToyWorldError, match=match):
        WorldConfig(**bad)


def test_bad_split_and_index():
    w = World(SMALL)
    with pytest.raises(ToyWorldError, match="split"):
        w.clip("training", 0)
    with pytest.raises(ToyWorldError, match="index"):
        w.clip("train", -1)


def test_bone_lengths_are_the_characters_in_every_pose():
    """3-D forward kinematics: limb segment lengths equal the character's, whatever the pose."""
    spec = sample_character(3)
    motion = Motion(12)
    lengths = np.array([spec.upper_arm, spec.forearm] * 2 + [spec.thigh, spec.shin] * 2)
    for vec in motion.pose(np.linspace(0, 20, 40)):
        axes = pose_body(spec, vec).limb_axes
        np.testing.assert_allclose(np.linalg.norm(axes[:, 0] - axes[:, 1], axis=1), lengths, rtol=1e-12)


def test_motion_prefix_never_changes_when_extended():
    short = Motion(7).pose(np.linspace(0, 4, 33))
    m = Motion(7)
    m.pose(np.array([40.0]))  # extend first
    np.testing.assert_allclose(m.pose(np.linspace(0, 4, 33)), short, atol=1e-12)


def test_motion_is_continuous_between_frames():
    """No teleporting: over 4 clips x 64 frames at 8 fps the neck and hips move by less than a tenth of
    the frame between frames, no visible joint by 0.4 (measured: <= 0.31, a wrist swinging during a
    walk that turns round), and the stage position by less than 0.1 body heights (walks <= 0.6 body/s)."""
    w = World(WorldConfig(width=128, height=128, frames=64))
    for i in range(4):
        clip = w.clip("train", i)
        both = (clip.scores[1:, :18] > 0) & (clip.scores[:-1, :18] > 0)
        step = np.linalg.norm(np.diff(clip.keypoints[:, :18], axis=0), axis=-1)
        assert both.any() and step[both].max() < 0.4
        core = both[:, [1, 8, 11]]
        assert step[:, [1, 8, 11]][core].max() < 0.1
        assert np.abs(np.diff(Motion(clip.motion_id).x(clip.times))).max() < 0.1


def test_motions_cover_walks_turns_and_exits():
    kinds, exits, yaw_span = set(), 0, 0.0
    for mid in range(60):
        m = Motion(mid)
        m.pose(np.array([12.0]))
        kinds.update(p.kind for p in m.primitives)
        exits += sum(bool(p.p.get("exits")) for p in m.primitives)
        if m.primitives[0].kind == "turn":
            yaws = m.pose(np.linspace(0, m.primitives[0].duration, 10))[:, I_YAW]
            yaw_span = max(yaw_span, float(np.ptp(yaws)))
    assert kinds == {"walk", "dance", "jack", "turn", "wave", "idle"}
    assert exits >= 3
    assert yaw_span > math.pi / 2  # at least one turn shows the side or the back


def _exit_clip():
    """A clip whose body walks out of a 64x64 frame (found among the first motions)."""
    w = World(WorldConfig(width=64, height=64, frames=40, occluder_prob=0.0))
    for mid in range(100):
        m = Motion(mid)
        m.pose(np.array([6.0]))
        if m.primitives[0].kind == "walk" and m.primitives[0].p["exits"]:
            clip = w.render(character_id=1, motion_id=mid, scene_seed=3)
            if (clip.scores[:, :18].sum(1) == 0).any():
                return clip
    pytest.fail("no exiting walk among the first 100 motions")


def test_bodies_leave_the_frame_and_their_keypoints_become_invisible():
    clip = _exit_clip()
    gone = clip.scores[:, :18].sum(1) == 0
    # every keypoint marked visible is inside the frame, and the body pixels vanish with it
    vis = clip.scores > 0
    k = clip.keypoints[vis]
    assert ((k >= 0) & (k < 1)).all()
    assert clip.body_mask()[gone].sum() < 0.01 * clip.body_mask()[~gone].sum(axis=(1, 2)).max() * gone.sum()


def test_occluded_keypoints_are_invisible_and_covered():
    w = World(WorldConfig(width=128, height=128, frames=8, occluder_prob=1.0))
    hidden = 0
    for i in range(6):
        clip = w.clip("train", i)
        px = np.clip((clip.keypoints * 128).astype(int), 0, 127)
        under = clip.labels[np.arange(8)[:, None], px[..., 1], px[..., 0]] == OCCLUDER
        assert (clip.scores[under] == 0).all()
        hidden += int(under.sum())
    assert hidden > 0


def test_colour_rule_limbs_saturated_everything_else_muted(sharp128):
    """The detector's premise, checked on the pixels: inside a limb (eroded by one pixel) the limb's hue
    and chroma >= 0.5 * 0.72 (band pattern); inside every other part and on the background away from
    the body (2 px: a limb thinner than a pixel can leave a tinted pixel without a label sample)
    chroma <= 0.25 (+1/255: 8-bit rounding moves max and min by up to half a level each)."""
    import cv2

    for i in range(4):
        clip = sharp128.clip("train", i)
        hue, chroma = hsv_chroma(clip.frames.astype(np.float32) / 255.0)
        for f in range(len(clip)):
            lab = clip.labels[f]
            for k in range(len(LIMBS)):
                core = cv2.erode((lab == LIMB_LABEL0 + k).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
                if core.any():
                    assert chroma[f][core].min() >= LIMB_MIN_CHROMA * 0.72 - 2 / 255
                    dh = np.abs((hue[f][core] - LIMB_HUES[k] + 180) % 360 - 180)
                    assert dh.max() < 3.0
            body = (lab > 0) & (lab != OCCLUDER)
            far = ~cv2.dilate(body.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            assert chroma[f][far].max() <= OTHER_MAX_CHROMA + 1 / 255
            for label in set(range(1, LIMB_LABEL0)) | {OCCLUDER}:
                core = cv2.erode((lab == label).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
                if core.any():
                    assert chroma[f][core].max() <= OTHER_MAX_CHROMA + 1 / 255, label


def test_keypoints_sit_on_their_limbs(world128):
    """The exact ground truth agrees with the image: the middle of each visible limb's GT
    segment (shoulder-elbow, ...) is a pixel of that limb's mask (80 % of the limb visible)."""
    rows = [(2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (11, 12), (12, 13)]
    checked = 0
    for i in range(4):
        clip = world128.clip("val", i)
        for f in range(len(clip)):
            for k, (a, b) in enumerate(rows):
                if clip.limb_visibility[f, k] < 0.8 or not (clip.scores[f, a] and clip.scores[f, b]):
                    continue
                mid = (clip.keypoints[f, a] + clip.keypoints[f, b]) / 2 * 128
                assert clip.labels[f, int(mid[1]), int(mid[0])] == LIMB_LABEL0 + k
                checked += 1
    assert checked > 50


def test_pose_images_are_the_pose_pipeline_render_of_the_ground_truth(world128):
    from unianimate_core.pose.render import render_poses

    clip = world128.clip("train", 1)
    np.testing.assert_array_equal(clip.pose_images(), render_poses(clip.pose_frames(), 128, 128))
    assert clip.pose_images().max() > 100  # something drawn


def test_block_frames_are_the_block_means_of_the_sharp_drawing():
    """render="blocks": each 8x8 block is one colour, the mean of the sharp frame's block. 8-bit rounding:
    the sharp pixels are rounded (the mean of them moves by <= 0.5 level) and so is the block colour
    (<= 0.5): at most one level apart."""
    sharp = World(SMALL, render="sharp").clip("train", 2)
    blocks = World(SMALL).clip("train", 2)
    f = blocks.frames.astype(np.float64)
    assert (f == np.repeat(np.repeat(f[:, ::8, ::8], 8, 1), 8, 2)).all()
    means = sharp.frames.astype(np.float64).reshape(6, 8, 8, 8, 8, 3).mean(axis=(2, 4))
    assert np.abs(f[:, ::8, ::8] - means).max() <= 1.0 + 1e-9
    np.testing.assert_array_equal(sharp.keypoints, blocks.keypoints)
    np.testing.assert_array_equal(sharp.labels, blocks.labels)


def test_reference_rule_first_is_frame_zero():
    clip = World(SMALL, reference="first").clip("train", 4)
    np.testing.assert_array_equal(clip.reference, clip.frames[0])
    np.testing.assert_array_equal(clip.reference_keypoints, clip.keypoints[0])


def test_long_clip_renders_256_frames():
    clip = World(WorldConfig(width=64, height=64, frames=256, supersample=1)).clip("test", 0)
    assert clip.frames.shape[0] == 256 and len(set(clip.motion_kinds)) >= 3


def test_dataset_items_are_training_tensors():
    import torch

    from unianimate_core.toyworld import ToyWorldDataset

    ds = ToyWorldDataset(SMALL, "train", length=3)
    item = ds[2]
    assert item["frames"].shape == (6, 3, 64, 64) and item["poses"].shape == (6, 3, 64, 64)
    assert item["reference"].shape == item["reference_pose"].shape == (3, 64, 64)
    assert item["frames"].dtype == torch.float32 and 0 <= float(item["frames"].min()) and float(item["frames"].max()) <= 1
    with pytest.raises(IndexError):
        ds[3]


def test_export_writes_a_video_dataset_that_reads_back(tmp_path):
    import json

    from unianimate_core.pipeline.video import read_clip
    from unianimate_core.pose.pose_keypoint import from_pose_keypoint
    from unianimate_core.toyworld.__main__ import main

    assert main(["export", "--out", str(tmp_path), "--clips", "1", "--frames", "3", "--width", "64", "--height", "64",
                 "--split", "val", "--start", "2"]) == 0
    clip = World(WorldConfig(width=64, height=64, frames=3)).clip("val", 2)
    video = read_clip(tmp_path / "clip_00002.mp4")
    assert len(video.frames) == 3 and video.size == (64, 64)
    # H.264 is lossy: the decoded frames are close to the ground truth, not equal
    assert np.abs(np.stack(video.frames).astype(int) - clip.frames.astype(int)).mean() < 8
    poses = from_pose_keypoint(json.loads((tmp_path / "clip_00002.json").read_text()))
    vis = clip.scores[0] > 0
    np.testing.assert_allclose(poses[0].people[0].keypoints[vis], clip.keypoints[0][vis], atol=1e-9)
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["clips"][0]["character_id"] == clip.character.character_id


def test_every_clip_shows_its_character_and_so_does_the_reference():
    """Bodies may walk out of the frame, but no clip misses its character entirely and the reference
    frame shows it (over 40 clips of each split; the start/reference times are redrawn until the
    body is on the stage)."""
    w = World(WorldConfig(width=64, height=64, frames=8, occluder_prob=0.0))
    for split in ("train", "val", "test"):
        for i in range(40):
            clip = w.clip(split, i)
            assert clip.body_mask().mean(axis=(1, 2)).max() >= 0.01, (split, i)
            ref = (clip.reference_labels > 0).mean()
            assert ref >= 0.01, (split, i)
