"""Rendering parity with the official ``draw_pose`` (pixel-exact) and the size/colour options.

Pixel-exact on purpose: OpenCV rasterises ellipses, polygons, circles and lines with integer
arithmetic, and every release the tests allow (requirements-test.txt: 4.10 to 5.1) draws these
fixtures (made with OpenCV 5.0) identically - checked release by release, see docs/testing.md.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from unianimate_core.pose.errors import PoseInputError  # noqa: E402
from unianimate_core.pose.image import swap_red_blue  # noqa: E402
from unianimate_core.pose.keypoints import Person, PoseFrame, from_dwpose_dict  # noqa: E402
from unianimate_core.pose.render import canvas_size, draw_dwpose_dict, render_pose, render_poses  # noqa: E402

CASES = ["full", "missing", "edges", "no_neck"]


@pytest.mark.parametrize("name", CASES)
def test_official_dict_drawing_is_pixel_exact(name, render_cases, render_dir, read_png):
    case = render_cases["cases"][name]
    without, with_face = draw_dwpose_dict(case["input"], 768, 512)
    note = f"OpenCV {cv2.__version__} (pixel-exact drawing verified on 4.10-5.1, docs/testing.md)"
    np.testing.assert_array_equal(without, read_png(render_dir / case["outputs"]["canvas_without_face"]), err_msg=note)
    np.testing.assert_array_equal(with_face, read_png(render_dir / case["outputs"]["canvas_with_face"]), err_msg=note)


@pytest.mark.parametrize("name", CASES)
def test_person_rendering_matches_official_in_both_colour_conventions(name, render_cases, render_dir, read_png):
    case = render_cases["cases"][name]
    person = from_dwpose_dict(case["input"])
    expected = read_png(render_dir / case["outputs"]["canvas_without_face"])
    np.testing.assert_array_equal(render_pose(person, colors="openpose"), expected)
    # The trained look: what the official JPEGs contain, i.e. R and B swapped.
    np.testing.assert_array_equal(render_pose(person), expected[..., ::-1])
    np.testing.assert_array_equal(render_pose(PoseFrame(512, 768, [person])), expected[..., ::-1])
    with_face = read_png(render_dir / case["outputs"]["canvas_with_face"])
    np.testing.assert_array_equal(render_pose(person, colors="openpose", draw_face=True), with_face)


def test_default_colours_match_the_jpeg_the_official_code_wrote(render_cases, render_dir, read_png):
    """The official JPEG (quality 95) is lossy: compare means. Our default must be the close one."""
    person = from_dwpose_dict(render_cases["cases"]["full"]["input"])
    jpeg = read_png(render_dir / "full_woface_as_saved_by_reference.jpg").astype(np.float64)
    ours = render_pose(person).astype(np.float64)
    openpose = render_pose(person, colors="openpose").astype(np.float64)
    assert np.abs(ours - jpeg).mean() < 1.0
    assert np.abs(openpose - jpeg).mean() > 3 * np.abs(ours - jpeg).mean()


@pytest.mark.parametrize("tag", ["astronaut", "astronaut.nodet", "grace_hopper", "grace_hopper.nodet"])
def test_dwpose_fixture_renders(tag, dwpose_meta, dwpose_dir, read_png):
    meta = dwpose_meta["images"][tag]
    expected = read_png(dwpose_dir / meta["render"])
    np.testing.assert_array_equal(draw_dwpose_dict(meta["dwpose_dict"])[0], expected)
    np.testing.assert_array_equal(render_pose(from_dwpose_dict(meta["dwpose_dict"]), colors="openpose"), expected)


def test_part_toggles_equal_drawing_without_those_parts(render_cases):
    pose = render_cases["cases"]["full"]["input"]
    person = from_dwpose_dict(pose)
    no_hands = copy.deepcopy(pose)
    no_hands["hands"] = np.full((2, 21, 2), -1.0)
    np.testing.assert_array_equal(render_pose(person, colors="openpose", draw_hands=False), draw_dwpose_dict(no_hands)[0])
    no_feet = copy.deepcopy(pose)
    no_feet["bodies"]["subset"] = [list(pose["bodies"]["subset"][0][:18]) + [-1, -1]]
    np.testing.assert_array_equal(render_pose(person, colors="openpose", draw_feet=False), draw_dwpose_dict(no_feet)[0])
    body_only_feet = render_pose(person, colors="openpose", draw_body=False, draw_hands=False)
    assert body_only_feet.any() and body_only_feet.sum() < render_pose(person, colors="openpose").sum() / 10


def test_canvas_rules():
    assert canvas_size(512, 768) == (512, 768)
    assert canvas_size(256, 384) == (512, 768)
    assert canvas_size(768, 1216) == (512, 811)
    assert canvas_size(768, 512) == (768, 512)
    assert canvas_size(1024, 1024) == (512, 512)
    assert canvas_size(768, 1216, "official") == (512, 768)
    assert canvas_size(768, 1216, "target") == (768, 1216)
    assert max(canvas_size(8, 16000)) == 4096
    with pytest.raises(PoseInputError):
        canvas_size(512, 768, "bogus")  # type: ignore[arg-type]


def test_other_sizes_draw_then_resize_with_pil_bilinear(render_cases):
    from PIL import Image

    person = from_dwpose_dict(render_cases["cases"]["full"]["input"])
    official = render_pose(person)
    small = render_pose(person, 256, 384)
    np.testing.assert_array_equal(small, np.asarray(Image.fromarray(official).resize((256, 384), Image.BILINEAR)))
    big = render_pose(person, 768, 1216, canvas="official")
    np.testing.assert_array_equal(big, np.asarray(Image.fromarray(official).resize((768, 1216), Image.BILINEAR)))
    # Landscape: the auto canvas has the target size, drawn directly (no resize, crisp sticks).
    landscape = render_pose(person, 768, 512)
    np.testing.assert_array_equal(landscape, render_pose(person, 768, 512, canvas="target"))
    assert landscape.shape == (512, 768, 3) and set(np.unique(landscape)) <= set(np.unique(official)) | {0}


def test_render_poses_and_empty_inputs():
    out = render_poses([None, PoseFrame(64, 64), Person.empty()], 64, 96)
    assert out.shape == (3, 96, 64, 3) and out.dtype == np.uint8 and not out.any()
    assert render_poses([], 64, 96).shape == (0, 96, 64, 3)


def test_bad_render_arguments_are_actionable():
    with pytest.raises(PoseInputError, match="colors"):
        render_pose(None, colors="bgr")  # type: ignore[arg-type]
    with pytest.raises(PoseInputError, match="positive"):
        render_pose(None, 0, 10)
    with pytest.raises(PoseInputError, match="render_pose takes"):
        render_pose("a pose")  # type: ignore[arg-type]


def test_huge_coordinates_do_not_crash(render_cases):
    person = from_dwpose_dict(render_cases["cases"]["full"]["input"])
    person.keypoints[2] = [1e12, -1e12]
    person.keypoints[100] = [1e30, 0.5]
    image = render_pose(person)
    assert image.shape == (768, 512, 3)


def test_swap_red_blue_round_trip():
    image = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    swapped = swap_red_blue(image)
    np.testing.assert_array_equal(swapped[..., 0], image[..., 2])
    np.testing.assert_array_equal(swap_red_blue(swapped), image)
    torch = pytest.importorskip("torch")
    t = torch.rand(1, 4, 4, 3)
    assert torch.equal(swap_red_blue(t)[..., 2], t[..., 0])
    with pytest.raises(PoseInputError):
        swap_red_blue(np.zeros((4, 4)))
