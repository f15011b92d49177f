"""Conditioning preparation shared with the nodes: resize rules, CLIP input, posterior sample, 8-bit output."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from unianimate_core.pipeline import conditioning as C
from unianimate_core.pipeline.errors import PipelineError
from unianimate_core.pipeline.video import to_uint8


def _image(h=60, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_resize_is_a_pil_bilinear_squash_to_w_h():
    img = _image(60, 40)
    out = C.resize_frames(img, (64, 128))
    assert out.shape == (1, 3, 128, 64) and out.dtype == torch.float32
    expected = np.array(Image.fromarray(img).resize((64, 128), Image.BILINEAR))
    assert torch.equal(out[0], torch.from_numpy(expected).permute(2, 0, 1).float() / 255.0)


def test_float_images_in_comfy_layout_give_the_same_result_as_uint8():
    img = _image()
    as_float = torch.from_numpy(img).float().unsqueeze(0) / 255.0  # (1, H, W, 3) ComfyUI IMAGE
    assert torch.equal(C.resize_frames(as_float, (64, 64)), C.resize_frames(img, (64, 64)))


def test_clip_input_is_224_squash_with_openai_mean_std():
    img = _image(300, 120)
    pixels = C.clip_pixels(img)
    assert pixels.shape == (1, 224, 224, 3)
    # ComfyUI's preprocessing of an exact 224x224 input only rounds to 8 bit: a no-op on these values
    assert torch.equal(torch.clip(255.0 * pixels, 0, 255).round() / 255.0, pixels)
    x = C.clip_input(img)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    assert torch.allclose(x, (pixels.permute(0, 3, 1, 2) - mean) / std, atol=1e-7)


def test_posterior_sample_is_mean_plus_std_times_cpu_randn_with_logvar_clamp():
    mean = torch.randn(1, 4, 3, 5)
    logvar = torch.full((1, 4, 3, 5), 100.0)  # clamped to 20 -> std = e^10
    logvar[:, :2] = -2.0
    g = torch.Generator().manual_seed(5)
    sample = C.posterior_sample(torch.cat([mean, logvar], dim=1), g)
    eps = torch.randn(1, 4, 3, 5, generator=torch.Generator().manual_seed(5))
    std = torch.exp(0.5 * logvar.clamp(-30, 20))
    assert torch.allclose(sample, mean + std * eps)
    latent = C.reference_latent(torch.cat([mean, logvar], dim=1), torch.Generator().manual_seed(5))
    assert torch.allclose(latent, sample * 0.18215)


def test_latents_for_decode_is_frame_major_and_unscaled():
    z = torch.randn(1, 4, 3, 2, 2)
    flat = C.latents_for_decode(z)
    assert flat.shape == (3, 4, 2, 2)
    assert torch.allclose(flat[1], z[0, :, 1] / 0.18215)


def test_uint8_round_versus_official_truncation():
    x = torch.tensor([0.999, 0.5, 0.0, 1.2, -0.1]).view(1, 1, 5, 1).expand(1, 1, 5, 3)
    assert to_uint8(x, "round")[0, 0, :, 0].tolist() == [255, 128, 0, 255, 0]
    assert to_uint8(x, "truncate")[0, 0, :, 0].tolist() == [254, 127, 0, 255, 0]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(PipelineError, match="multiple of 64"):
        C.check_size(500, 768, 64)
    # each message names the input and the two nearest usable sizes
    assert C.size_problem("width", 500, 64) == ("width = 500 is not a multiple of 64 (the VAE's factor 8 times one "
                                                "halving per UNet level); use 448 or 512.")
    assert "height = 32 is too small" in C.size_problem("height", 32, 64)
    assert C.size_problem("height", 768, 64) is None
    with pytest.raises(PipelineError, match="width = 500.*height = 700"):
        C.check_size(500, 700, 64)
    with pytest.raises(PipelineError, match="NaN"):
        C.to_uint8_hwc(torch.full((4, 4, 3), float("nan")))
    with pytest.raises(PipelineError):
        C.posterior_sample(torch.zeros(1, 7, 2, 2))
