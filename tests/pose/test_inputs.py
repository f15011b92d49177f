"""Bad inputs through the public pose API: each gives a PoseInputError naming the problem (never a
bare TypeError/ValueError/MemoryError, never a silently wrong result)."""
from __future__ import annotations

import numpy as np
import pytest

from unianimate_core.pose import (
    AlignConfig, Person, PoseFrame, align_poses, canvas_size, default_search_dirs, extract_poses, fit_frame,
    from_dwpose_dict, from_pose_keypoint, person_from_wholebody, render_pose, render_poses, select_person,
    smooth_sequence, to_pose_keypoint, to_rgb_uint8,
)
from unianimate_core.pose.errors import PoseAlignmentError, PoseInputError

NUM = 134


def _person(seed: int = 0) -> Person:
    rng = np.random.default_rng(seed)
    return Person(rng.uniform(0.2, 0.8, (NUM, 2)), np.full(NUM, 0.9))


FRAME = PoseFrame(512, 768, [_person()])


class _Estimator:
    """Records how often it was asked to detect."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image, max_people=None):
        self.calls += 1
        return PoseFrame(image.shape[1], image.shape[0], [_person()])


@pytest.mark.parametrize("call,match", [
    (lambda: render_pose(FRAME, 100_000, 100_000, canvas="target"), "16384"),  # was a 28 GiB MemoryError
    (lambda: render_pose(FRAME, 1.5, 10), "whole numbers"),  # was truncated to 1 px
    (lambda: render_pose(FRAME, threshold=float("nan")), "threshold"),  # was an empty image
    (lambda: render_poses([], "a", 4), "integers"),
    (lambda: render_poses(None), "sequence of poses"),
    (lambda: render_poses(FRAME), "sequence of poses"),
    (lambda: canvas_size(0, 5), "positive"),  # was ZeroDivisionError
])
def test_rendering_arguments(call, match):
    pytest.importorskip("cv2")
    with pytest.raises(PoseInputError, match=match):
        call()


def test_render_poses_accepts_any_iterable():
    pytest.importorskip("cv2")
    images = render_poses((f for f in [FRAME, None]), 64, 96)
    assert images.shape == (2, 96, 64, 3) and images[0].any() and not images[1].any()


@pytest.mark.parametrize("call,match", [
    (lambda: align_poses(None, [FRAME]), "reference"),  # was an AssertionError
    (lambda: align_poses(FRAME, None), "sequence of PoseFrames"),  # was a TypeError
    (lambda: align_poses(FRAME, FRAME), "wrap a single frame in a list"),
    (lambda: align_poses(FRAME, [FRAME], auto_window=2.5), "auto_window"),
    (lambda: align_poses(FRAME, [FRAME], person="index", person_index=1.5), "person_index"),  # was silently empty
    (lambda: align_poses(FRAME, [FRAME], smoothing="a"), "smoothing"),
    (lambda: align_poses(FRAME, [FRAME], threshold="a"), "threshold"),
    (lambda: align_poses(FRAME, [FRAME], threshold=2.0), "threshold"),  # was 'no person in the reference'
    (lambda: align_poses(FRAME, [FRAME], min_length="a"), "min_length"),
    (lambda: select_person(PoseFrame(1, 1, [_person(), _person(1)]), "index", 1.5), "integer"),
])
def test_alignment_arguments(call, match):
    with pytest.raises((PoseInputError, PoseAlignmentError), match=match):
        call()


def test_alignment_takes_generators_and_numpy_indices():
    out = align_poses(FRAME, (f for f in [FRAME, None]), AlignConfig(calibration=np.int64(0)))
    assert [len(f.people) for f in out] == [1, 0]


@pytest.mark.parametrize("call,match", [
    (lambda: PoseFrame(10, 10, ["a person"]), "list of Person"),  # was an AttributeError much later
    (lambda: PoseFrame(10, 10, _person()), "list of Person"),
    (lambda: person_from_wholebody(np.ones((NUM, 2)), np.ones(NUM), 0, 5), "positive"),  # was inf -> all missing
    (lambda: from_dwpose_dict({"bodies": {"candidate": np.zeros((20, 2)), "subset": np.arange(20.0)[None]}},
                              person=-1), "person"),  # was the last person, silently
    (lambda: from_dwpose_dict({"bodies": {"candidate": np.zeros((20, 2)), "subset": np.arange(20.0)[None]},
                               "hands": np.zeros((3, 5))}), "not a DWPose dict"),
    (lambda: from_dwpose_dict([1, 2]), "not a DWPose dict"),
    (lambda: fit_frame(None, 5, 5), "PoseFrame"),
    (lambda: fit_frame(FRAME, "a", 5), "integers"),
    (lambda: smooth_sequence([FRAME], float("nan")), "sigma"),
])
def test_keypoint_container_arguments(call, match):
    with pytest.raises(PoseInputError, match=match):
        call()


def test_official_dict_with_nan_subset_entries_reads_them_as_missing():
    subset = np.arange(20.0)[None]
    subset[0, 3] = np.nan
    person = from_dwpose_dict({"bodies": {"candidate": np.full((20, 2), 0.5), "subset": subset}})
    assert person.visible()[2] and not person.visible()[3]
    assert PoseFrame(4, 4, None).people == []


@pytest.mark.parametrize("call,match", [
    (lambda: from_pose_keypoint({"people": []}, canvas=5), "canvas"),
    (lambda: from_pose_keypoint(b"\xff\xfe\x00"), "JSON"),
    (lambda: to_pose_keypoint(FRAME, threshold=float("nan")), "threshold"),
])
def test_pose_keypoint_arguments(call, match):
    with pytest.raises(PoseInputError, match=match):
        call()


def test_malformed_extras_are_ignored():
    people = [{"bbox_2d": ["a", "b", "c", "d"], "approximate": "false"}, {"approximate": True}]
    frame = from_pose_keypoint({"people": people, "canvas_width": 4, "canvas_height": 4})[0]
    assert frame.people[0].box is None and not frame.people[0].approximate  # bool("false") was True
    assert frame.people[1].approximate


@pytest.mark.parametrize("image,match", [
    (np.full((4, 4, 3), 200.0), r"\[0, 1\]"),  # 0..255 floats were clipped to a white image
    (np.full((4, 4, 3), -1.0), r"\[0, 1\]"),  # [-1, 1] images were clipped to black
])
def test_float_images_in_another_range_are_refused(image, match):
    with pytest.raises(PoseInputError, match=match):
        to_rgb_uint8(image)


def test_float_overshoot_is_clamped():
    image = np.array([[[-0.01, 0.5, 1.02]]])
    np.testing.assert_array_equal(to_rgb_uint8(image), [[[0, 128, 255]]])


def test_extraction_arguments_are_checked_before_running_the_detector():
    est = _Estimator()
    with pytest.raises(PoseInputError, match="index"):
        extract_poses(est, [np.zeros((4, 4, 3), np.uint8)], person="index", index=-1)
    with pytest.raises(PoseInputError, match="frames"):
        extract_poses(est, None)
    assert est.calls == 0


def test_one_extra_search_folder_given_as_a_string(tmp_path):
    dirs = default_search_dirs(extra_dirs=str(tmp_path), environ={})
    # not one folder per character: the folder itself, then its model sub-folders
    assert dirs == [tmp_path] + [tmp_path / sub for sub in ("dwpose", "unianimate", "checkpoints", "clip_vision", "vae")]
