"""The one-command demo's code path, end to end on CPU with the tiny random-weight model.

No model file, no OpenCLIP/diffusers: poses from the bundled keypoints, tiny seeded UNet and
CLIP/VAE stand-ins. Checks what a user gets: an mp4 with the right frame count and size that
decodes, a side-by-side preview, and output that is unmistakably labelled as noise.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from unianimate_core.pipeline.cli import main, read_driving
from unianimate_core.pipeline.preview import NOISE_BANNER
from unianimate_core.pipeline.video import probe_video, read_clip


@pytest.mark.slow
def test_demo_without_model_files_runs_tiny_model_and_labels_noise(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("UNIANIMATE_MODELS", raising=False)
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./checkpoints here
    code = main(["demo", "--out", str(tmp_path / "out" / "demo.mp4"), "--steps", "4", "--quiet",
                 "--models", str(tmp_path / "no_models")])
    out = capsys.readouterr().out
    assert code == 0
    assert "Real model files were not found" in out and "THIS IS RANDOM-WEIGHT NOISE" in out
    assert not (tmp_path / "out" / "demo.mp4").exists()  # never under a name that looks like a result
    video = tmp_path / "out" / "demo_random-weights-noise.mp4"
    preview = tmp_path / "out" / "demo_random-weights-noise_preview.mp4"
    assert str(video) in out and str(preview) in out
    assert probe_video(video) == (16, 128, 192)  # all 16 demo frames at the tiny default size
    assert probe_video(preview) == (16, 3 * 128, 192)
    frames = read_clip(video).frames
    assert all(np.isfinite(f).all() and f.std() > 0 for f in frames)
    top = frames[0][:6].astype(int)  # the burned-in red banner
    assert top[..., 0].mean() > 150 and top[..., 1].mean() < 80
    assert (tmp_path / "out" / "demo_random-weights-noise_preview.png").is_file()
    assert "RANDOM-WEIGHT" in NOISE_BANNER


def test_animate_refuses_to_run_without_models_unless_asked(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("UNIANIMATE_MODELS", raising=False)
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    code = main(["animate", "--ref", "x.png", "--driving", "y.mp4", "--out", str(tmp_path / "o.mp4"),
                 "--models", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "missing model files" in err and "--random-weights" in err


def test_bad_size_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["demo", "--random-weights", "--width", "100", "--out", str(tmp_path / "d.mp4"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "multiple of 64" in err and "Traceback" not in err


DEMO = Path(__file__).resolve().parents[2] / "demo"


def test_bad_values_and_paths_stop_with_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    run = ["animate", "--ref", str(DEMO / "reference.png"), "--driving", str(DEMO / "driving.mp4"),
           "--out", str(tmp_path / "o.mp4"), "--random-weights", "--quiet", "--models", str(tmp_path)]
    cases = [
        (run + ["--frame-interval", "0"], "--frame-interval must be >= 1"),
        (run + ["--long", "windows", "--context-size", "8", "--context-overlap", "8"], "context_overlap"),
        (run + ["--unet", str(tmp_path / "nope.pth")], "--unet .*nope.pth: no such file"),
        (["animate", "--ref", str(tmp_path), *run[3:]], "is a folder"),
        (["extract-poses", "--ref", str(DEMO / "reference.png"), "--driving", str(tmp_path / "empty"),
          "--out", str(tmp_path / "poses")], "contains no images"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert re.search(message, err) and "Traceback" not in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "poses").exists() and not list(tmp_path.glob("o*.mp4"))


def test_only_the_driving_frames_the_selection_can_use_are_decoded():
    clip, interval = read_driving(str(DEMO / "driving.mp4"), frames=3, frame_interval=2, thin=True)
    assert len(clip.frames) == 5 and interval == 2  # frames 0..4 cover 0, 2, 4
    clip, interval = read_driving(str(DEMO / "driving.mp4"), frames=None, frame_interval=3, thin=True)
    assert len(clip.frames) == 6 and interval == 1  # 16 frames thinned while decoding: 0, 3, ..., 15
    clip, interval = read_driving(str(DEMO / "driving.mp4"), frames=None, frame_interval=3, thin=False)
    assert len(clip.frames) == 16 and interval == 3  # keypoint files index the file's own frames
