"""The one-command demo's code path, end to end on CPU with the tiny random-weight model.

No model file, no OpenCLIP/diffusers: poses from the bundled keypoints, tiny seeded UNet and
CLIP/VAE stand-ins. Checks what a user gets: an mp4 with the right frame count and size that
decodes, a side-by-side preview, and output that is unmistakably labelled as noise.
"""
from __future__ import annotations

import numpy as np
import pytest

from unianimate_core.pipeline.cli import main
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
