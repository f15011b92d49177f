"""Inside vs outside ComfyUI: the same conditioning tensors from the same model files.

Inside ComfyUI the nodes use ComfyUI's loaders (``comfy.clip_vision``, ``comfy.sd.VAE``); the
headless pipeline uses OpenCLIP and diffusers. On the same full-size random-weight files (a sparse
ViT-H CLIP-vision file in ComfyUI's key layout, an SD KL-f8 VAE in the LDM layout) both must give
the same reference embedding, the same VAE posterior moments (hence the same sampled reference
latent for a seed) and the same decoded frames.

Runs only where everything is available: ``COMFYUI_PATH`` names a ComfyUI work tree, OpenCLIP and
diffusers import, and the random-weight files are given (see tests/pipeline/conftest.py).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

COMFY = os.environ.get("COMFYUI_PATH", "")
if not COMFY or not (Path(COMFY) / "comfy" / "sd.py").is_file():
    pytest.skip("COMFYUI_PATH does not name a ComfyUI work tree", allow_module_level=True)
try:
    import diffusers  # noqa: F401
    import open_clip  # noqa: F401
except Exception as exc:  # noqa: BLE001 - a torchvision/torch mismatch raises RuntimeError, not ImportError
    pytest.skip(f"OpenCLIP/diffusers not usable here ({type(exc).__name__}: {exc})", allow_module_level=True)

from unianimate_core.pipeline.conditioning import (  # noqa: E402
    clip_input, clip_pixels, frames_from_decoded, reference_latent, resize_frames, vae_input,
)
from unianimate_core.pipeline.standalone import DiffusersVAE, OpenClipEncoder  # noqa: E402
from unianimate_core.pipeline.video import read_image  # noqa: E402

pytestmark = [pytest.mark.comfy_host, pytest.mark.slow]
DEMO = Path(__file__).resolve().parents[2] / "demo"
VAE_FILE = Path("vae") / "test_sd_vae_kl.safetensors"  # as written by the random-model generator
CLIP_FILE = Path("clip_vision") / "test_clip_vision_h.safetensors"


@pytest.fixture(scope="module")
def comfy():
    """ComfyUI's loaders, imported in-process on the CPU (ComfyUI parses its CLI flags on import)."""
    saved = sys.argv
    sys.argv = [saved[0], "--cpu"]
    sys.path.insert(0, COMFY)
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        import comfy.clip_vision
        import comfy.model_management  # noqa: F401
        import comfy.sd
        import comfy.utils
    finally:
        sys.argv = saved
    return comfy


@pytest.fixture(scope="module")
def reference():
    return read_image(DEMO / "reference.png")


def _close(a: torch.Tensor, b: torch.Tensor, rel: float) -> None:
    scale = float(b.abs().max())
    torch.testing.assert_close(a.float().cpu(), b.float().cpu(), rtol=rel, atol=rel * scale)


@torch.no_grad()
def test_clip_image_embedding_is_the_same(comfy, random_model_dir, reference):
    path = str(random_model_dir / CLIP_FILE)
    theirs = comfy.clip_vision.load(path).encode_image(clip_pixels(reference), crop=False).image_embeds
    ours = OpenClipEncoder.from_files(path).encode_image(clip_input(reference))
    assert ours.shape == theirs.shape == (1, 1024)
    assert float(theirs.abs().max()) > 0.1  # a live embedding, not zeros
    _close(ours, theirs, 1e-4)


@torch.no_grad()
def test_vae_moments_reference_latent_and_decode_are_the_same(comfy, random_model_dir, reference):
    path = str(random_model_dir / VAE_FILE)
    sd = comfy.utils.load_torch_file(path)
    vae = comfy.sd.VAE(sd=sd)
    fsm = vae.first_stage_model
    pixels = resize_frames(reference, (64, 64))  # (1, 3, 64, 64) in [0, 1]
    x = vae_input(pixels).to(vae.vae_dtype)
    theirs = fsm.quant_conv(fsm.encoder(x)).float()  # ComfyUI's model: encoder + quant_conv = moments
    ours_vae = DiffusersVAE.from_file(path)
    ours = ours_vae.encode_moments(vae_input(pixels))
    assert ours.shape == theirs.shape == (1, 8, 8, 8)
    _close(ours, theirs, 1e-4)
    # ComfyUI's public VAE.encode returns the posterior mean: the first half of the moments
    _close(vae.encode(pixels.permute(0, 2, 3, 1))[:, :4], ours[:, :4], 1e-4)
    # the official reference latent (posterior sample x 0.18215) from either set of moments
    lat_ours = reference_latent(ours, torch.Generator().manual_seed(3))
    lat_theirs = reference_latent(theirs, torch.Generator().manual_seed(3))
    _close(lat_ours, lat_theirs, 1e-4)
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    img_theirs = vae.decode(z)  # (2, 64, 64, 3) in [0, 1]
    img_ours = frames_from_decoded(ours_vae.decode(z)).permute(0, 2, 3, 1)
    assert img_ours.shape == img_theirs.shape
    _close(img_ours, img_theirs, 1e-4)
