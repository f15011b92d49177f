"""The real-model path of the command line (RealModels: checkpoint loader, OpenCLIP, diffusers VAE).

Runs ``animate`` with real-format files holding random weights: the tiny UNet saved as a
checkpoint, the full-size ViT-H CLIP-vision and SD VAE files, and a cached empty-prompt context
next to the UNet (as the ComfyUI nodes write it). Needs the standalone extra and the random-weight
files (tests/pipeline/conftest.py); skipped otherwise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

try:
    import diffusers  # noqa: F401
    import open_clip  # noqa: F401
except Exception as exc:  # noqa: BLE001 - a torchvision/torch mismatch raises RuntimeError
    pytest.skip(f"OpenCLIP/diffusers not usable here ({type(exc).__name__}: {exc})", allow_module_level=True)

from safetensors.torch import save_file  # noqa: E402

from unianimate_core.pipeline.cli import main  # noqa: E402
from unianimate_core.pipeline.providers import TinyModels  # noqa: E402
from unianimate_core.pipeline.video import probe_video  # noqa: E402

pytestmark = pytest.mark.slow
DEMO = Path(__file__).resolve().parents[2] / "demo"


def test_animate_with_real_format_files(tmp_path, random_model_dir, capsys, monkeypatch):
    monkeypatch.delenv("UNIANIMATE_MODELS", raising=False)
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    models = tmp_path / "models"
    (models / "unianimate").mkdir(parents=True)
    unet = TinyModels().unet(torch.zeros(1, 77, 1024))
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()},
              str(models / "unianimate" / "unianimate_tiny_random.safetensors"))
    np.save(models / "unianimate" / "zero_y_openclip_vit_h14.npy",
            np.random.default_rng(0).standard_normal((1, 77, 1024)).astype(np.float32))
    code = main(["animate", "--ref", str(DEMO / "reference.png"), "--driving", str(DEMO / "driving.mp4"),
                 "--keypoints", str(DEMO / "driving_keypoints.json"), "--out", str(tmp_path / "o.mp4"),
                 "--models", str(models), "--clip", str(random_model_dir / "clip_vision" / "test_clip_vision_h.safetensors"),
                 "--vae", str(random_model_dir / "vae" / "test_sd_vae_kl.safetensors"),
                 "--width", "64", "--height", "64", "--frames", "3", "--steps", "2", "--device", "cpu", "--quiet"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out + captured.err
    assert "unianimate_tiny_random.safetensors" in out and "RANDOM-WEIGHT NOISE" not in out
    assert probe_video(tmp_path / "o.mp4") == (3, 64, 64)
    assert probe_video(tmp_path / "o_preview.mp4") == (3, 192, 64)
