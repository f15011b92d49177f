"""Evaluation of world clips (ground truth and baselines), the report files, and the eval command."""
from __future__ import annotations

import json

import numpy as np
import pytest

from unianimate_core.evaluation import EvaluationError, Report, evaluate_toy_clip, merge, toy_baselines
from unianimate_core.toyworld import ToyImageEncoder, World, WorldConfig


@pytest.fixture(scope="module")
def moving_clip():
    """A test clip with visible motion (a dance) at 128x128, 8 frames, sharp rendering."""
    from unianimate_core.toyworld import Motion

    w = World(WorldConfig(width=128, height=128, frames=8, render="sharp", occluder_prob=0.0))
    mid = next(m for m in range(9, 400, 10) if set(Motion(m).kinds(np.arange(8) / 8.0)) == {"dance"})
    return w.render(character_id=9, motion_id=mid, scene_seed=5, start=0.0, reference_time=3.0)


def test_ground_truth_is_perfect_and_beats_the_baselines(moving_clip):
    clip = moving_clip
    gt = evaluate_toy_clip(clip.frames, clip, encoder=ToyImageEncoder(), gt_ceiling=True)
    assert gt.summary["psnr_clip"] == 100.0 and gt.summary["ssim"] == pytest.approx(1.0)
    assert gt.summary["tde"] == 0.0 and gt.summary["l1"] == 0.0 and gt.summary["limb_overlap"] == 1.0
    # the detector on the ground truth is the ceiling, reported alongside
    assert gt.summary["pck_0.2"] == pytest.approx(gt.info["gt_ceiling"]["pck_0.2"])
    base = {k: evaluate_toy_clip(v, clip, warp=False) for k, v in toy_baselines(clip).items()}
    copy, poses = base["copy_reference"], base["pose_images"]
    assert gt.summary["pck_0.2"] > copy.summary["pck_0.2"] + 0.1   # the reference is another pose
    assert gt.summary["limb_iou"] > copy.summary["limb_iou"] + 0.1
    assert copy.summary["limb_overlap"] < 0.8 and poses.summary["limb_overlap"] < 0.2
    assert copy.summary["psnr"] < 40 and poses.summary["psnr"] < copy.summary["psnr"]
    assert poses.summary["id_colour"] > copy.summary["id_colour"]   # a skeleton is nobody
    assert copy.summary["flicker"] == 0.0


def test_report_files(tmp_path, moving_clip):
    clip = moving_clip
    rep = Report("test")
    for steps, frames in ((10, toy_baselines(clip)["copy_reference"]), (50, clip.frames)):
        rep.add(f"s{steps}", evaluate_toy_clip(frames, clip, warp=False), {"steps": steps})
    with pytest.raises(EvaluationError, match="already"):
        rep.add("s10", rep.runs[0][1])
    paths = rep.write(tmp_path)
    names = {p.name for p in paths}
    assert {"report.md", "report.json", "per_frame_psnr.png", "vs_steps_psnr.png"} <= names
    data = json.loads((tmp_path / "report.json").read_text())
    assert [r["name"] for r in data["runs"]] == ["s10", "s50"] and len(data["runs"][1]["per_frame"]["psnr"]) == 8
    md = (tmp_path / "report.md").read_text()
    assert "| s50 | 50 | 100.00 |" in md
    from PIL import Image

    assert Image.open(tmp_path / "per_frame_psnr.png").size[0] > 100


def test_merge_averages_frame_by_frame():
    from unianimate_core.evaluation.evaluate import VideoMetrics

    a = VideoMetrics({"psnr": np.array([10.0, 20.0, 30.0])}, {"psnr": 20.0})
    b = VideoMetrics({"psnr": np.array([20.0, np.nan])}, {"psnr": 15.0})
    m = merge([a, b])
    np.testing.assert_allclose(m.per_frame["psnr"], [15.0, 20.0, 30.0])
    assert m.summary["psnr"] == 17.5 and m.info["clips"] == 2
    assert m.info["per_clip"] == [{"psnr": 20.0}, {"psnr": 15.0}]  # each clip's own summary, in order


def test_eval_command_on_videos(tmp_path, moving_clip):
    """Real-data path of the command: generated and ground-truth videos as files, reference image;
    no pose backend needed (none)."""
    from PIL import Image

    from unianimate_core.pipeline.cli import main
    from unianimate_core.pipeline.video import write_video

    clip = moving_clip
    write_video(tmp_path / "gt.mp4", list(clip.frames), fps=8)
    gen_dir = tmp_path / "gen"
    gen_dir.mkdir()
    for i, f in enumerate(clip.frames):
        Image.fromarray(f).save(gen_dir / f"{i:04d}.png")
    Image.fromarray(clip.reference).save(tmp_path / "ref.png")
    out = tmp_path / "rep"
    rc = main(["eval", "--generated", str(gen_dir), "--ground-truth", str(tmp_path / "gt.mp4"), "--reference",
               str(tmp_path / "ref.png"), "--pose-backend", "none", "--params", "steps=30", "--out", str(out),
               "--no-warp", "--no-plots"])
    assert rc == 0
    run = json.loads((out / "report.json").read_text())["runs"][0]
    assert run["params"] == {"steps": 30}
    # the PNG frames vs their H.264-compressed copy: close but not identical
    assert 25 < run["summary"]["psnr_clip"] < 100
    assert main(["eval", "--pose-backend", "none", "--out", str(out)]) == 2  # nothing to evaluate: one-line error
