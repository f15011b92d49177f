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


def _random_text_tower(seed: int = 0):
    """OpenCLIP ViT-H-14 with a random text tower (blocks 0, 21-23 live, the others zero = identity,
    as in the sparse CLIP-vision file); values rounded to fp16 because ComfyUI stores text encoders
    in fp16 on the CPU, so both sides compute with identical weights."""
    import math
    import zlib

    from unianimate_core.pipeline.standalone import _create_vit_h14

    model = _create_vit_h14(open_clip)
    live = {0, 21, 22, 23}
    with torch.no_grad():
        for name, p in model.named_parameters():
            block = int(name.split(".")[2]) if name.startswith("transformer.resblocks.") else None
            if name.startswith("visual.") or p.ndim == 0 or (block is not None and block not in live):
                p.zero_()
                continue
            z = torch.randn(p.shape, generator=torch.Generator().manual_seed(seed * 7919 + zlib.crc32(name.encode())))
            if p.ndim == 1:
                value = 1 + 0.1 * z if name.endswith("weight") else 0.05 * z
            elif name == "token_embedding.weight":
                value = 0.02 * z
            elif name == "positional_embedding":
                value = 0.01 * z
            else:
                value = z / math.sqrt(p.shape[0] if name == "text_projection" else p.shape[-1])
            p.copy_(value.half().float())
    return model


@torch.no_grad()
def test_empty_prompt_context_is_the_same(comfy):
    """zero_y: OpenCLIP text tower on "" -> penultimate block -> ln_final (headless) equals ComfyUI's SD2
    CLIP with clip_layer(-2) (what the nodes compute from the SD 2.1 checkpoint's text encoder)."""
    model = _random_text_tower()
    ours = OpenClipEncoder(model, False, True, torch.device("cpu"), torch.float32).empty_context()
    sd = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("visual.") and k != "logit_scale"}
    sd = comfy.utils.clip_text_transformers_convert(sd, "", "")  # OpenCLIP -> ComfyUI's SD2 text layout
    clip = comfy.sd.load_text_encoder_state_dicts([sd], clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION).clone()
    clip.clip_layer(-2)
    theirs = clip.encode_from_tokens(clip.tokenize(""))
    theirs = theirs[0] if isinstance(theirs, (tuple, list)) else theirs
    assert ours.shape == theirs.shape == (1, 77, 1024)
    _close(ours, theirs, 1e-4)
