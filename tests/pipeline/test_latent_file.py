"""``.latent`` files: ComfyUI's Save Latent layout, read back as ComfyUI's Load Latent does, and written by
``animate --save-latent`` with the latent the run returned."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from unianimate_core.pipeline.cli import main
from unianimate_core.pipeline.latent_file import load_latent, save_latent
from unianimate_core.pipeline.errors import PipelineError

DEMO = Path(__file__).resolve().parents[2] / "demo"


def test_layout_is_comfyuis_and_round_trips(tmp_path):
    latent = torch.randn(1, 4, 5, 6, 7, generator=torch.Generator().manual_seed(0))
    path = save_latent(tmp_path / "x.latent", latent)
    raw = load_file(str(path))
    # ComfyUI's SaveLatent: frames in the batch dimension, raw VAE scale, the version marker
    assert set(raw) == {"latent_tensor", "latent_format_version_0"}
    for f in range(5):
        torch.testing.assert_close(raw["latent_tensor"][f], latent[0, :, f] / 0.18215, rtol=0, atol=1e-6)
    torch.testing.assert_close(load_latent(path), latent, rtol=1e-6, atol=1e-6)
    # a file without the marker is read with ComfyUI's old multiplier (LoadLatent: x 1 / 0.18215)
    save_file({"latent_tensor": raw["latent_tensor"] * 0.18215}, str(tmp_path / "old.latent"))
    torch.testing.assert_close(load_latent(tmp_path / "old.latent"), latent, rtol=1e-5, atol=1e-5)
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(PipelineError, match="not a ComfyUI latent file"):
        save_file({"x": torch.zeros(1)}, str(tmp_path / "bad.latent"))
        load_latent(tmp_path / "bad.latent")


def test_animate_save_latent_writes_the_runs_latent(tmp_path, capsys):
    rc = main(["animate", "--ref", str(DEMO / "reference.png"), "--driving", str(DEMO / "driving.mp4"),
               "--keypoints", str(DEMO / "driving_keypoints.json"), "--pose-backend", "keypoints", "--random-weights",
               "--out", str(tmp_path / "a.mp4"), "--width", "64", "--height", "64", "--frames", "3", "--steps", "2",
               "--no-preview", "--save-latent", "--quiet"])
    assert rc == 0
    path = tmp_path / "a_random-weights-noise.latent"
    assert f"latent:  {path}" in capsys.readouterr().out
    latent = load_latent(path)
    assert latent.shape == (1, 4, 3, 8, 8) and bool(torch.isfinite(latent).all())
