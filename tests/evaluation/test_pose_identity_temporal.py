"""Pose following, identity and temporal metrics on hand-made inputs with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unianimate_core.evaluation import drift, seam_contrast, seam_frames
from unianimate_core.evaluation.identity import colour_distance, hellinger
from unianimate_core.evaluation.pose_metrics import keypoint_errors, mask_iou, mean_error, pck, soft_iou, torso_length
from unianimate_core.evaluation.temporal import flicker, temporal_difference_error, warp_error
from unianimate_core.pose.keypoints import Person, PoseFrame


def _frame(points: dict[int, tuple[float, float]], w=100, h=200) -> PoseFrame:
    k = np.zeros((134, 2))
    s = np.zeros(134)
    for r, (x, y) in points.items():
        k[r] = (x / w, y / h)
        s[r] = 1.0
    return PoseFrame(w, h, [Person(k, s)])


GT = {1: (50, 40), 8: (40, 100), 11: (60, 100), 4: (20, 80)}  # neck, hips, right wrist


def test_torso_length_and_keypoint_errors_are_exact():
    g = _frame(GT)
    assert torso_length(g.people[0], 100, 200) == pytest.approx(60.0)  # neck (50,40) -> mid-hip (50,100)
    pred = _frame({1: (50, 40), 8: (43, 104), 11: (60, 100)})  # hip off by (3, 4) = 5 px, wrist missed
    err, ref = keypoint_errors([pred], [g], rows=[1, 4, 8, 11, 2])
    assert ref.tolist() == [60.0]
    assert err[0, 0] == 0.0 and np.isinf(err[0, 1]) and err[0, 2] == pytest.approx(5.0) and np.isnan(err[0, 4])
    assert pck(err, ref, 0.05).tolist() == [0.5]    # within 3 px: neck and left hip; right hip 5 px; wrist missed
    assert pck(err, ref, 0.1).tolist() == [0.75]    # within 6 px: the right hip too
    assert mean_error(err, ref).tolist() == [pytest.approx((0 + 1 + 5 / 60 + 0) / 4)]


def test_pck_counts_only_scored_joints_and_no_pose_is_a_miss():
    g = _frame(GT)
    err, ref = keypoint_errors([None], [g], rows=[1, 4])
    assert np.isinf(err).all() and pck(err, ref, 1.0).tolist() == [0.0]


def test_mask_iou():
    a = np.zeros((1, 2, 10, 10), bool)
    b = np.zeros_like(a)
    a[0, 0, :5] = True      # 50 px
    b[0, 0, :4] = True      # 40 px inside a -> IoU 0.8
    b[0, 1, 5:] = True      # part 1 present only in gt -> IoU 0
    assert mask_iou(a, b, min_area=1).tolist() == [pytest.approx(0.4)]


def test_soft_iou_is_the_weighted_jaccard_index():
    a = np.zeros((1, 2, 4, 4))
    b = np.zeros_like(a)
    a[0, 0, :2] = 1.0          # 8 px of weight 1
    b[0, 0, :2] = 0.5          # same pixels, half the weight -> 4 / 8
    b[0, 0, 2] = 1.0           # 4 more px only in b -> union 8 + 4
    b[0, 1] = 0.1              # part 1: total 1.6 < min_mass 4 -> not counted
    assert soft_iou(a, b).tolist() == [pytest.approx(4 / 12)]
    assert soft_iou(b, b).tolist() == [1.0]


def test_hellinger_and_colour_distance():
    p = torch.tensor([[0.5, 0.5, 0.0]])
    assert float(hellinger(p, p)) == pytest.approx(0.0, abs=1e-6)
    assert float(hellinger(p, torch.tensor([[0.0, 0.0, 1.0]]))) == pytest.approx(1.0)
    # a red square on grey vs the same square, and vs a blue one, with the known background
    bg = torch.full((1, 3, 32, 32), 0.5)
    red, blue = bg.clone(), bg.clone()
    red[:, :, 8:24, 8:24] = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1)
    blue[:, :, 8:24, 8:24] = torch.tensor([0.1, 0.1, 0.9]).view(1, 3, 1, 1)
    mask = (red - bg).abs().sum(1) > 0
    d = colour_distance(torch.cat([red, blue]), red, reference_mask=mask, background=bg)
    assert float(d[0]) < 0.05 and float(d[1]) > 0.95


def test_temporal_difference_error_and_flicker_analytic():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 8, 8, generator=g) * 0.5 + 0.25
    y = x.clone()
    y[1::2] += 0.1  # brightness flicker on odd frames: each transition's change is off by exactly 0.1
    tde = temporal_difference_error(y, x)
    assert np.isnan(float(tde[0])) and torch.allclose(tde[1:], torch.full((4,), 0.1), atol=1e-6)
    assert torch.allclose(temporal_difference_error(x, x)[1:], torch.zeros(4))
    fl = flicker(torch.stack([torch.zeros(3, 4, 4), torch.full((3, 4, 4), 0.2)]))
    assert float(fl[1]) == pytest.approx(0.2)


def test_warp_error_follows_the_motion():
    """A textured image translated by 2 px per frame: warping with the flow of the video itself leaves
    a small error (interpolation only), far below the error of a video that does not move with it."""
    g = torch.Generator().manual_seed(1)
    tex = torch.nn.functional.interpolate(torch.rand(1, 3, 24, 24, generator=g), size=(96, 96), mode="bilinear")[0]
    frames = torch.stack([torch.roll(tex, shifts=2 * t, dims=2) for t in range(4)])[:, :, 8:-8, 8:-8]
    own, used = warp_error(frames, frames)
    static = torch.stack([frames[0]] * 4)
    still, _ = warp_error(static, frames)   # does not move although the flow says it should
    assert float(used[1:].mean()) > 0.5
    assert float(own[1:].mean()) < 0.25 * float(still[1:].mean())
    # a still flow source: the flow is ~0 and the warp error is the plain frame difference (up to
    # OpenCV remap's 1/32-px fixed-point interpolation and Farneback's residual flow: 1e-3)
    flick = static.clone()
    flick[1::2] = (flick[1::2] + 0.1).clamp(0, 1)
    stat, _ = warp_error(flick, static)
    assert torch.allclose(stat[1:], flicker(flick)[1:], atol=1e-3)


def test_seams_and_drift():
    from unianimate_core.diffusion.continuation import plan_segments

    segs = plan_segments(100, 32)          # (0..31), (31..62), (62..93), (93..99)
    assert seam_frames("continuation", 100, segment_length=32) == [s[0] + 1 for s in segs[1:]] == [32, 63, 94]
    assert seam_frames("windows", 40, context_size=16, context_overlap=4) == [12, 16, 24, 28]
    assert seam_frames("short", 40) == []
    v = np.arange(20, dtype=float) * 0.5 + 3
    d = drift(v)
    assert d["slope_per_100"] == pytest.approx(50.0) and d["last_minus_first_quarter"] == pytest.approx(7.5)
    vals = np.ones(20)
    vals[[5, 10]] = 4.0
    c = seam_contrast(vals, [5, 10])
    assert c["at_seams"] == 4.0 and c["elsewhere"] == 1.0 and c["ratio"] == 4.0


def test_embedding_similarity_is_one_for_the_reference_and_lower_for_others():
    from unianimate_core.evaluation.identity import embedding_similarity
    from unianimate_core.toyworld import ToyImageEncoder, World, WorldConfig

    w = World(WorldConfig(width=64, height=64, frames=1, occluder_prob=0.0))
    a, b = w.render(1, 3, 5), w.render(2, 3, 5)
    ref = torch.from_numpy(a.reference).permute(2, 0, 1)[None].float() / 255
    frames = torch.from_numpy(np.stack([a.reference, b.reference])).permute(0, 3, 1, 2).float() / 255
    sim = embedding_similarity(frames, ref, ToyImageEncoder())
    assert float(sim[0]) == pytest.approx(1.0, abs=1e-5) and float(sim[1]) < float(sim[0]) - 0.01


def test_seam_metrics_for_every_per_frame_metric():
    from unianimate_core.evaluation import evaluate_video

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(6, 3, 16, 16, generator=g) * 0.5 + 0.25)
    y = x.clone()
    y[3:] += 0.05  # a jump at frame 3, then consistent
    m = evaluate_video(y, ground_truth=x, seams=[3], warp=False)
    assert m.summary["seam_tde"] == pytest.approx(0.05, abs=1e-6) and m.summary["seam_ratio"] > 100
    assert m.summary["seam_l1"] == pytest.approx(0.05, abs=1e-6)
