"""Alignment: parity with the official algorithm on real keypoints, and its robust behaviour.

Inputs are the official ``Wholebody`` outputs stored in tests/fixtures/pose_align/<case>/
keypoints.json (``wholebody134``: pixels + raw scores, last entry = reference image); expected
values are the dicts the official code passed to ``draw_pose`` (``aligned``) and its renders.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")

from unianimate_core.pose.align import BONES, AlignConfig, align_poses, choose_calibration, plan_alignment  # noqa: E402
from unianimate_core.pose.errors import PoseAlignmentError, PoseInputError  # noqa: E402
from unianimate_core.pose.keypoints import (  # noqa: E402
    LEFT_HAND,
    NUM_KEYPOINTS,
    Person,
    PoseFrame,
    from_dwpose_dict,
    person_from_wholebody,
    to_dwpose_dict,
)
from unianimate_core.pose.render import render_pose  # noqa: E402
from unianimate_core.pose.smoothing import smooth_keypoints  # noqa: E402

ATOL = 1e-9


def _frames(case: dict) -> list[PoseFrame]:
    kp = case["keypoints"]
    return [
        PoseFrame(w, h, [person_from_wholebody(np.array(wb["keypoints_px"]), np.array(wb["scores"]), w, h)])
        for wb, (w, h) in zip(kp["wholebody134"], kp["image_sizes_WH"])
    ]


def _official(case: dict, i: int) -> dict[str, np.ndarray]:
    a = case["keypoints"]["aligned"][i]
    return {
        "body": np.array(a["bodies"]["candidate"], dtype=np.float64),
        "subset": np.array(a["bodies"]["subset"], dtype=np.float64),
        "hands": np.array(a["hands"], dtype=np.float64),
        "faces": np.array(a["faces"], dtype=np.float64),
    }


def test_anim2_to_jump_exact_parity(align_case, read_png):
    """Complete skeletons: every visible point equals the official output to 1e-9 and every
    rendered frame is pixel-identical. Points the official code had as "-1" (missing hands)
    are hidden in ours: in our official-format dict they are -1 again."""
    case = align_case("anim2_to_jump")
    frames = _frames(case)
    out = align_poses(frames[-1], frames[:-1], calibration=0)
    assert len(out) == 16
    for i, frame in enumerate(out):
        assert (frame.width, frame.height) == (400, 400)  # the reference canvas
        ours = to_dwpose_dict(frame.people[0])
        ref = _official(case, i)
        np.testing.assert_array_equal(ours["bodies"]["subset"], ref["subset"])
        np.testing.assert_allclose(ours["bodies"]["candidate"], ref["body"], rtol=0, atol=ATOL)
        unaligned = case["keypoints"]["dwpose_unaligned"][i]
        for key, part in (("hands", ours["hands"]), ("faces", ours["faces"])):
            missing = (np.array(unaligned[key])[..., 0] == -1)
            np.testing.assert_allclose(part[~missing], ref[key][~missing], rtol=0, atol=ATOL)
            assert (part[missing] == -1).all()
        expected = read_png(case["dir"] / "render" / f"{i:04d}.png")
        np.testing.assert_array_equal(render_pose(frame, colors="openpose"), expected)
    np.testing.assert_array_equal(
        render_pose(frames[-1], colors="openpose"), read_png(case["dir"] / "render" / "ref_pose.png")
    )


def test_anim2_official_dict_input_gives_the_same_alignment(align_case):
    """The same case fed as official-format dicts (what other tools may hand us)."""
    case = align_case("anim2_to_jump")
    kp = case["keypoints"]
    frames = [PoseFrame(w, h, [from_dwpose_dict(d)]) for d, (w, h) in zip(kp["dwpose_unaligned"], kp["image_sizes_WH"])]
    out = align_poses(frames[-1], frames[:-1], calibration=0)
    for i, frame in enumerate(out):
        np.testing.assert_allclose(to_dwpose_dict(frame.people[0])["bodies"]["candidate"], _official(case, i)["body"], rtol=0, atol=ATOL)


def test_dancer_to_seedance_matches_official_where_it_is_sane(align_case, read_png):
    """Legs hidden by a robe: the official code computed three leg ratios from its "-1" markers
    (rl2 is 0-length in frame 0 -> ratio inf -> NaN coordinates for the left ankle and toes).

    What is compared: for every driving frame, every point that is *visible in our output*
    (body/toe points in ``subset``, hand/face points with score > 0.3) must equal the official
    value to 1e-9. This holds because each of those points is moved only by bones whose ratio
    the official code measured from real points (the garbage ratios only ever moved hidden
    points). Every official non-finite value must be a hidden point for us, with finite
    coordinates. Renders must be pixel-identical (the official NaN points were not drawn)."""
    case = align_case("dancer_to_seedance")
    frames = _frames(case)
    alignment = plan_alignment(frames[-1], frames[:-1], AlignConfig(calibration=0))
    assert alignment is not None and set(alignment.unmeasured_bones) == {"ll2", "rl1", "rl2"}
    out = align_poses(frames[-1], frames[:-1], calibration=0)
    compared = nonfinite = 0
    for i, frame in enumerate(out):
        person = frame.people[0]
        assert np.isfinite(person.keypoints).all()
        ours = to_dwpose_dict(person)
        ref = _official(case, i)
        body_vis = ours["bodies"]["subset"][0] >= 0
        np.testing.assert_allclose(ours["bodies"]["candidate"][body_vis], ref["body"][body_vis], rtol=0, atol=ATOL)
        bad = ~np.isfinite(ref["body"]).all(axis=1)
        assert not (bad & body_vis).any()
        nonfinite += int(bad.sum())
        compared += int(body_vis.sum())
        for key in ("hands", "faces"):
            vis = ours[key][..., 0] != -1
            np.testing.assert_allclose(ours[key][vis], ref[key][vis], rtol=0, atol=ATOL)
            compared += int(vis.sum())
        np.testing.assert_array_equal(render_pose(frame, colors="openpose"), read_png(case["dir"] / "render" / f"{i:04d}.png"))
    assert nonfinite == 16 and compared > 8 * 15  # NaN ankle + toe in all 8 frames; a real comparison


def test_auto_calibration_picks_the_most_complete_early_frame(align_case):
    case = align_case("dancer_to_seedance")
    frames = _frames(case)
    people = [f.people[0] for f in frames[:-1]]
    # frames 0 and 1 tie (15 of 22 points), earliest wins
    assert choose_calibration(people, AlignConfig()) == 0
    better = people[3].copy()
    better.scores[:] = 1.0
    assert choose_calibration([people[0], None, better] + people[3:], AlignConfig()) == 2
    assert choose_calibration([people[0], None, better], AlignConfig(auto_window=1)) == 0
    assert choose_calibration([None, None], AlignConfig()) is None
    with pytest.raises(PoseAlignmentError, match="calibration frame 1"):
        choose_calibration([people[0], None], AlignConfig(calibration=1))
    with pytest.raises(PoseInputError, match="out of range"):
        choose_calibration([people[0]], AlignConfig(calibration=5))


# ----------------------------------------------------------------------------------------------
# synthetic skeletons
# ----------------------------------------------------------------------------------------------

def _skeleton(rng: np.random.Generator | None = None) -> np.ndarray:
    """A plausible standing person in pixels of a 512x768 image (134, 2)."""
    body = np.array([
        [256, 120], [256, 180], [216, 180], [200, 260], [196, 330], [296, 180], [312, 260], [316, 330],
        [230, 350], [226, 470], [224, 590], [282, 350], [286, 470], [288, 590], [248, 110], [264, 110],
        [238, 116], [274, 116],
    ], dtype=np.float64)
    feet = np.array([[300, 610], [290, 612], [284, 596], [212, 610], [222, 612], [226, 596]], dtype=np.float64)
    face = np.stack([256 + 18 * np.cos(np.linspace(0, 6, 68)), 122 + 22 * np.sin(np.linspace(0, 6, 68))], axis=1)
    lhand = np.array([[318 + 3 * (k % 5), 336 + 4 * (k // 5)] for k in range(21)], dtype=np.float64)
    rhand = np.array([[194 - 3 * (k % 5), 336 + 4 * (k // 5)] for k in range(21)], dtype=np.float64)
    pts = np.concatenate([body, feet, face, lhand, rhand])
    if rng is not None:
        pts = pts + rng.normal(0, 6, pts.shape)
    return pts


def _frame(px: np.ndarray, size=(512, 768), missing=()) -> PoseFrame:
    scores = np.full(NUM_KEYPOINTS, 0.9)
    scores[list(missing)] = 0.1
    return PoseFrame(size[0], size[1], [person_from_wholebody(px, scores, size[0], size[1])])


@pytest.mark.parametrize("missing", [(), (8, 11), (2, 5), (2, 5, 8, 11), (1,), (1, 8, 11)])
def test_uniformly_scaled_copy_is_reproduced_even_with_fallbacks(missing):
    """If the reference is the calibration frame scaled uniformly (in pixels) and shifted,
    onto a canvas of another size, alignment must give back the reference on the visible points
    — whichever fallback (torso from shoulders, shoulders from torso, bone median, hip anchor...)
    is needed for the missing points."""
    drv_px = _skeleton(np.random.default_rng(0))
    ref_px = drv_px * 1.7 + np.array([40.0, -25.0])
    ref = _frame(ref_px, size=(700, 1200), missing=missing)
    drv = _frame(drv_px, missing=missing)
    out = align_poses(ref, [drv], calibration=0)[0].people[0]
    vis = out.visible()
    np.testing.assert_allclose(out.keypoints[vis], ref.people[0].keypoints[vis], rtol=0, atol=1e-9)


def test_pixel_bone_metric_only_matters_for_non_square_references():
    rng = np.random.default_rng(1)
    drv = _frame(_skeleton(rng), size=(512, 512))
    ref_sq = _frame(_skeleton(rng), size=(512, 512))
    a = align_poses(ref_sq, [drv], calibration=0)[0].people[0]
    b = align_poses(ref_sq, [drv], calibration=0, bone_metric="pixel")[0].people[0]
    np.testing.assert_allclose(a.keypoints, b.keypoints, rtol=0, atol=1e-12)
    ref_tall = _frame(_skeleton(rng), size=(512, 1024))
    c = align_poses(ref_tall, [drv], calibration=0)[0].people[0]
    d = align_poses(ref_tall, [drv], calibration=0, bone_metric="pixel")[0].people[0]
    assert np.abs(c.keypoints - d.keypoints).max() > 1e-3


def test_zero_length_bone_gives_no_nan():
    """The official code divides by a 0-length frame-0 bone (inf ratio -> NaN -> crash when drawn)."""
    drv_px = _skeleton()
    drv_px[4] = drv_px[3]  # wrist on the elbow
    ref = _frame(_skeleton(np.random.default_rng(3)))
    alignment = plan_alignment(ref, [_frame(drv_px)], AlignConfig(calibration=0))
    assert alignment is not None and "arm4" in alignment.unmeasured_bones
    out = align_poses(ref, [_frame(drv_px), _frame(_skeleton(np.random.default_rng(4)))], calibration=0)
    for f in out:
        assert np.isfinite(f.people[0].keypoints).all()
        render_pose(f)


def test_missing_points_stay_hidden_where_the_official_code_drew_garbage():
    """A hand missing in a driving frame is "-1, -1" in the official code, which scales and
    shifts it like a real point; with a large shift it lands on the canvas and gets drawn."""
    drv_px = _skeleton()
    ref_px = _skeleton() * 1.0 + np.array([600.0, 700.0])  # person far right/bottom of a big canvas
    ref = _frame(ref_px, size=(1400, 1600))
    hand_rows = list(range(LEFT_HAND.start, LEFT_HAND.stop))
    drv = _frame(drv_px, missing=hand_rows)
    out = align_poses(ref, [drv], calibration=0)[0]
    official_like = to_dwpose_dict(out.people[0])["hands"][0]
    assert (official_like == -1).all()
    with_hand = render_pose(out, colors="openpose")
    no_hand = render_pose(out, colors="openpose", draw_hands=False)
    right_only = out.people[0].copy()
    right_only.scores[LEFT_HAND] = 0
    np.testing.assert_array_equal(with_hand, render_pose(right_only, colors="openpose"))
    assert not np.array_equal(with_hand, no_hand)  # the right hand is still drawn


def test_reference_without_person_is_an_actionable_error():
    with pytest.raises(PoseAlignmentError, match="reference"):
        align_poses(PoseFrame(512, 768), [_frame(_skeleton())])
    hidden = _frame(_skeleton(), missing=range(NUM_KEYPOINTS))
    with pytest.raises(PoseAlignmentError, match="turn pose alignment off"):
        align_poses(hidden, [_frame(_skeleton())])


def test_empty_driving_frames_stay_empty():
    ref = _frame(_skeleton(), size=(400, 600))
    out = align_poses(ref, [None, PoseFrame(512, 768), _frame(_skeleton()), None])
    assert [len(f.people) for f in out] == [0, 0, 1, 0]
    assert all((f.width, f.height) == (400, 600) for f in out)
    assert [len(f.people) for f in align_poses(ref, [None, PoseFrame(10, 10)])] == [0, 0]


def test_people_in_driving_frames_are_selected():
    small = _skeleton() * 0.5
    big = _skeleton()
    frame = PoseFrame(512, 768, [
        person_from_wholebody(small, np.full(NUM_KEYPOINTS, 0.9), 512, 768, det_score=0.9),
        person_from_wholebody(big, np.full(NUM_KEYPOINTS, 0.9), 512, 768, det_score=0.5),
    ])
    ref = _frame(_skeleton())
    by_score = align_poses(ref, [frame], calibration=0)[0].people[0]
    by_size = align_poses(ref, [frame], calibration=0, person="largest")[0].people[0]
    by_index = align_poses(ref, [frame], calibration=0, person="index", person_index=1)[0].people[0]
    # (alignment is scale invariant, so the chosen person shows in the carried detector score)
    assert (by_score.det_score, by_size.det_score, by_index.det_score) == (0.9, 0.5, 0.5)


def test_face_follows_head_option():
    rng = np.random.default_rng(5)
    ref, drv = _frame(_skeleton(rng)), _frame(_skeleton(rng))
    plain = align_poses(ref, [drv], calibration=0)[0].people[0]
    follow = align_poses(ref, [drv], calibration=0, face_follows_head=True)[0].people[0]
    nose_shift = follow.keypoints[0] - plain.keypoints[0]
    np.testing.assert_allclose(nose_shift, 0, atol=1e-15)  # the nose itself moves the same way
    alignment = plan_alignment(ref, [drv], AlignConfig(calibration=0))
    assert alignment is not None
    # with the option, the face keeps its offset to the nose as scaled (official: it drifts)
    before = drv.people[0].keypoints[24:92] - drv.people[0].keypoints[0]
    after = follow.keypoints[24:92] - follow.keypoints[0]
    np.testing.assert_allclose(after, before * [alignment.x_ratio, alignment.y_ratio], rtol=0, atol=1e-12)


def test_smoothing_reduces_jitter_and_keeps_missing_points():
    rng = np.random.default_rng(6)
    base = _skeleton()
    frames = []
    for t in range(20):
        frames.append(_frame(base + rng.normal(0, 4, base.shape), missing=(7,) if t == 10 else ()))
    ref = _frame(_skeleton())
    raw = align_poses(ref, frames, calibration=0)
    smooth = align_poses(ref, frames, calibration=0, smoothing=2.0)
    jitter = lambda fs: np.std([f.people[0].keypoints[4] for f in fs], axis=0).sum()  # noqa: E731
    assert jitter(smooth) < 0.6 * jitter(raw)
    assert smooth[10].people[0].scores[7] < 0.3
    np.testing.assert_array_equal(smooth[10].people[0].keypoints[7], raw[10].people[0].keypoints[7])


def test_smooth_keypoints_ignores_invisible_samples():
    pts = np.zeros((3, 1, 2))
    pts[1] = 1000.0  # garbage but invisible
    vis = np.array([[True], [False], [True]])
    out = smooth_keypoints(pts, vis, 1.0)
    np.testing.assert_array_equal(out[[0, 2]], 0.0)
    np.testing.assert_array_equal(out[1], 1000.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"calibration": "first"}, "calibration"),
    ({"smoothing": -1.0}, "smoothing"),
    ({"bone_metric": "cm"}, "bone_metric"),
    ({"person": "tallest"}, "person"),
    ({"max_ratio": 0.5}, "max_ratio"),
    ({"auto_window": 0}, "auto_window"),
])
def test_bad_options_are_actionable(kwargs, match):
    with pytest.raises(PoseInputError, match=match):
        AlignConfig(**kwargs)


def test_unknown_option_is_reported():
    with pytest.raises(PoseInputError, match="unknown alignment option"):
        align_poses(_frame(_skeleton()), [_frame(_skeleton())], calibratoin=0)


def test_bone_table_is_the_official_one():
    assert [b.name for b in BONES] == [
        "neck", "shoulder2", "shoulder5", "arm3", "arm4", "arm6", "arm7", "head14", "head15",
        "head16", "head17", "ll1", "ll2", "rl1", "rl2",
    ]
    assert [(b.parent, b.child) for b in BONES] == [
        (1, 0), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (0, 14), (0, 15), (14, 16), (15, 17),
        (8, 9), (9, 10), (11, 12), (12, 13),
    ]


def test_max_ratio_rejects_implausible_measurements():
    drv_px = _skeleton()
    drv_px[3] = drv_px[2] + [0.5, 0.5]  # foreshortened upper arm in the calibration frame
    ref = _frame(_skeleton())
    a = plan_alignment(ref, [_frame(drv_px)], AlignConfig(calibration=0))
    b = plan_alignment(ref, [_frame(drv_px)], AlignConfig(calibration=0, max_ratio=4.0))
    assert a is not None and b is not None
    assert a.bone_ratios["arm3"] > 50 and b.bone_ratios["arm3"] == 1.0 and "arm3" in b.unmeasured_bones
